using System.Diagnostics;
using Daop.Kernels;
using Daop.Kernels.Cpu;

namespace Daop.Bench.Kernels;

/// <summary>One weight format's expert FFN timings (<see cref="FormatBench.Compare"/>).</summary>
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
    /// Times one [hidden, inter] SwiGLU expert per format of <paramref name="types"/>: one token, and each batch size
    /// of <paramref name="batches"/>. Each format gets random experts holding at least <paramref name="rotateBytes"/>
    /// of weights and calls rotate over them, so every call reads its weights from DRAM. The formats are measured in
    /// turn, <paramref name="rounds"/> times over, and each keeps its best: on a shared machine a burst of load then
    /// slows one round of every format rather than one format's whole measurement.
    /// </summary>
    public static FormatTiming[] Compare(DType[] types, int hidden, int inter, int[] batches, int rounds = 3, long rotateBytes = 1L << 30)
    {
        int maxTokens = Math.Max(1, batches.DefaultIfEmpty(1).Max());
        float* x = RandomWeights.NativeFloats((long)maxTokens * hidden, 6), y = RandomWeights.NativeFloats((long)maxTokens * hidden, 0);
        float* scratch = RandomWeights.NativeFloats(2L * maxTokens * inter, 0);
        var sets = new (WeightMatrix G, WeightMatrix U, WeightMatrix D)[types.Length][];
        try
        {
            for (int f = 0; f < types.Length; f++)
            {
                var type = types[f];
                int n = (int)Math.Max(2, rotateBytes / ExpertBytes(type, hidden, inter) + 1);
                sets[f] = new (WeightMatrix, WeightMatrix, WeightMatrix)[n];
                for (int e = 0; e < n; e++)
                    sets[f][e] = (RandomWeights.Matrix(type, inter, hidden, (uint)(3 * e + 1)), RandomWeights.Matrix(type, inter, hidden, (uint)(3 * e + 2)),
                        RandomWeights.Matrix(type, hidden, inter, (uint)(3 * e + 3)));
            }
            var one = Enumerable.Repeat(double.MaxValue, types.Length).ToArray();
            var batched = types.Select(_ => Enumerable.Repeat(double.MaxValue, batches.Length).ToArray()).ToArray();
            for (int r = 0; r < rounds; r++)
                for (int f = 0; f < types.Length; f++)
                {
                    int n = sets[f].Length;
                    one[f] = Math.Min(one[f], Time(sets[f], x, y, scratch, hidden, inter, 1, 3 * n, warm: r == 0));
                    for (int b = 0; b < batches.Length; b++)
                        batched[f][b] = Math.Min(batched[f][b], Time(sets[f], x, y, scratch, hidden, inter, batches[b], Math.Max(2, n / 2), warm: r == 0));
                }
            return types.Select((t, f) => new FormatTiming(t, ExpertBytes(t, hidden, inter), one[f], batches, batched[f])).ToArray();
        }
        finally
        {
            foreach (var set in sets)
                foreach (var (g, u, d) in set ?? [])
                {
                    RandomWeights.Free(g.Data); RandomWeights.Free(u.Data); RandomWeights.Free(d.Data);
                }
            RandomWeights.Free(x); RandomWeights.Free(y); RandomWeights.Free(scratch);
        }
    }

    /// <summary>Weight bytes of one expert: what one token reads.</summary>
    public static long ExpertBytes(DType type, int hidden, int inter) => 2 * inter * type.RowBytes(hidden) + hidden * type.RowBytes(inter);

    /// <summary>Seconds per call, the calls rotating over <paramref name="experts"/>; a first untimed call when <paramref name="warm"/>.</summary>
    static double Time((WeightMatrix G, WeightMatrix U, WeightMatrix D)[] experts, float* x, float* y, float* scratch,
        int hidden, int inter, int tokens, int iters, bool warm)
    {
        int e = 0, io = tokens * hidden, s = 2 * tokens * inter;
        void Call()
        {
            var w = experts[e++ % experts.Length];
            ExpertFfn.Forward(w.G, w.U, w.D, new ReadOnlySpan<float>(x, io), new Span<float>(y, io), tokens, new Span<float>(scratch, s));
        }
        if (warm) Call();
        long t0 = Stopwatch.GetTimestamp();
        for (int it = 0; it < iters; it++) Call();
        return Stopwatch.GetElapsedTime(t0).TotalSeconds / iters;
    }
}
