using Daop.Engine.Device.Gpu;
using Daop.Engine.Load.Config;
using Daop.Engine.Model;
using Daop.Engine.Model.Layers;
using Daop.Engine.Schedule;
using Daop.Kernels;
using Daop.Kernels.Gpu;
using Daop.Tests.Kernels;
using ILGPU.Runtime;

namespace Daop.Tests.Gpu;

/// <summary>
/// The expert FFN kernels (fused gate/up + SiLU, down, grouped routed experts, fused down-and-combine) against a
/// double-precision reference. Tolerance per output: 2e-5 · M, where M bounds the fp32 rounding of the whole
/// chain: Σ_j |w_j| · Σ_c |Wd[r,c]| · (|h_c| + |∂h/∂g|·Σ|x·wg| + |∂h/∂u|·Σ|x·wu|).
/// </summary>
[Collection(GpuCollection.Name)]
public class GpuExpertTests(GpuFixture gpu)
{
    internal sealed class Expert(DType type, int hidden, int inter, int seed) : IDisposable
    {
        public readonly NativeWeights Gate = new(type, inter, hidden, seed, 1f / MathF.Sqrt(hidden));
        public readonly NativeWeights Up = new(type, inter, hidden, seed + 1, 1f / MathF.Sqrt(hidden));
        public readonly NativeWeights Down = new(type, hidden, inter, seed + 2, 1f / MathF.Sqrt(inter));
        public ExpertWeights W => new(Gate.W, Up.W, Down.W);
        public void Dispose() { Gate.Dispose(); Up.Dispose(); Down.Dispose(); }

        /// <summary>Expert(x) in double and the error scale M of each output.</summary>
        public (double[] Y, double[] M) Reference(ReadOnlySpan<float> x)
        {
            int hidden = Gate.W.Cols, inter = Gate.W.Rows;
            var h = new double[inter];
            var hm = new double[inter];
            for (int c = 0; c < inter; c++)
            {
                double g = 0, u = 0, mg = 0, mu = 0;
                for (int i = 0; i < hidden; i++)
                {
                    g += x[i] * (double)Gate.At(c, i); mg += Math.Abs(x[i] * (double)Gate.At(c, i));
                    u += x[i] * (double)Up.At(c, i); mu += Math.Abs(x[i] * (double)Up.At(c, i));
                }
                double sg = 1 / (1 + Math.Exp(-g)), silu = g * sg, dsilu = sg * (1 + g * (1 - sg));
                h[c] = silu * u;
                hm[c] = Math.Abs(h[c]) + Math.Abs(dsilu * u) * mg + Math.Abs(silu) * mu;
            }
            var y = new double[hidden];
            var m = new double[hidden];
            for (int r = 0; r < hidden; r++)
                for (int c = 0; c < inter; c++)
                {
                    y[r] += Down.At(r, c) * h[c];
                    m[r] += Math.Abs(Down.At(r, c)) * hm[c];
                }
            return (y, m);
        }
    }

    internal static void AssertClose(double[] want, double[] mag, float[] got, string what, double rel = 2e-5)
    {
        for (int i = 0; i < want.Length; i++)
        {
            double tol = rel * mag[i] + 1e-30;
            if (!(Math.Abs(want[i] - got[i]) <= tol))
                Assert.Fail($"{what}: element {i}: expected {want[i]}, got {got[i]} (tol {tol:E2})");
        }
    }

    [Theory]
    [InlineData(DType.BF16, 64, 96, 1, 1)]
    [InlineData(DType.BF16, 80, 136, 5, 1)]
    [InlineData(DType.F16, 33, 7, 3, 1)]
    [InlineData(DType.F32, 7, 33, 5, 1)]
    [InlineData(DType.BF16, 80, 136, 5, 4)]
    [InlineData(DType.F16, 36, 20, 3, 2)]
    [InlineData(DType.F32, 7, 33, 1, 4)]
    [InlineData(DType.BF16, 40, 24, 9, 1)]
    [InlineData(DType.F16, 33, 17, 33, 1)]
    [InlineData(DType.F32, 24, 40, 17, 1)]
    public void DenseFfnMatchesReference(DType type, int hidden, int inter, int tokens, int lanes) =>
        CheckDenseFfn(gpu, type, hidden, inter, tokens, lanes, launches: 2);

    internal static void CheckDenseFfn(GpuFixture gpu, DType type, int hidden, int inter, int tokens, int lanes, int launches,
        double rel = 2e-5)
    {
        using var ex = new Expert(type, hidden, inter, hidden + inter);
        var x = NativeWeights.Floats(tokens * hidden, 3);
        using var dev = new GpuDevice(gpu.Accelerator, gpu.WithRowLanes(lanes));
        var xb = dev.Allocate(tokens * hidden);
        var yb = dev.Allocate(tokens * hidden);
        ((GpuBuffer)xb).View.SubView(0, x.Length).CopyFromCPU(dev.Stream, x);
        dev.Ffn(ex.W, xb, yb, tokens);
        var got = new float[tokens * hidden];
        dev.CopyToHost(yb, 0, got);
        for (int t = 0; t < tokens; t++)
        {
            var (y, m) = ex.Reference(x.AsSpan(t * hidden, hidden));
            AssertClose(y, m, got.AsSpan(t * hidden, hidden).ToArray(), $"{type} {hidden}x{inter} T={tokens} lanes={lanes} token {t}", rel);
        }
        Assert.Equal(launches, dev.Launches);
    }

    internal static ModelWeights OneLayer(ExpertWeights[] experts) => Daop.Bench.OneLayerWeights.Of(experts);

    /// <summary>
    /// Routed experts through <see cref="GpuExpertScheduler"/>: 1–2 tokens take the fused down-and-combine kernel,
    /// more take the grouped down + combine: row kernels while no expert has more than 4 positions, else the batched
    /// tile kernels (40 tokens over 2 experts: tiles of 32 and 8 per expert).
    /// </summary>
    [Theory]
    [InlineData(DType.BF16, 1, 2, 8, 1)]
    [InlineData(DType.BF16, 2, 3, 6, 1)]
    [InlineData(DType.F16, 9, 2, 3, 1)]
    [InlineData(DType.F32, 5, 4, 8, 1)]
    [InlineData(DType.BF16, 9, 2, 3, 4)]
    [InlineData(DType.BF16, 1, 2, 8, 4)]
    [InlineData(DType.F16, 2, 3, 6, 2)]
    [InlineData(DType.BF16, 3, 2, 8, 1)]
    [InlineData(DType.BF16, 17, 2, 4, 1)]
    [InlineData(DType.F32, 40, 2, 2, 1)]
    [InlineData(DType.F16, 33, 3, 5, 1)]
    public void RoutedExpertsMatchReference(DType type, int tokens, int topK, int numExperts, int lanes) =>
        CheckRoutedExperts(gpu, type, tokens, topK, numExperts, lanes, tokens <= GpuExpertScheduler.FusedCombineMaxTokens ? 2 : 3);

    /// <summary>
    /// Decode routed on the device (<see cref="GpuExpertScheduler.TryRunExpertsRoutedOnDevice"/>: router logits in, three
    /// launches: routing, gate/up, down-and-combine) gives the outputs of the host's routing through
    /// <see cref="GpuExpertScheduler.RunExperts"/>; more tokens than the fused combine takes are left to the host.
    /// </summary>
    [Theory]
    [InlineData(DType.BF16, 1, 2, 8, true, 1)]
    [InlineData(DType.BF16, 2, 3, 6, false, 4)]
    [InlineData(DType.F16, 2, 2, 2, true, 2)]      // both tokens on the same two experts
    [InlineData(DType.F32, 1, 4, 5, true, 4)]
    public void DeviceRoutingMatchesHostRouting(DType type, int tokens, int topK, int numExperts, bool renormalize, int lanes)
    {
        const int hidden = 64, inter = 32;
        var experts = Enumerable.Range(0, numExperts).Select(e => new Expert(type, hidden, inter, 300 + 10 * e)).ToArray();
        try
        {
            var weights = OneLayer(experts.Select(e => e.W).ToArray());
            using var dev = new GpuDevice(gpu.Accelerator, gpu.WithRowLanes(lanes));
            var sched = new GpuExpertScheduler(weights, hidden, numExperts, inter, dev);
            var router = new RouterSpec.SoftmaxTopK(renormalize);
            var logits = NativeWeights.Floats(tokens * numExperts, 9, 2f);
            var x = NativeWeights.Floats(tokens * hidden, 5);
            var (xb, lb, yHost, yDev) = (dev.Allocate(tokens * hidden), dev.Allocate(logits.Length), dev.Allocate(tokens * hidden), dev.Allocate(tokens * hidden));
            ((GpuBuffer)xb).View.SubView(0, x.Length).CopyFromCPU(dev.Stream, x);
            ((GpuBuffer)lb).View.SubView(0, logits.Length).CopyFromCPU(dev.Stream, logits);

            var routing = new RoutingBatch(tokens, topK) { Tokens = tokens };
            var probs = new float[numExperts];
            for (int t = 0; t < tokens; t++)
                Router.SoftmaxTopK(logits.AsSpan(t * numExperts, numExperts), renormalize, routing.Experts.AsSpan(t * topK, topK),
                    routing.Weights.AsSpan(t * topK, topK), probs);
            sched.RunExperts(0, xb, routing, yHost, tokens);
            long before = dev.Launches;
            Assert.True(sched.TryRunExpertsRoutedOnDevice(0, xb, lb, router, topK, yDev, tokens));
            Assert.Equal(3, dev.Launches - before);
            Assert.False(sched.TryRunExpertsRoutedOnDevice(0, xb, lb, router, topK, yDev, GpuExpertScheduler.FusedCombineMaxTokens + 1));
            Assert.False(sched.TryRunExpertsRoutedOnDevice(0, xb, lb, new RouterSpec.SparseMixer(0.01f), topK, yDev, tokens));

            var want = new float[tokens * hidden];
            var got = new float[tokens * hidden];
            dev.CopyToHost(yHost, 0, want);
            dev.CopyToHost(yDev, 0, got);
            float scale = want.Max(MathF.Abs);
            for (int i = 0; i < want.Length; i++)
                Assert.True(Math.Abs(want[i] - got[i]) <= 1e-5f * scale, $"{type} T={tokens} K={topK} [{i}]: host {want[i]}, device {got[i]}");
        }
        finally
        {
            foreach (var e in experts) e.Dispose();
        }
    }

    /// <summary>
    /// Routes <paramref name="tokens"/> random tokens over <paramref name="numExperts"/> random experts of
    /// <paramref name="type"/> (block formats too) through <see cref="GpuExpertScheduler"/> and checks every output against
    /// the double reference; <paramref name="launches"/>, when given, is the kernel launches the call must take.
    /// </summary>
    internal static void CheckRoutedExperts(GpuFixture gpu, DType type, int tokens, int topK, int numExperts, int lanes, int? launches,
        double rel = 2e-5, int hidden = 40, int inter = 24, int? blockRows = null)
    {
        var experts = Enumerable.Range(0, numExperts).Select(e => new Expert(type, hidden, inter, 100 + 10 * e)).ToArray();
        try
        {
            var weights = OneLayer(experts.Select(e => e.W).ToArray());
            var options = gpu.WithRowLanes(lanes);
            if (blockRows is { } br) options = options with { BlockRows = br };
            using var dev = new GpuDevice(gpu.Accelerator, options);
            var sched = new GpuExpertScheduler(weights, hidden, numExperts, inter, dev);
            var rng = new Random(tokens * 7 + topK);
            var routing = new RoutingBatch(tokens, topK) { Tokens = tokens };
            for (int t = 0; t < tokens; t++)
            {
                var pick = Enumerable.Range(0, numExperts).OrderBy(_ => rng.Next()).Take(topK).ToArray();
                for (int j = 0; j < topK; j++)
                {
                    routing.Experts[t * topK + j] = pick[j];
                    routing.Weights[t * topK + j] = (float)(0.1 + rng.NextDouble());
                }
            }
            var x = NativeWeights.Floats(tokens * hidden, 5);
            var xb = dev.Allocate(tokens * hidden);
            var yb = dev.Allocate(tokens * hidden);
            ((GpuBuffer)xb).View.SubView(0, x.Length).CopyFromCPU(dev.Stream, x);
            sched.RunExperts(0, xb, routing, yb, tokens);
            var got = new float[tokens * hidden];
            dev.CopyToHost(yb, 0, got);
            for (int t = 0; t < tokens; t++)
            {
                var want = new double[hidden];
                var mag = new double[hidden];
                for (int j = 0; j < topK; j++)
                {
                    float w = routing.Weights[t * topK + j];
                    var (y, m) = experts[routing.Experts[t * topK + j]].Reference(x.AsSpan(t * hidden, hidden));
                    for (int i = 0; i < hidden; i++) { want[i] += w * y[i]; mag[i] += Math.Abs(w) * m[i]; }
                }
                AssertClose(want, mag, got.AsSpan(t * hidden, hidden).ToArray(),
                    $"{type} {hidden}x{inter} T={tokens} K={topK} E={numExperts} lanes={lanes} rows/team={blockRows} token {t}", rel);
            }
            if (launches is { } n) Assert.Equal(n, dev.Launches);
        }
        finally
        {
            foreach (var e in experts) e.Dispose();
        }
    }
}
