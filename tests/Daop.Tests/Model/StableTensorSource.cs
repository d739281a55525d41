using System.Runtime.InteropServices;
using Daop.Engine.Load;
using Daop.Kernels;
using Daop.Kernels.Cpu;

namespace Daop.Tests.Model;

/// <summary>
/// Random bf16 weights that are the same in every process (the seed mixes an FNV-1a hash of the tensor name, where
/// <see cref="SyntheticTensorSource"/> uses the per-process string hash). Unlike it, norm weights are 1 ± 0.25 and
/// biases ±0.1, so LayerNorm and bias paths change the logits. <paramref name="absent"/> names tensors that
/// <see cref="Contains"/> denies (e.g. lm_head.weight, to tie the head to the embedding).
/// </summary>
sealed unsafe class StableTensorSource(params string[] absent) : ITensorSource
{
    readonly List<IntPtr> _blocks = [];

    public bool Contains(string name) => !absent.Contains(name);

    public WeightMatrix Matrix(string name, int rows, int cols)
    {
        long n = (long)rows * cols;
        var p = (ushort*)NativeMemory.AlignedAlloc((nuint)Math.Max(2, n * 2), 64);
        _blocks.Add((IntPtr)p);
        float scale = 2.449f / MathF.Sqrt(cols);
        ulong x = Seed(name);
        for (long i = 0; i < n; i++) p[i] = Bf16.FromFloat(Next(ref x) * scale);
        return new WeightMatrix((byte*)p, DType.BF16, rows, cols);
    }

    public float[] Vector(string name, int length)
    {
        var v = new float[length];
        ulong x = Seed(name);
        bool bias = name.EndsWith(".bias", StringComparison.Ordinal);
        for (int i = 0; i < length; i++) v[i] = bias ? 0.1f * Next(ref x) : 1 + 0.25f * Next(ref x);
        return v;
    }

    static ulong Seed(string name)
    {
        ulong h = 0xCBF29CE484222325;
        foreach (char c in name) h = (h ^ c) * 0x100000001B3;
        return h | 1;
    }

    // xorshift64*, two uniforms summed: bell-shaped in (−1, 1).
    static float Next(ref ulong x)
    {
        x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
        ulong r = x * 0x2545F4914F6CDD1D;
        return (r >> 40) / 16777216f + (r & 0xFFFFFF) / 16777216f - 1f;
    }

    public void Dispose()
    {
        foreach (var p in _blocks) NativeMemory.AlignedFree((void*)p);
        _blocks.Clear();
    }
}
