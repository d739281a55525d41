using System.Runtime.InteropServices;
using Daop.Kernels;

namespace Daop.Engine.Load.Gguf;

/// <summary>
/// Puts back the row order of q and k that llama.cpp's converter changed for its <c>llama</c> architecture.
/// </summary>
/// <remarks>
/// Hugging Face's rotary embedding rotates element i of a head with element i + D/2 (rotate_half); llama.cpp's "normal"
/// RoPE rotates adjacent elements 2i and 2i + 1. So its converter (LlamaModel.permute) reorders the rows of q_proj and
/// k_proj within each head of D rows: stored row 2i + j is Hugging Face row j·D/2 + i (j = 0, 1). Daop's RoPE is
/// rotate_half on every device, so rather than a second RoPE pairing in every kernel, the rows are put back once at load:
/// Hugging Face row k is stored row 2k (k &lt; D/2) or 2(k − D/2) + 1. Rows are whole in every GGUF format (blocks never
/// span rows), so this is a copy of whole rows in the stored format, q8_0 or bf16 alike. The copies (q and k of every
/// layer: for Mixtral-8x7B at q8_0 about 0.7 GB, 1.5 % of the file) live in native memory this source owns; every other
/// tensor stays a view into the mapped file. Biases of q and k, when a file has them, are permuted the same way.
/// </remarks>
public sealed unsafe class RopeRowOrder : ITensorSource
{
    readonly ITensorSource _inner;
    readonly Dictionary<string, int> _heads; // q/k weight or bias name → heads whose rows it holds
    readonly List<nint> _owned = [];

    /// <summary>Wraps <paramref name="inner"/>; <paramref name="heads"/> maps each q and k weight (and bias) name to its number of heads.</summary>
    public RopeRowOrder(ITensorSource inner, IReadOnlyDictionary<string, int> heads)
    {
        _inner = inner;
        _heads = new Dictionary<string, int>(heads, StringComparer.Ordinal);
    }

    /// <summary>Bytes of the row copies made so far.</summary>
    public long CopiedBytes { get; private set; }

    /// <inheritdoc />
    public bool Contains(string name) => _inner.Contains(name);

    /// <inheritdoc />
    public WeightMatrix Matrix(string name, int rows, int cols)
    {
        var m = _inner.Matrix(name, rows, cols);
        if (!_heads.TryGetValue(name, out int heads)) return m;
        int d = HeadRows(name, rows, heads);
        long rowBytes = m.RowBytes, total = rows * rowBytes;
        byte* dst = (byte*)NativeMemory.AlignedAlloc((nuint)Math.Max(total, 1), 64);
        _owned.Add((nint)dst);
        CopiedBytes += total;
        for (int r = 0; r < rows; r++)
            Buffer.MemoryCopy(m.Data + Stored(r, d) * rowBytes, dst + r * rowBytes, rowBytes, rowBytes);
        return new WeightMatrix(dst, m.Type, rows, cols);
    }

    /// <inheritdoc />
    public float[] Vector(string name, int length)
    {
        var v = _inner.Vector(name, length);
        if (!_heads.TryGetValue(name, out int heads)) return v;
        int d = HeadRows(name, length, heads);
        var r = new float[length];
        for (int k = 0; k < length; k++) r[k] = v[Stored(k, d)];
        return r;
    }

    /// <summary>The stored row holding Hugging Face row <paramref name="k"/> for heads of <paramref name="d"/> rows.</summary>
    public static int Stored(int k, int d)
    {
        int head = k / d, i = k % d, half = d / 2;
        return head * d + (i < half ? 2 * i : 2 * (i - half) + 1);
    }

    static int HeadRows(string name, int rows, int heads) => heads > 0 && rows % heads == 0 && rows / heads % 2 == 0
        ? rows / heads : throw new ModelLoadException($"tensor '{name}': {rows} rows do not split into {heads} heads of an even size");

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var p in _owned) NativeMemory.AlignedFree((void*)p);
        _owned.Clear();
        _inner.Dispose();
    }
}
