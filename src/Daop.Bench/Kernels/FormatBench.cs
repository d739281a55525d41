using System.Diagnostics;
using Daop.Kernels;
using Daop.Kernels.Cpu;

namespace Daop.Bench.Kernels;

/// <summary>One weight format's expert FFN timings (<see cref="FormatBench.Expert"/>).</summary>
/// <param name="Type">The weight format.</param>
/// <param name="ExpertBytes">Weight bytes of one expert (gate, up and down): what one token reads.</param>
/// <param name="OneTokenSeconds">One token through one expert, weights from DRAM.</param>
/// <param name="Batches">Tokens per batched call.</param>
/// <param name="BatchSeconds">Seconds per batched call, one per entry of <paramref name="Batches"/>.</param>
public sealed record FormatTiming(DType Type, long ExpertBytes, double OneTokenSeconds, int[] Batches, double[] BatchSeconds)
{
    /// <summary>One-token tokens per second.</summary>
    public double TokensPerSecond => 1 / OneTokenSeconds;

    /// <summary>Weight bytes read per second by the one-token path, GB/s.</summary>
    public double ReadGBps => ExpertBytes / OneTokenSeconds / 1e9;

    /// <summary>Batched GFLOP/s for entry <paramref name="i"/> (2 flops per weight per token).</summary>
    public double BatchGflops(int i, int hidden, int inter) => 2.0 * 3 * hidden * inter * Batches[i] / BatchSeconds[i] / 1e9;
}

/// <summary>The expert FFN (<see cref="ExpertFfn.Forward"/>) per weight format, for <c>daop bench kernels</c>.</summary>
public static unsafe class FormatBench
{
    /// <summary>
    /// Times one [hidden, inter] SwiGLU expert of <paramref name="type"/>: one token, and each batch size of
    /// <paramref name="batches"/>. Calls rotate over random experts holding at least <paramref name="rotateBytes"/>
    /// of weights, so every call reads its weights from DRAM; best of three rounds.
    /// </summary>
    public static FormatTiming Expert(DType type, int hidden, int inter, int[] batches, long rotateBytes = 1L << 30)
    {
        long bytes = 2 * inter * type.RowBytes(hidden) + hidden * type.RowBytes(inter);
        int n = (int)Math.Max(2, rotateBytes / bytes + 1);
        var experts = new (WeightMatrix G, WeightMatrix U, WeightMatrix D)[n];
        int maxTokens = Math.Max(1, batches.DefaultIfEmpty(1).Max());
        float* x = RandomWeights.NativeFloats((long)maxTokens * hidden, 6), y = RandomWeights.NativeFloats((long)maxTokens * hidden, 0);
        float* scratch = RandomWeights.NativeFloats(2L * maxTokens * inter, 0);
        try
        {
            for (int e = 0; e < n; e++)
                experts[e] = (RandomWeights.Matrix(type, inter, hidden, (uint)(3 * e + 1)), RandomWeights.Matrix(type, inter, hidden, (uint)(3 * e + 2)),
                    RandomWeights.Matrix(type, hidden, inter, (uint)(3 * e + 3)));
            double one = Time(experts, x, y, scratch, hidden, inter, 1, 3 * n);
            var batched = batches.Select(t => Time(experts, x, y, scratch, hidden, inter, t, Math.Max(2, n))).ToArray();
            return new FormatTiming(type, bytes, one, batches, batched);
        }
        finally
        {
            foreach (var (g, u, d) in experts)
            {
                RandomWeights.Free(g.Data); RandomWeights.Free(u.Data); RandomWeights.Free(d.Data);
            }
            RandomWeights.Free(x); RandomWeights.Free(y); RandomWeights.Free(scratch);
        }
    }

    static double Time((WeightMatrix G, WeightMatrix U, WeightMatrix D)[] experts, float* x, float* y, float* scratch,
        int hidden, int inter, int tokens, int iters)
    {
        int e = 0, io = tokens * hidden, s = 2 * tokens * inter;
        void Call()
        {
            var w = experts[e++ % experts.Length];
            ExpertFfn.Forward(w.G, w.U, w.D, new ReadOnlySpan<float>(x, io), new Span<float>(y, io), tokens, new Span<float>(scratch, s));
        }
        Call();
        double best = double.MaxValue;
        for (int rep = 0; rep < 3; rep++)
        {
            long t0 = Stopwatch.GetTimestamp();
            for (int it = 0; it < iters; it++) Call();
            best = Math.Min(best, Stopwatch.GetElapsedTime(t0).TotalSeconds / iters);
        }
        return best;
    }
}
