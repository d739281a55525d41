using Daop.Engine.Device.Cpu;
using Daop.Engine.Device.Gpu;
using Daop.Engine.Load.Config;
using Daop.Engine.Model;
using Daop.Engine.Model.Layers;
using Daop.Engine.Schedule;
using Daop.Kernels;
using Daop.Kernels.Cpu;
using Daop.Tests.Kernels;

namespace Daop.Tests.Gpu;

/// <summary>GPT-OSS's device kernels on the ILGPU CPU accelerator against the CPU twins and double references: attention sinks and the biased experts.</summary>
[Collection(GpuCollection.Name)]
public class GpuGptOssKernelTests(GpuFixture gpu)
{
    [Theory]
    [InlineData(1, 0, 4, 1, 16, 0, 1, 1)]
    [InlineData(5, 2, 4, 2, 8, 0, 1, 1)]
    [InlineData(3, 10, 4, 1, 16, 5, 1, 2)]     // teams merge their partial states with the sink
    [InlineData(4, 6, 4, 2, 6, 3, 4, 1)]       // lanes, and a head dim that is not a multiple of 4
    [InlineData(2, 3, 2, 1, 8, 0, 1, 3)]
    public void SinkAttentionMatchesCpu(int tokens, int startPos, int heads, int kvHeads, int d, int window, int lanes, int teams)
    {
        int cap = startPos + tokens + 2, kvDim = kvHeads * d, qDim = heads * d;
        var q = NativeWeights.Floats(tokens * qDim, 1, 2f);
        var k = NativeWeights.Floats(tokens * kvDim, 2);
        var v = NativeWeights.Floats(tokens * kvDim, 3);
        var kc = NativeWeights.Floats(cap * kvDim, 4);
        var vc = NativeWeights.Floats(cap * kvDim, 5);
        var sinks = NativeWeights.Floats(heads, 6, 3f);
        var wantK = (float[])kc.Clone();
        var wantV = (float[])vc.Clone();
        k.CopyTo(wantK, startPos * kvDim);
        v.CopyTo(wantV, startPos * kvDim);
        var want = new float[tokens * qDim];
        CpuAttention.Causal(q, wantK, wantV, want, tokens, startPos, heads, kvHeads, d, window > 0 ? window : null, sinks);

        using var qb = gpu.Upload(q);
        using var kb = gpu.Upload(k);
        using var vb = gpu.Upload(v);
        using var kcb = gpu.Upload(kc);
        using var vcb = gpu.Upload(vc);
        using var sb = gpu.Upload(sinks);
        using var ob = gpu.Zeros(tokens * qDim);
        using var at = gpu.UploadStep((0, startPos, tokens, 0));
        gpu.WithLanes(1, lanes, () => gpu.Kernels.Attention(gpu.Stream, qb.View, kb.View, vb.View, kcb.View, vcb.View, ob.View,
            at.View, tokens, cap, heads, kvHeads, d, window, sb.View), teams);
        var got = gpu.Read(ob, want.Length);
        for (int i = 0; i < want.Length; i++)
            Assert.True(Math.Abs(want[i] - got[i]) <= 1e-5 * Math.Max(1, Math.Abs(want[i])), $"o[{i}] lanes={lanes} teams={teams}: {want[i]} vs {got[i]}");
    }

    /// <summary>
    /// GPT-OSS's routed experts on the device (<see cref="GpuExpertScheduler"/>, the launches the offloaded slots take too)
    /// against a double reference of biased gate/up, the clamped SwiGLU and biased down: 1–2 tokens in two launches (the
    /// row kernels' biased gate/up and down-and-combine, its block-format pairs with two rows a team), a few in three
    /// (biased down, then the combine), and prefill where batched tiles pay in three on the fp32 FMA tile kernels' biased
    /// variants (biased gate/up, biased grouped down, combine).
    /// </summary>
    [Theory]
    [InlineData(DType.BF16, 40, 24, 1, 2, 4, 1, 2, false)]
    [InlineData(DType.BF16, 40, 24, 2, 3, 6, 4, 2, false)]
    [InlineData(DType.MXFP4, 64, 40, 1, 2, 4, 1, 2, false)]
    [InlineData(DType.MXFP4, 64, 40, 2, 2, 3, 2, 2, false)]
    [InlineData(DType.F16, 33, 17, 3, 2, 8, 1, 3, false)]
    [InlineData(DType.MXFP4, 64, 40, 3, 3, 5, 1, 3, false)]
    [InlineData(DType.BF16, 40, 24, 17, 2, 3, 1, 3, true)]
    [InlineData(DType.MXFP4, 64, 40, 17, 2, 2, 1, 3, true)]
    [InlineData(DType.F16, 33, 17, 40, 2, 2, 1, 3, true)]       // a second 32-position tile of each expert; rows past a 4-row quad
    public void BiasedRoutedExpertsMatchTheReference(DType type, int hidden, int inter, int tokens, int topK, int numExperts, int lanes, int launches,
        bool batched) =>
        CheckBiasedExperts(gpu, type, hidden, inter, tokens, topK, numExperts, lanes, launches, batched);

    /// <summary>
    /// GPT-OSS's router (top-k of the biased router's logits, softmax over the K chosen) on the device for decode: the same
    /// outputs as the host's <see cref="Router.TopKSoftmax"/> routing through the same experts (distinct routing weights,
    /// so a different choice or weight shows), in three launches (route, biased gate/up, biased down-and-combine) and no
    /// copy either way (the host's routing uploads its work list and reads the logits).
    /// </summary>
    [Theory]
    [InlineData(DType.BF16, 40, 24, 1, 2, 8)]
    [InlineData(DType.MXFP4, 64, 40, 2, 4, 32)]     // GPT-OSS's K = 4 of 32
    [InlineData(DType.F16, 33, 17, 2, 3, 5)]
    public void DeviceRoutingMatchesTheHostRouter(DType type, int hidden, int inter, int tokens, int topK, int numExperts)
    {
        var act = new Activation.ClampedSwiGlu(1.702f, 0.6f);
        var experts = Enumerable.Range(0, numExperts).Select(e => new GpuExpertTests.Expert(type, hidden, inter, 200 + 10 * e)).ToArray();
        try
        {
            var biases = Enumerable.Range(0, numExperts).Select(e => new ExpertBiases(NativeWeights.Floats(inter, 5 * e + 1, 0.3f),
                NativeWeights.Floats(inter, 5 * e + 2, 0.3f), NativeWeights.Floats(hidden, 5 * e + 3, 0.3f))).ToArray();
            var weights = Daop.Bench.OneLayerWeights.Of(experts.Select((e, i) => e.W with { Bias = biases[i] }).ToArray(), act);
            using var dev = new GpuDevice(gpu.Accelerator, gpu.Kernels.Options);
            var sched = new GpuExpertScheduler(weights, hidden, numExperts, inter, dev);
            var x = NativeWeights.Floats(tokens * hidden, 11);
            var logits = NativeWeights.Floats(tokens * numExperts, 12, 4f);
            var (xb, lb, yd, yh) = (dev.Allocate(tokens * hidden), dev.Allocate(tokens * numExperts), dev.Allocate(tokens * hidden), dev.Allocate(tokens * hidden));
            ((GpuBuffer)xb).View.SubView(0, x.Length).CopyFromCPU(dev.Stream, x);
            ((GpuBuffer)lb).View.SubView(0, logits.Length).CopyFromCPU(dev.Stream, logits);
            var router = new RouterSpec.TopKSoftmax();
            Assert.True(sched.TryRunExpertsRoutedOnDevice(0, xb, lb, router, topK, yd, tokens)); // uploads the experts
            long launches = dev.Launches, copies = dev.Copies;
            Assert.True(sched.TryRunExpertsRoutedOnDevice(0, xb, lb, router, topK, yd, tokens));
            Assert.Equal(3, dev.Launches - launches);
            Assert.Equal(0, dev.Copies - copies);

            var routing = new RoutingBatch(tokens, topK) { Tokens = tokens };
            for (int t = 0; t < tokens; t++)
                Router.TopKSoftmax(logits.AsSpan(t * numExperts, numExperts), routing.Experts.AsSpan(t * topK, topK), routing.Weights.AsSpan(t * topK, topK));
            sched.RunExperts(0, xb, routing, yh, tokens);
            var (got, want) = (new float[tokens * hidden], new float[tokens * hidden]);
            dev.CopyToHost(yd, 0, got);
            dev.CopyToHost(yh, 0, want);
            double scale = Math.Max(1, want.Max(Math.Abs));
            for (int i = 0; i < want.Length; i++)
                Assert.True(Math.Abs(want[i] - got[i]) <= 1e-6 * scale, $"{type} T={tokens} K={topK} E={numExperts} [{i}]: host {want[i]}, device {got[i]}");
        }
        finally
        {
            foreach (var e in experts) e.Dispose();
        }
    }

    /// <summary>
    /// <see cref="CheckBiasedExperts"/> in <paramref name="gpu"/>'s kernels: the outputs within <paramref name="rel"/> of the
    /// reference (scaled by the largest), both clamps crossed, <paramref name="launches"/> launches, and the batched kernels
    /// taken or not as <paramref name="batched"/> says.
    /// </summary>
    internal static void CheckBiasedExperts(GpuFixture gpu, DType type, int hidden, int inter, int tokens, int topK, int numExperts, int lanes,
        int launches, bool batched, double rel = 1e-5)
    {
        var act = new Activation.ClampedSwiGlu(1.702f, 0.6f); // a limit the random projections cross, so the clamps are exercised
        var experts = Enumerable.Range(0, numExperts).Select(e => new GpuExpertTests.Expert(type, hidden, inter, 100 + 10 * e)).ToArray();
        try
        {
            var biases = Enumerable.Range(0, numExperts).Select(e => new ExpertBiases(NativeWeights.Floats(inter, 7 * e + 1, 0.3f),
                NativeWeights.Floats(inter, 7 * e + 2, 0.3f), NativeWeights.Floats(hidden, 7 * e + 3, 0.3f))).ToArray();
            var weights = Daop.Bench.OneLayerWeights.Of(experts.Select((e, i) => e.W with { Bias = biases[i] }).ToArray(), act);
            using var dev = new GpuDevice(gpu.Accelerator, gpu.WithRowLanes(lanes));
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
            var (xb, yb) = (dev.Allocate(tokens * hidden), dev.Allocate(tokens * hidden));
            ((GpuBuffer)xb).View.SubView(0, x.Length).CopyFromCPU(dev.Stream, x);
            sched.RunExperts(0, xb, routing, yb, tokens); // uploads the experts
            long before = dev.Launches, batchedBefore = sched.BatchedRuns;
            sched.RunExperts(0, xb, routing, yb, tokens);
            long taken = dev.Launches - before;
            var got = new float[tokens * hidden];
            dev.CopyToHost(yb, 0, got);
            int clampedGate = 0, clampedUp = 0;
            for (int t = 0; t < tokens; t++)
            {
                var want = new double[hidden];
                for (int j = 0; j < topK; j++)
                {
                    int e = routing.Experts[t * topK + j];
                    var (w, b) = (experts[e], biases[e]);
                    var h = new double[inter];
                    for (int c = 0; c < inter; c++)
                    {
                        double g = b.Gate[c], u = b.Up[c];
                        for (int i = 0; i < hidden; i++) { g += x[t * hidden + i] * (double)w.Gate.At(c, i); u += x[t * hidden + i] * (double)w.Up.At(c, i); }
                        if (g > act.Limit) clampedGate++;
                        if (Math.Abs(u) > act.Limit) clampedUp++;
                        g = Math.Min(g, act.Limit);
                        u = Math.Clamp(u, -act.Limit, act.Limit);
                        h[c] = g / (1 + Math.Exp(-act.Alpha * g)) * (u + 1);
                    }
                    for (int r = 0; r < hidden; r++)
                    {
                        double y = b.Down[r];
                        for (int c = 0; c < inter; c++) y += w.Down.At(r, c) * h[c];
                        want[r] += routing.Weights[t * topK + j] * y;
                    }
                }
                double scale = Math.Max(1, want.Max(Math.Abs));
                for (int r = 0; r < hidden; r++)
                    Assert.True(Math.Abs(want[r] - got[t * hidden + r]) <= rel * scale,
                        $"{type} {hidden}x{inter} T={tokens} K={topK} lanes={lanes} token {t} row {r}: {want[r]} vs {got[t * hidden + r]}");
            }
            Assert.True(clampedGate > 0 && clampedUp > 0, $"the clamps were not exercised ({clampedGate} gate, {clampedUp} up)");
            Assert.Equal(launches, taken);
            Assert.Equal(batched ? 1 : 0, sched.BatchedRuns - batchedBefore);
        }
        finally
        {
            foreach (var e in experts) e.Dispose();
        }
    }
}

/// <summary>
/// GPT-OSS's biased experts in batched tiles on the tensor-core kernels' biased variants (bf16, and MXFP4 dequantized in
/// registers), the mma emulated on the 32-wide CPU accelerator: split + biased gate/up, split + biased grouped down,
/// combine (5 launches). Tolerance as for the SwiGLU experts there (4e-5 of the largest output).
/// </summary>
[Collection(Gpu32Collection.Name)]
public class GpuGptOssMmaTests(Gpu32Fixture gpu)
{
    [Theory]
    [InlineData(DType.BF16, 40, 24, 17, 2, 3)]
    [InlineData(DType.MXFP4, 64, 40, 12, 2, 2)]
    [InlineData(DType.BF16, 24, 40, 70, 1, 1)]     // a second 64-position tile; partial 16-row blocks of gate/up and down
    public void BiasedExpertsOnTheTensorCoresMatchTheReference(DType type, int hidden, int inter, int tokens, int topK, int numExperts) =>
        GpuGptOssKernelTests.CheckBiasedExperts(gpu, type, hidden, inter, tokens, topK, numExperts, lanes: 1, launches: 5, batched: true, rel: 4e-5);
}
