using System.Runtime.InteropServices;
using System.Text.Json;
using Daop.Kernels;
using Daop.Kernels.Cpu;

namespace Daop.Engine.Load.Safetensors;

/// <summary>
/// All tensors of a checkpoint folder: a single <c>model.safetensors</c>, a sharded set described by
/// <c>model.safetensors.index.json</c>, or (failing both) every <c>*.safetensors</c> in the folder.
/// </summary>
public sealed unsafe class TensorStore : ITensorSource
{
    readonly List<SafetensorsFile> _files;
    readonly Dictionary<string, (SafetensorsFile File, TensorEntry Entry)> _byName;
    readonly List<nint> _transposed = [];   // stack[e].T copies, freed with the store
    Func<string, DType?>? _blockFormat;

    /// <summary>The folder (or file) the store was opened from, for messages.</summary>
    public string Source { get; }

    TensorStore(string source, List<SafetensorsFile> files, Dictionary<string, (SafetensorsFile, TensorEntry)> byName)
    {
        Source = source; _files = files; _byName = byName;
    }

    /// <summary>Every tensor name.</summary>
    public IEnumerable<string> Names => _byName.Keys;

    /// <summary>
    /// Declares which tensors hold block-format bytes (a <c>daop quantize</c> checkpoint, <see cref="Config.QuantizationConfig"/>):
    /// <paramref name="blockFormat"/> gives a tensor name's format, or null for a float tensor. <see cref="Matrix"/> then reads
    /// those names as U8 tensors of [rows, row bytes] (or flat) and refuses U8 anywhere else.
    /// </summary>
    public TensorStore WithBlockFormats(Func<string, DType?> blockFormat)
    {
        _blockFormat = blockFormat;
        return this;
    }

    /// <summary>Opens a single safetensors file.</summary>
    public static TensorStore OpenFile(string path) => FromFiles(path, [path], null);

    /// <summary>Opens the checkpoint in <paramref name="dir"/>.</summary>
    public static TensorStore OpenDirectory(string dir)
    {
        string index = System.IO.Path.Combine(dir, "model.safetensors.index.json");
        if (File.Exists(index)) return OpenIndex(dir, index);
        string single = System.IO.Path.Combine(dir, "model.safetensors");
        if (File.Exists(single)) return FromFiles(dir, [single], null);
        var all = WeightFiles(dir);
        if (all.Length == 0) throw NoWeights(dir);
        return FromFiles(dir, all, null);
    }

    /// <summary>Throws the <see cref="OpenDirectory"/> error for a folder without weights, without opening any.</summary>
    public static void CheckHasWeights(string dir)
    {
        if (!File.Exists(System.IO.Path.Combine(dir, "model.safetensors.index.json")) && WeightFiles(dir).Length == 0) throw NoWeights(dir);
    }

    static string[] WeightFiles(string dir) => Directory.Exists(dir)
        ? Directory.GetFiles(dir, "*.safetensors").Where(f => !IsReferenceFile(f)).Order(StringComparer.Ordinal).ToArray()
        : [];

    static ModelLoadException NoWeights(string dir) =>
        new($"{dir}: no model.safetensors, model.safetensors.index.json or *.safetensors weights found");

    static bool IsReferenceFile(string f)
    {
        string n = System.IO.Path.GetFileName(f);
        return n.StartsWith("reference", StringComparison.Ordinal) || n.StartsWith("routing-", StringComparison.Ordinal);
    }

    static TensorStore OpenIndex(string dir, string index)
    {
        // Real indexes are kilobytes; the cap keeps a hostile or corrupt one from being read whole.
        byte[] bytes = ModelFiles.ReadAll(index, SafetensorsFile.MaxHeaderBytes);
        // As for headers: JsonDocument would only fail on bad UTF-8 later, with InvalidOperationException.
        int bad = SafetensorsFile.FirstInvalidUtf8(bytes);
        if (bad >= 0) throw new ModelLoadException($"{index}: not valid UTF-8 (byte 0x{bytes[bad]:X2} at offset {bad})");

        Dictionary<string, string> weightMap = new(StringComparer.Ordinal);
        try
        {
            using var doc = JsonDocument.Parse(bytes);
            long lone = SafetensorsFile.FirstUndecodableString(bytes, new JsonDocumentOptions().MaxDepth);
            if (lone >= 0) throw new ModelLoadException($"{index}: string at offset {lone} escapes half a UTF-16 surrogate pair");
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new ModelLoadException($"{index}: missing object field 'weight_map' (the file is not a JSON object)");
            JsonElement? found = null;
            // JsonDocument keeps repeated properties; a second weight_map or a tensor listed twice
            // would otherwise be resolved silently.
            foreach (var p in doc.RootElement.EnumerateObject())
                if (p.Name == "weight_map")
                {
                    if (found != null) throw new ModelLoadException($"{index}: field 'weight_map' appears twice");
                    found = p.Value;
                }
            if (found is not { ValueKind: JsonValueKind.Object } wm)
                throw new ModelLoadException($"{index}: missing object field 'weight_map'");
            foreach (var p in wm.EnumerateObject())
            {
                if (p.Value.ValueKind != JsonValueKind.String)
                    throw new ModelLoadException($"{index}: weight_map['{p.Name}'] must be a file name string, found {p.Value.GetRawText()}");
                string shard = p.Value.GetString()!;
                if (!IsPlainFileName(shard))
                    throw new ModelLoadException($"{index}: weight_map['{p.Name}'] names '{shard}', which is not a file in the folder");
                if (!weightMap.TryAdd(p.Name, shard))
                    throw new ModelLoadException($"{index}: weight_map lists tensor '{p.Name}' twice");
            }
        }
        catch (JsonException e) { throw new ModelLoadException($"{index}: not valid JSON ({e.Message})"); }
        if (weightMap.Count == 0) throw new ModelLoadException($"{index}: 'weight_map' is empty");

        var shards = weightMap.Values.Distinct().Order(StringComparer.Ordinal)
            .Select(s => System.IO.Path.Combine(dir, s)).ToArray();
        foreach (var s in shards)
            if (!File.Exists(s)) throw new ModelLoadException($"{index}: shard '{System.IO.Path.GetFileName(s)}' is listed but not present in {dir}");
        return FromFiles(dir, shards, weightMap);
    }

    /// <summary>
    /// A bare name of a file directly inside the folder: no separators, not "." or "..", no NUL. (A ".."
    /// inside a name such as "model..v2.safetensors" is harmless and allowed.)
    /// </summary>
    static bool IsPlainFileName(string s) =>
        s.Length > 0 && s != "." && s != ".." && s.IndexOfAny(['/', '\\', '\0']) < 0;

    static TensorStore FromFiles(string source, string[] paths, Dictionary<string, string>? weightMap)
    {
        var files = new List<SafetensorsFile>();
        var byName = new Dictionary<string, (SafetensorsFile, TensorEntry)>(StringComparer.Ordinal);
        try
        {
            foreach (var p in paths)
            {
                var f = SafetensorsFile.Open(p);
                files.Add(f);
                foreach (var (name, entry) in f.Tensors)
                {
                    if (weightMap != null && weightMap.TryGetValue(name, out var owner) &&
                        owner != System.IO.Path.GetFileName(p)) continue; // index decides the owner
                    if (!byName.TryAdd(name, (f, entry)))
                        throw new ModelLoadException($"{source}: tensor '{name}' appears in both {byName[name].Item1.Path} and {p}");
                }
            }
            if (weightMap != null)
                foreach (var (name, shard) in weightMap)
                    if (!byName.ContainsKey(name))
                        throw new ModelLoadException($"{source}: index lists tensor '{name}' in '{shard}', but that shard does not contain it");
            return new TensorStore(source, files, byName);
        }
        catch
        {
            foreach (var f in files) f.Dispose();
            throw;
        }
    }

    /// <summary>True if <paramref name="name"/> is in the checkpoint (or, for <c>stack[e]</c>, its stack is).</summary>
    public bool Contains(string name) => _byName.ContainsKey(name) || StackSlice(name) is { } s && _byName.ContainsKey(s.Stack);

    /// <summary>The first byte of <paramref name="name"/>'s data in the mapped file (<see cref="TensorEntry.ByteLength"/> bytes).</summary>
    public byte* DataPointer(string name)
    {
        var (f, e) = Lookup(name);
        return f.DataPointer(e);
    }

    /// <summary>The file that holds <paramref name="name"/> (for messages); throws naming the tensor and the folder when absent.</summary>
    public string FileOf(string name) => Lookup(name).File.Path;

    /// <summary>The entry for <paramref name="name"/>; throws naming the tensor and the folder when absent.</summary>
    public TensorEntry Entry(string name) => Lookup(name).Entry;

    (SafetensorsFile File, TensorEntry Entry) Lookup(string name) =>
        _byName.TryGetValue(name, out var t) ? t
            : throw new ModelLoadException($"{Source}: missing tensor '{name}'") { MissingTensor = name };

    /// <summary>
    /// A zero-copy matrix view of <paramref name="name"/>, checked against the expected [rows, cols]
    /// (a 1-D tensor of rows*cols is accepted as [rows, cols] only when <paramref name="cols"/> is 1), or, for a name
    /// <c>stack[e]</c> that is not itself a tensor, matrix e of a 3-D tensor [E, rows, cols] (stacked experts, as
    /// Granite-MoE stores them; GGUF's <c>ffn_*_exps</c> read the same way); <c>stack[e].T</c> is the transpose of matrix e
    /// of a stack [E, cols, rows] stored input-major (Llama-4's experts), copied once into memory the store owns.
    /// </summary>
    public WeightMatrix Matrix(string name, int rows, int cols)
    {
        if (StackSlice(name) is { } slice)
            return slice.Transposed ? TransposedMatrix(slice.Stack, slice.Index, rows, cols) : StackedMatrix(slice.Stack, slice.Index, rows, cols);
        var (f, e) = Lookup(name);
        if (_blockFormat?.Invoke(name) is { } block) return BlockMatrix(f, e, block, rows, cols);
        if (e.DType == TensorDType.U8) ComputeType(f, e); // quantized bytes the config does not declare: say so before any shape
        CheckShape(f, e, rows, cols);
        return new WeightMatrix(f.DataPointer(e), ComputeType(f, e), rows, cols);
    }

    /// <summary>A vector tensor widened to fp32 (norm weights, biases): small, so it is copied.</summary>
    public float[] Vector(string name, int length)
    {
        var (f, e) = Lookup(name);
        if (e.Shape.Length != 1 || e.Shape[0] != length)
            throw new ModelLoadException($"{f.Path}: tensor '{name}' has shape {e.ShapeText}, expected [{length}]");
        return ToFloat(f, e);
    }

    /// <summary>Any float tensor widened to fp32, with its shape (for references and tests).</summary>
    public (float[] Data, long[] Shape) Floats(string name)
    {
        var (f, e) = Lookup(name);
        return (ToFloat(f, e), e.Shape);
    }

    /// <summary>An integer tensor (I64 or I32) as longs, with its shape (token ids).</summary>
    public (long[] Data, long[] Shape) Int64s(string name)
    {
        var (f, e) = Lookup(name);
        var bytes = f.Bytes(e);
        return e.DType switch
        {
            TensorDType.I64 => (MemoryMarshal.Cast<byte, long>(bytes).ToArray(), e.Shape),
            TensorDType.I32 => (MemoryMarshal.Cast<byte, int>(bytes).ToArray().Select(x => (long)x).ToArray(), e.Shape),
            _ => throw new ModelLoadException($"{f.Path}: tensor '{name}' has dtype {e.DType}, expected I64 or I32"),
        };
    }

    /// <summary>
    /// Index of the first NaN or ±∞ element of float tensor <paramref name="name"/>, or −1 when every element is finite
    /// (also for integer tensors). Reads the whole tensor: for <c>inspect --check</c>, not for loading.
    /// </summary>
    public long FirstNonFinite(string name)
    {
        var (f, e) = Lookup(name);
        byte* p = f.DataPointer(e);
        const int Chunk = 1 << 28; // elements per span, so tensors past 2 GiB are scanned too
        for (long start = 0; start < e.ElementCount; start += Chunk)
        {
            int n = (int)Math.Min(Chunk, e.ElementCount - start);
            int i = e.DType switch
            {
                TensorDType.F32 => NonFinite.IndexOf(new ReadOnlySpan<float>((float*)p + start, n)),
                TensorDType.BF16 => NonFinite.IndexOf16(new ReadOnlySpan<ushort>((ushort*)p + start, n), 0x7F80),
                TensorDType.F16 => NonFinite.IndexOf16(new ReadOnlySpan<ushort>((ushort*)p + start, n), 0x7C00),
                TensorDType.F64 => FirstNonFinite(new ReadOnlySpan<double>((double*)p + start, n)),
                _ => -1,
            };
            if (i >= 0) return start + i;
        }
        return -1;
    }

    static int FirstNonFinite(ReadOnlySpan<double> x)
    {
        for (int i = 0; i < x.Length; i++) if (!double.IsFinite(x[i])) return i;
        return -1;
    }

    // "stack[e]" or "stack[e].T" (e a non-negative integer) when no tensor has that very name.
    (string Stack, int Index, bool Transposed)? StackSlice(string name)
    {
        if (_byName.ContainsKey(name)) return null;
        bool transposed = name.EndsWith("].T", StringComparison.Ordinal);
        string n = transposed ? name[..^2] : name;
        int open = n.LastIndexOf('[');
        if (open <= 0 || !n.EndsWith(']')) return null;
        return int.TryParse(n.AsSpan(open + 1, n.Length - open - 2), System.Globalization.NumberStyles.None,
            System.Globalization.CultureInfo.InvariantCulture, out int index) ? (n[..open], index, transposed) : null;
    }

    // [rows, cols] = the transpose of matrix `index` of a stack [E, cols, rows] of 16- or 32-bit floats, as a copy.
    WeightMatrix TransposedMatrix(string stack, int index, int rows, int cols)
    {
        var (f, e) = Lookup(stack);
        if (_blockFormat?.Invoke(stack) is { } block)
            throw new ModelLoadException($"{f.Path}: tensor '{stack}' is stored as {block.Name()}; a stack read transposed must be F32, F16 or BF16");
        var type = ComputeType(f, e);
        if (e.Shape is not [var n, var c, var r] || r != rows || c != cols || index >= n)
            throw new ModelLoadException($"{f.Path}: tensor '{stack}' has shape {e.ShapeText}, expected [E, {cols}, {rows}] (input-major) with matrix {index} in it");
        int size = type == DType.F32 ? 4 : 2;
        byte* src = f.DataPointer(e) + index * (long)rows * cols * size;
        byte* dst = (byte*)NativeMemory.AlignedAlloc((nuint)Math.Max(1L, (long)rows * cols * size), 64);
        _transposed.Add((nint)dst);
        if (size == 4) Transpose((uint*)src, (uint*)dst, cols, rows);
        else Transpose((ushort*)src, (ushort*)dst, cols, rows);
        return new WeightMatrix(dst, type, rows, cols);
    }

    // dst [cols, rows] = srcᵀ for src [rows, cols], in 32 x 32 tiles so both sides stay in cache.
    static void Transpose<T>(T* src, T* dst, long rows, long cols) where T : unmanaged
    {
        const int tile = 32;
        for (long r0 = 0; r0 < rows; r0 += tile)
            for (long c0 = 0; c0 < cols; c0 += tile)
                for (long r = r0; r < Math.Min(rows, r0 + tile); r++)
                    for (long c = c0; c < Math.Min(cols, c0 + tile); c++)
                        dst[c * rows + r] = src[r * cols + c];
    }

    WeightMatrix StackedMatrix(string stack, int index, int rows, int cols)
    {
        var (f, e) = Lookup(stack);
        // A block format (daop quantize) stores the stack as U8 [E, rows, row bytes].
        var type = _blockFormat?.Invoke(stack) ?? ComputeType(f, e);
        long width = type.IsBlock() ? type.RowBytes(cols) : cols;
        if (type.IsBlock() && e.DType != TensorDType.U8)
            throw new ModelLoadException($"{f.Path}: tensor '{stack}' has dtype {e.DType}, but the config's quantization_config stores it as {type.Name()}");
        if (e.Shape is not [var n, var r, var c] || r != rows || c != width || index >= n)
            throw new ModelLoadException($"{f.Path}: tensor '{stack}' has shape {e.ShapeText}, expected [E, {rows}, {width}] with matrix {index} in it");
        return new WeightMatrix(f.DataPointer(e) + index * (long)rows * type.RowBytes(cols), type, rows, cols);
    }

    static void CheckShape(SafetensorsFile f, TensorEntry e, int rows, int cols)
    {
        bool ok = e.Shape.Length == 2 ? e.Shape[0] == rows && e.Shape[1] == cols
            : e.Shape.Length == 1 && cols == 1 && e.Shape[0] == rows;
        if (!ok)
            throw new ModelLoadException($"{f.Path}: tensor '{e.Name}' has shape {e.ShapeText}, expected [{rows}, {cols}]");
    }

    // A block-format matrix: U8 bytes of [rows, rowBytes] (as daop quantize writes them) or flat, checked to the byte.
    static WeightMatrix BlockMatrix(SafetensorsFile f, TensorEntry e, DType block, int rows, int cols)
    {
        long rowBytes = block.RowBytes(cols), bytes = rows * rowBytes;
        string expected = $"U8 [{rows}, {rowBytes}] ({rows} rows of {cols} columns as {block.Name()}: {rowBytes} bytes each, {bytes} in all)";
        if (e.DType != TensorDType.U8)
            throw new ModelLoadException($"{f.Path}: tensor '{e.Name}' has dtype {e.DType}, but the config's quantization_config stores it as {block.Name()}: expected {expected}");
        bool shapeOk = e.Shape.Length == 2 ? e.Shape[0] == rows && e.Shape[1] == rowBytes : e.Shape.Length == 1 && e.Shape[0] == bytes;
        if (!shapeOk || e.ByteLength != bytes)
            throw new ModelLoadException($"{f.Path}: tensor '{e.Name}' has shape {e.ShapeText} ({e.ByteLength} bytes), expected {expected}");
        return new WeightMatrix(f.DataPointer(e), block, rows, cols);
    }

    static DType ComputeType(SafetensorsFile f, TensorEntry e) => e.DType switch
    {
        TensorDType.BF16 => DType.BF16,
        TensorDType.F16 => DType.F16,
        TensorDType.F32 => DType.F32,
        TensorDType.U8 => throw new ModelLoadException(
            $"{f.Path}: tensor '{e.Name}' has dtype U8; Daop reads U8 matrices only as the block-format weights of a checkpoint whose " +
            "config.json quantization_config names their class (experts, dense), as 'daop quantize' writes it"),
        _ => throw new ModelLoadException(
            $"{f.Path}: tensor '{e.Name}' has dtype {e.DType}; Daop computes with BF16, F16 or F32 weights"),
    };

    static float[] ToFloat(SafetensorsFile f, TensorEntry e)
    {
        var bytes = f.Bytes(e);
        var dst = new float[e.ElementCount];
        switch (e.DType)
        {
            case TensorDType.F32: MemoryMarshal.Cast<byte, float>(bytes).CopyTo(dst); break;
            case TensorDType.BF16: Bf16.ToFloat(MemoryMarshal.Cast<byte, ushort>(bytes), dst); break;
            case TensorDType.F16: System.Numerics.Tensors.TensorPrimitives.ConvertToSingle(MemoryMarshal.Cast<byte, Half>(bytes), dst); break;
            case TensorDType.F64:
                var d = MemoryMarshal.Cast<byte, double>(bytes);
                for (int i = 0; i < d.Length; i++) dst[i] = (float)d[i];
                break;
            default: throw new ModelLoadException($"{f.Path}: tensor '{e.Name}' has dtype {e.DType}, expected a float type");
        }
        return dst;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var f in _files) f.Dispose();
        foreach (var p in _transposed) NativeMemory.AlignedFree((void*)p);
        _transposed.Clear();
    }
}
