using System.Diagnostics;
using System.Runtime.InteropServices;
using Daop.Kernels;
using Daop.Kernels.Cpu;

namespace Daop.Bench.Kernels;

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
        var w = RandomWeights.Matrix(type, rows, cols, 1);
        float* x = RandomWeights.NativeFloats(cols, 2), y = RandomWeights.NativeFloats(rows, 0);
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
        var gate = RandomWeights.Matrix(type, inter, hidden, 3);
        var up = RandomWeights.Matrix(type, inter, hidden, 4);
        var down = RandomWeights.Matrix(type, hidden, inter, 5);
        float* x = RandomWeights.NativeFloats((long)tokens * hidden, 6), y = RandomWeights.NativeFloats((long)tokens * hidden, 0);
        float* scratch = RandomWeights.NativeFloats(2L * tokens * inter, 0);
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


    static void Free(params void*[] ps)
    {
        foreach (var p in ps) NativeMemory.AlignedFree(p);
    }
}
