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

/// <summary>GPT-OSS's device kernels on the ILGPU CPU accelerator against the CPU twins: attention sinks and the expert pieces.</summary>
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
    /// (biased down, then the combine), and prefill where batched tiles pay one expert at a time on the Linear kernels.
    /// </summary>
    [Theory]
    [InlineData(DType.BF16, 40, 24, 1, 2, 4, 1, 2)]
    [InlineData(DType.BF16, 40, 24, 2, 3, 6, 4, 2)]
    [InlineData(DType.MXFP4, 64, 40, 1, 2, 4, 1, 2)]
    [InlineData(DType.MXFP4, 64, 40, 2, 2, 3, 2, 2)]
    [InlineData(DType.F16, 33, 17, 3, 2, 8, 1, 3)]
    [InlineData(DType.MXFP4, 64, 40, 3, 3, 5, 1, 3)]
    [InlineData(DType.BF16, 40, 24, 17, 2, 3, 1, null)]
    [InlineData(DType.MXFP4, 64, 40, 17, 2, 2, 1, null)]
    public void BiasedRoutedExpertsMatchTheReference(DType type, int hidden, int inter, int tokens, int topK, int numExperts, int lanes, int? launches)
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
            long before = dev.Launches;
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
                    Assert.True(Math.Abs(want[r] - got[t * hidden + r]) <= 1e-5 * scale,
                        $"{type} {hidden}x{inter} T={tokens} K={topK} lanes={lanes} token {t} row {r}: {want[r]} vs {got[t * hidden + r]}");
            }
            Assert.True(clampedGate > 0 && clampedUp > 0, $"the clamps were not exercised ({clampedGate} gate, {clampedUp} up)");
            if (launches is { } n) Assert.Equal(n, taken);
            else Assert.Equal(6 * routing.Experts.Take(tokens * topK).Distinct().Count(), taken); // per expert
        }
        finally
        {
            foreach (var e in experts) e.Dispose();
        }
    }

    [Fact]
    public void ClampedSwiGluMatchesCpu()
    {
        const int n = 1031;
        var g = NativeWeights.Floats(n, 1, 12f);
        var u = NativeWeights.Floats(n, 2, 12f);
        var want = (float[])g.Clone();
        ClampedSwiGlu.Scalar(want, u, 1.702f, 7f);
        using var gb = gpu.Upload(g);
        using var ub = gpu.Upload(u);
        gpu.Kernels.ClampedSwiGlu(gpu.Stream, gb.View, ub.View, n, 1.702f, 7f);
        var got = gpu.Read(gb, n);
        for (int i = 0; i < n; i++) Assert.True(Math.Abs(want[i] - got[i]) <= 2e-6f * Math.Max(1, Math.Abs(want[i])), $"{i}: {want[i]} vs {got[i]}");
    }

    [Fact]
    public void GatherAndScatterAddFollowTheSlots()
    {
        // T = 3 tokens, K = 2: slots 1 (token 0) and 4 (token 2) went to this expert.
        const int width = 5, topK = 2;
        var x = Enumerable.Range(0, 3 * width).Select(i => (float)i).ToArray();
        int[] order = [9, 1, 4];                                   // the expert's positions start at index 1
        var weights = new[] { 0f, 0.25f, 0f, 0f, 0.5f, 0f };
        using var xb = gpu.Upload(x);
        using var ob = gpu.Upload(order);
        using var wb = gpu.Upload(weights);
        using var xs = gpu.Zeros(2 * width);
        gpu.Kernels.GatherRows(gpu.Stream, xb.View, xs.View, ob.View, 1, 2, width, topK);
        var rows = gpu.Read(xs, 2 * width);
        Assert.Equal(x.AsSpan(0, width).ToArray().Concat(x.AsSpan(2 * width, width).ToArray()), rows);

        var y = Enumerable.Repeat(1f, 3 * width).ToArray();
        using var yb = gpu.Upload(y);
        gpu.Kernels.ScatterAddRows(gpu.Stream, yb.View, xs.View, ob.View, wb.View, 1, 2, width, topK);
        var got = gpu.Read(yb, 3 * width);
        for (int c = 0; c < width; c++)
        {
            Assert.Equal(1 + 0.25f * x[c], got[c]);
            Assert.Equal(1f, got[width + c]);                      // token 1 routed elsewhere
            Assert.Equal(1 + 0.5f * x[2 * width + c], got[2 * width + c]);
        }
    }
}
