using System.Runtime.InteropServices;
using Daop.Kernels;
using Daop.Kernels.Cpu;

namespace Daop.Engine.Load.Gguf;

/// <summary>
/// The tensors of a GGUF model (one file or a split set) as an <see cref="ITensorSource"/>: zero-copy matrix views in the
/// stored format, small vectors widened to fp32. Tensor names are GGUF's (<c>blk.0.attn_q.weight</c>) with two additions a
/// family's table may use: <c>name[e]</c> is matrix e of a 3-D stack (<c>blk.0.ffn_up_exps.weight[3]</c>, a view into the
/// stack), and <c>a|b</c> is the first of several names the file has (older files store experts one tensor each).
/// </summary>
public sealed unsafe class GgufCheckpoint : ITensorSource
{
    readonly GgufFile[] _files;
    readonly Dictionary<string, (GgufFile File, GgufTensorInfo Info)> _byName;

    GgufCheckpoint(GgufFile[] files, Dictionary<string, (GgufFile, GgufTensorInfo)> byName)
    {
        _files = files; _byName = byName;
        Metadata = new GgufMetadata(files[0].Path, files[0].Metadata);
    }

    /// <summary>The file opened (the first part of a split set).</summary>
    public string Path => _files[0].Path;
    /// <summary>The files, in split order.</summary>
    public IReadOnlyList<GgufFile> Files => _files;
    /// <summary>The model's metadata (the first file's: other parts carry only split.* keys).</summary>
    public GgufMetadata Metadata { get; }
    /// <summary>general.architecture.</summary>
    public string Architecture => Metadata.String("general.architecture");
    /// <summary>Every tensor, in file order.</summary>
    public IEnumerable<GgufTensorInfo> Tensors => _files.SelectMany(f => f.TensorList);
    /// <summary>Bytes of all files.</summary>
    public long FileBytes => _files.Sum(f => f.Length);

    /// <summary>Opens the GGUF model at <paramref name="path"/> (a .gguf file; for a split set, any of its parts).</summary>
    public static GgufCheckpoint Open(string path)
    {
        var parts = GgufSplits.Parts(path);
        foreach (var p in parts)
            if (!File.Exists(p)) throw new ModelLoadException($"{p}: file not found" + (parts.Length > 1 ? $" (part of the split model {path})" : ""));
        var files = new List<GgufFile>();
        try
        {
            foreach (var p in parts) files.Add(GgufFile.Open(p));
            GgufSplits.Check(files);
            var byName = new Dictionary<string, (GgufFile, GgufTensorInfo)>(StringComparer.Ordinal);
            foreach (var f in files)
                foreach (var t in f.TensorList)
                    if (!byName.TryAdd(t.Name, (f, t)))
                        throw new ModelLoadException($"{f.Path}: tensor '{t.Name}' is also in {byName[t.Name].Item1.Path}");
            return new GgufCheckpoint(files.ToArray(), byName);
        }
        catch
        {
            foreach (var f in files) f.Dispose();
            throw;
        }
    }

    /// <summary>The tensor <paramref name="name"/> (a plain GGUF name), or null.</summary>
    public GgufTensorInfo? Find(string name) => _byName.TryGetValue(name, out var t) ? t.Info : null;

    /// <inheritdoc />
    public bool Contains(string name) => TryResolve(name, out _);

    /// <summary>
    /// A zero-copy [rows, cols] view: a 2-D tensor of ggml dims [cols, rows] (a 1-D [cols] when rows is 1), or slice e of a
    /// 3-D stack [cols, rows, E] named <c>name[e]</c>. Its type must be one Daop computes with.
    /// </summary>
    public WeightMatrix Matrix(string name, int rows, int cols)
    {
        var r = Resolve(name);
        var (f, t) = (r.File, r.Info);
        string shape = r.Slice is { } e ? $"[{rows}, {cols}] (matrix {e} of a stack)" : $"[{rows}, {cols}]";
        bool ok = r.Slice is { } s
            ? Dims(t, 3) is [var c3, var r3, var n3] && c3 == cols && r3 == rows && s < n3
            : Dims(t, 2) is [var c2, var r2] && c2 == cols && r2 == rows;
        if (!ok) throw new ModelLoadException($"{f.Path}: tensor '{t.Name}' has shape {t.ShapeText}, expected {shape}");
        var type = ComputeType(f, t);
        long offset = r.Slice is { } k ? k * (long)rows * t.RowBytes : 0;
        return new WeightMatrix(f.DataPointer(t) + offset, type, rows, cols);
    }

    /// <summary>
    /// A vector tensor [<paramref name="length"/>] widened to fp32 (norm weights, biases): small, so it is copied; or row e of
    /// a 2-D stack [E, length] named <c>name[e]</c> (experts' biases, <c>blk.0.ffn_up_exps.bias[3]</c>).
    /// </summary>
    public float[] Vector(string name, int length)
    {
        var (f, t, slice) = Resolve(name);
        bool ok = slice is { } e ? Dims(t, 2) is [var n2, var rows] && n2 == length && e < rows : Dims(t, 1) is [var n] && n == length;
        if (!ok)
            throw new ModelLoadException($"{f.Path}: tensor '{t.Name}' has shape {t.ShapeText}, expected " +
                (slice is { } s ? $"[{length}] (row {s} of a stack)" : $"[{length}]"));
        if (!t.Type.IsFloat())
            throw new ModelLoadException($"{f.Path}: tensor '{t.Name}' is {t.Type.Name()}; a vector must be f32, f16 or bf16");
        var bytes = f.Bytes(t);
        if (slice is { } row) bytes = bytes.Slice((int)(row * t.RowBytes), (int)t.RowBytes);
        var dst = new float[length];
        switch (t.Type)
        {
            case GgmlType.F32: MemoryMarshal.Cast<byte, float>(bytes).CopyTo(dst); break;
            case GgmlType.BF16: Bf16.ToFloat(MemoryMarshal.Cast<byte, ushort>(bytes), dst); break;
            default: System.Numerics.Tensors.TensorPrimitives.ConvertToSingle(MemoryMarshal.Cast<byte, Half>(bytes), dst); break;
        }
        return dst;
    }

    /// <summary>
    /// Index of the first NaN or ±∞ of tensor <paramref name="name"/>, or −1: every element of the float types, every block
    /// scale of the 32-blocks (fp16 d, and m for Q4_1/Q5_1; MXFP4's E8M0, where 0xFF is NaN), every super-block's d (and
    /// dmin) of the K-quants. Other types are not read (−1). For
    /// <c>inspect --check</c>, not for loading.
    /// </summary>
    public long FirstNonFinite(string name)
    {
        var (f, t, _) = Resolve(name);
        byte* p = f.DataPointer(t);
        long count = t.ElementCount;
        const int Chunk = 1 << 28; // elements per span, so tensors past 2 GiB are scanned too
        switch (t.Type)
        {
            case GgmlType.F32 or GgmlType.F16 or GgmlType.BF16:
                for (long start = 0; start < count; start += Chunk)
                {
                    int n = (int)Math.Min(Chunk, count - start);
                    int i = t.Type switch
                    {
                        GgmlType.F32 => NonFinite.IndexOf(new ReadOnlySpan<float>((float*)p + start, n)),
                        GgmlType.BF16 => NonFinite.IndexOf16(new ReadOnlySpan<ushort>((ushort*)p + start, n), 0x7F80),
                        _ => NonFinite.IndexOf16(new ReadOnlySpan<ushort>((ushort*)p + start, n), 0x7C00),
                    };
                    if (i >= 0) return start + i;
                }
                return -1;
            case GgmlType.MXFP4:
                for (long b = 0; b < count / 32; b++)
                    if (p[b * 17] == 0xFF) return b * 32; // E8M0's NaN code
                return -1;
            case GgmlType.Q8_0 or GgmlType.Q4_0 or GgmlType.Q5_0 or GgmlType.Q4_1 or GgmlType.Q5_1 or GgmlType.IQ4_NL
                or GgmlType.Q2_K or GgmlType.Q3_K or GgmlType.Q4_K or GgmlType.Q5_K or GgmlType.Q6_K:
                int elements = t.Type.BlockSize(), size = t.Type.BlockBytes();
                // Where a block's fp16 scale sits (d at the front, or at the end for Q2_K, Q3_K and Q6_K), and whether a
                // second fp16 follows it (Q4_1 and Q5_1's min m, the K-quants' dmin).
                int dAt = t.Type switch { GgmlType.Q6_K => 208, GgmlType.Q3_K => 108, GgmlType.Q2_K => 80, _ => 0 };
                bool two = t.Type is GgmlType.Q4_1 or GgmlType.Q5_1 or GgmlType.Q2_K or GgmlType.Q4_K or GgmlType.Q5_K;
                for (long b = 0; b < count / elements; b++)
                {
                    byte* block = p + b * size + dAt;
                    if ((*(ushort*)block & 0x7C00) == 0x7C00 || two && (*(ushort*)(block + 2) & 0x7C00) == 0x7C00) return b * elements;
                }
                return -1;
            default:
                return -1;
        }
    }

    // ggml dims padded with 1s to n; null when a dimension beyond n is not 1.
    static long[]? Dims(GgufTensorInfo t, int n)
    {
        if (t.Dims.Skip(n).Any(d => d != 1)) return null;
        var d = new long[n];
        for (int i = 0; i < n; i++) d[i] = i < t.Dims.Length ? t.Dims[i] : 1;
        return d;
    }

    static DType ComputeType(GgufFile f, GgufTensorInfo t) => t.Type.ToDType() ?? throw new ModelLoadException(
        $"{f.Path}: tensor '{t.Name}' is {t.Type.Name()}, which Daop cannot compute with yet " +
        "(it reads f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, mxfp4, iq4_nl, q2_K, q3_K, q4_K, q5_K and q6_K GGUF tensors; the other I-quants come later)");

    readonly record struct Resolved(GgufFile File, GgufTensorInfo Info, int? Slice);

    Resolved Resolve(string name) => TryResolve(name, out var r) ? r
        : throw new ModelLoadException($"{Path}: missing tensor '{name.Split('|')[0]}'") { MissingTensor = name };

    bool TryResolve(string name, out Resolved r)
    {
        foreach (string alternative in name.Split('|'))
        {
            string n = alternative;
            int? slice = null;
            if (n.EndsWith(']') && n.LastIndexOf('[') is var open and > 0 &&
                int.TryParse(n.AsSpan(open + 1, n.Length - open - 2), System.Globalization.NumberStyles.None, null, out int e))
            {
                slice = e;
                n = n[..open];
            }
            if (_byName.TryGetValue(n, out var t))
            {
                r = new Resolved(t.File, t.Info, slice);
                return true;
            }
        }
        r = default;
        return false;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var f in _files) f.Dispose();
    }
}
