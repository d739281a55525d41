using System.Runtime.InteropServices;
using Daop.Kernels;
using Daop.Kernels.Cpu;
using Daop.Engine.Load;

namespace Daop.Bench;

/// <summary>
/// Random weights in host memory for any config, so a model shape can be benchmarked without a download
/// (e.g. Mixtral-8x7B truncated to 8 layers, or the full 93 GB model that fits no GPU and no disk here).
/// Matrices are bf16 N(0, σ²) with σ = 1/√cols (activations keep their scale through the layers); norm
/// weights are 1, biases 0. Deterministic for a seed, generated in parallel.
/// </summary>
/// <remarks>
/// With <c>distinctPerShape</c>, matrices of one shape cycle through that many random buffers: a 93 GB
/// Mixtral-8x7B then fits a 128 GB host with room for page-locked copies. Speed does not depend on the values,
/// and each buffer is far larger than any cache, so reuse does not flatter the timings.
/// </remarks>
public sealed unsafe class SyntheticTensorSource(ulong seed = 1, int distinctPerShape = 0) : ITensorSource
{
    readonly List<IntPtr> _blocks = new();
    readonly Dictionary<(int, int), List<IntPtr>> _byShape = new();
    readonly Dictionary<(int, int), int> _next = new();
    long _bytes;

    /// <summary>Bytes allocated so far.</summary>
    public long Bytes => _bytes;

    /// <inheritdoc />
    public bool Contains(string name) => true;

    /// <inheritdoc />
    public WeightMatrix Matrix(string name, int rows, int cols)
    {
        if (distinctPerShape > 0)
            lock (_blocks)
            {
                var list = _byShape.TryGetValue((rows, cols), out var l) ? l : _byShape[(rows, cols)] = new List<IntPtr>();
                if (list.Count >= distinctPerShape)
                {
                    int i = _next.GetValueOrDefault((rows, cols));
                    _next[(rows, cols)] = (i + 1) % list.Count;
                    return new WeightMatrix((byte*)list[i], DType.BF16, rows, cols);
                }
            }
        var m = Random(name, rows, cols);
        if (distinctPerShape > 0) lock (_blocks) _byShape[(rows, cols)].Add((IntPtr)m.Data);
        return m;
    }

    WeightMatrix Random(string name, int rows, int cols)
    {
        long n = (long)rows * cols;
        var p = (ushort*)NativeMemory.AlignedAlloc((nuint)(n * 2), 64);
        lock (_blocks) { _blocks.Add((IntPtr)p); _bytes += n * 2; }
        float scale = 1f / MathF.Sqrt(cols);
        ulong s = seed ^ (ulong)name.GetHashCode(StringComparison.Ordinal) * 0x9E3779B97F4A7C15;
        const long Chunk = 1 << 20;
        Parallel.For(0, (n + Chunk - 1) / Chunk, c =>
        {
            ulong x = s + (ulong)c * 0xBF58476D1CE4E5B9 + 1;
            long end = Math.Min(n, (c + 1) * Chunk);
            for (long i = c * Chunk; i < end; i++)
            {
                // xorshift64*, two uniforms summed: a cheap bell-shaped value with variance 1/6.
                x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
                ulong r = x * 0x2545F4914F6CDD1D;
                float u = ((r >> 40) / 16777216f) + ((r & 0xFFFFFF) / 16777216f) - 1f;
                p[i] = Bf16.FromFloat(u * scale * 2.449f);
            }
        });
        return new WeightMatrix((byte*)p, DType.BF16, rows, cols);
    }

    /// <inheritdoc />
    public float[] Vector(string name, int length)
    {
        var v = new float[length];
        if (!name.EndsWith(".bias", StringComparison.Ordinal)) Array.Fill(v, 1f);
        return v;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        lock (_blocks)
        {
            foreach (var p in _blocks) NativeMemory.AlignedFree((void*)p);
            _blocks.Clear();
        }
    }
}
