using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Daop.Kernels.Cpu;

/// <summary>Micro-benchmarks of the CPU fast paths on random weights, for <c>daop bench</c>.</summary>
public static unsafe class KernelBench
{
    /// <summary>
    /// Single-token <see cref="MatMul.Forward"/> on a random [rows, cols] matrix of <paramref name="type"/>:
    /// weight bytes streamed per second in GB/s (10⁹ B/s), from the fastest of five batches of the
    /// <paramref name="iters"/> calls after a warm-up.
    /// </summary>
    public static double GemvGBps(DType type, int rows, int cols, int iters)
    {
        var w = Alloc(type, rows, cols, 1);
        float* x = Floats(cols, 2), y = Floats(rows, 0);
        try
        {
            double s = BestSecondsPerCall(iters, () =>
                MatMul.Forward(w, new ReadOnlySpan<float>(x, cols), new Span<float>(y, rows), 1));
            return w.ByteLength / s / 1e9;
        }
        finally { Free(w.Data, x, y); }
    }

    /// <summary>
    /// <see cref="ExpertFfn.Forward"/> for one random [hidden, inter] expert on a batch of
    /// <paramref name="tokens"/>: tokens per second, fastest of five batches of the <paramref name="iters"/> calls.
    /// </summary>
    public static double ExpertFfnTokensPerSecond(DType type, int hidden, int inter, int tokens, int iters)
    {
        var gate = Alloc(type, inter, hidden, 3);
        var up = Alloc(type, inter, hidden, 4);
        var down = Alloc(type, hidden, inter, 5);
        float* x = Floats((long)tokens * hidden, 6), y = Floats((long)tokens * hidden, 0);
        float* scratch = Floats(2L * tokens * inter, 0);
        try
        {
            int n = tokens * hidden, ns = 2 * tokens * inter;
            double s = BestSecondsPerCall(iters, () => ExpertFfn.Forward(gate, up, down,
                new ReadOnlySpan<float>(x, n), new Span<float>(y, n), tokens, new Span<float>(scratch, ns)));
            return tokens / s;
        }
        finally { Free(gate.Data, up.Data, down.Data); Free(x, y, scratch); }
    }

    static double BestSecondsPerCall(int iters, Action call)
    {
        iters = Math.Max(1, iters);
        call();
        int batches = Math.Min(5, iters), per = Math.Max(1, iters / batches);
        double best = double.MaxValue;
        for (int b = 0; b < batches; b++)
        {
            long t0 = Stopwatch.GetTimestamp();
            for (int i = 0; i < per; i++) call();
            best = Math.Min(best, Stopwatch.GetElapsedTime(t0).TotalSeconds / per);
        }
        return best;
    }

    /// <summary>Random weights in roughly [-1/√cols, 1/√cols], 64-byte aligned.</summary>
    static WeightMatrix Alloc(DType type, int rows, int cols, uint seed)
    {
        long n = (long)rows * cols;
        byte* p = (byte*)NativeMemory.AlignedAlloc((nuint)(n * type.SizeOf()), 64);
        float scale = 1f / MathF.Sqrt(cols);
        uint state = seed * 2654435761u + 1;
        for (long i = 0; i < n; i++)
        {
            float v = Next(ref state) * scale;
            switch (type)
            {
                case DType.F32: ((float*)p)[i] = v; break;
                case DType.F16: ((Half*)p)[i] = (Half)v; break;
                default: ((ushort*)p)[i] = Bf16.FromFloat(v); break;
            }
        }
        return new WeightMatrix(p, type, rows, cols);
    }

    static float* Floats(long n, uint seed)
    {
        float* p = (float*)NativeMemory.AlignedAlloc((nuint)Math.Max(1, n) * sizeof(float), 64);
        uint state = seed * 2654435761u + 1;
        for (long i = 0; i < n; i++) p[i] = seed == 0 ? 0 : Next(ref state);
        return p;
    }

    /// <summary>xorshift32 mapped to [-1, 1).</summary>
    static float Next(ref uint s)
    {
        s ^= s << 13; s ^= s >> 17; s ^= s << 5;
        return (s >> 8) * (2f / (1 << 24)) - 1f;
    }

    static void Free(params void*[] ps)
    {
        foreach (var p in ps) NativeMemory.AlignedFree(p);
    }
}
