using System.Collections.Concurrent;
using Daop.Engine.Device.Gpu;
using Daop.Engine.Load.Safetensors;
using Daop.Engine.Model;
using Daop.Engine.Placement;
using Daop.Engine.Schedule;
using Daop.Tests.Gpu;
using Xunit.Abstractions;

namespace Daop.Tests.Schedule;

/// <summary>
/// DAOP's approximate mode and the CPU placement scheduler: exact policies on <see cref="CpuStandInScheduler"/> give
/// the local path's logits bit for bit; the approximate mode gives the same logits on the CPU scheduler and on
/// <see cref="OffloadedExpertScheduler"/> (ILGPU CPU accelerator) for the same residency; graceful degradation leaves at
/// most K−1 CPU experts per token and layer; a routing override drives both schedulers' bookkeeping identically.
/// </summary>
[Collection(GpuCollection.Name)]
public class ApproximateModeTests(GpuFixture gpu, ITestOutputHelper output)
{
    const int Prefix = 12, Decode = 6, Chunk = 8, Context = 64;

    static readonly ConcurrentDictionary<string, (int[] Tokens, float[] Prefill, float[][] Steps)> s_reference = new();

    static IPlacementPolicy Policy(string name) => name switch
    {
        "lru" => new LruPolicy(prefetch: false),
        "prefetch" => new LruPolicy(prefetch: true),
        "static" => new StaticPolicy(),
        "daop-exact" => new DaopPolicy(approximate: false),
        "daop" => new DaopPolicy(approximate: true),
        "daop-checked" => new DaopPolicy(approximate: true, use: PredictionUse.Check),
        "daop-checked-degrade" => new DaopPolicy(approximate: true, use: PredictionUse.CheckDegrade),
        _ => throw new ArgumentException(name),
    };

    static int[] Tokens(string fixture)
    {
        using var reference = TensorStore.OpenFile(Path.Combine(TestPaths.Fixture(fixture), "reference.safetensors"));
        var (ids, shape) = reference.Int64s("input_ids");
        var t = ids.Take((int)shape[1]).Select(x => (int)x).ToArray();
        Assert.True(t.Length >= Prefix + Decode, $"{fixture}: {t.Length} tokens");
        return t;
    }

    static (int[] Tokens, float[] Prefill, float[][] Steps) Reference(string fixture) => s_reference.GetOrAdd(fixture, f =>
    {
        using var cpu = MoeModel.Load(TestPaths.Fixture(f), new ModelOptions { ContextLength = Context, MaxChunkTokens = Chunk });
        return Run(cpu, Tokens(f));
    });

    static (int[] Tokens, float[] Prefill, float[][] Steps) Run(MoeModel model, int[] tokens)
    {
        int v = model.Config.VocabSize;
        var cache = model.NewCache();
        var prefill = new float[Prefix * v];
        model.Forward(tokens.AsSpan(0, Prefix), 0, cache, prefill, allLogits: true);
        var steps = new float[Decode][];
        for (int i = 0; i < Decode; i++)
        {
            steps[i] = new float[v];
            model.Forward(tokens.AsSpan(Prefix + i, 1), Prefix + i, cache, steps[i]);
        }
        return (tokens, prefill, steps);
    }

    static MoeModel LoadCpu(string fixture, IPlacementPolicy policy, double ratio, IRoutingOverride? replay = null) =>
        MoeModel.Load(TestPaths.Fixture(fixture), new ModelOptions
        {
            ContextLength = Context,
            MaxChunkTokens = Chunk,
            Experts = (m, _) => CpuStandInScheduler.FromRatio(m, policy, ratio, routingOverride: replay),
        });

    MoeModel LoadGpu(string fixture, IPlacementPolicy policy, double ratio, IRoutingOverride? replay = null) =>
        MoeModel.Load(TestPaths.Fixture(fixture), new ModelOptions
        {
            ContextLength = Context,
            MaxChunkTokens = Chunk,
            Device = _ => new GpuDevice(gpu.Accelerator),
            Experts = (m, d) => OffloadedExpertScheduler.FromRatio(m, d, policy, ratio, options: new OffloadOptions { RoutingOverride = replay }),
        });

    public static IEnumerable<object[]> ExactCases() =>
        from f in TestPaths.HfFixtures().Select(o => (string)o[0])
        from ratio in new[] { 0.25, 0.5, 0.75 }
        from p in new[] { "lru", "prefetch", "static", "daop-exact" }
        select new object[] { f, ratio, p };

    [Theory]
    [MemberData(nameof(ExactCases))]
    public void ExactPoliciesGiveTheLocalLogitsBitForBit(string fixture, double ratio, string policy)
    {
        var want = Reference(fixture);
        using var model = LoadCpu(fixture, Policy(policy), ratio);
        var got = Run(model, want.Tokens);
        Assert.Equal(want.Prefill, got.Prefill);
        for (int i = 0; i < Decode; i++) Assert.Equal(want.Steps[i], got.Steps[i]);
        var s = ((CpuStandInScheduler)model.Experts).Stats;
        Assert.Equal(s.Activations, s.Hits + s.Misses);
        Assert.Equal(s.Activations, s.GpuExpertRuns + s.CpuExpertRuns);
        Assert.Equal(0, s.PrecalculatedRuns);
        if (policy is "static" or "daop-exact") Assert.Equal(0, s.MissTransfers + s.PrefetchTransfers);
        // LRU loads every miss, but a layer left without a slot (a dense model's 3 FFNs at 0.25 give one slot) runs on the CPU.
        bool everyLayerHasASlot = OffloadBudget.SlotsFromRatio(model.Config, ratio).Where((_, l) => model.Config.IsMoe(l)).All(n => n > 0);
        if (policy is "lru" or "prefetch" && everyLayerHasASlot) Assert.Equal(0, s.CpuExpertRuns);
        // The predictor reads layer l+1's gate on layer l's input: MoE layers right after a MoE layer are predicted.
        int predicted = Enumerable.Range(1, model.Config.NumLayers - 1).Count(l => model.Config.IsMoe(l) && model.Config.IsMoe(l - 1));
        Assert.Equal(Decode * model.Config.TopK * predicted, s.PredictedActivations);
    }

    /// <summary>DAOP's exact mode on the GPU scheduler gives the reference logits (up to fp32 summation order) at each ratio.</summary>
    [Theory]
    [InlineData("mixtral-tiny")]
    [InlineData("qwen2moe-tiny")]
    [InlineData("phimoe-tiny")]
    [InlineData("gptoss-tiny")]
    public void GpuDaopExactMatchesTheReferenceAtSeveralRatios(string fixture)
    {
        var want = Reference(fixture);
        foreach (double ratio in new[] { 0.25, 0.5, 0.75 })
        {
            using var model = LoadGpu(fixture, new DaopPolicy(approximate: false), ratio);
            var got = Run(model, want.Tokens);
            LogitsAssert.Close(want.Prefill, got.Prefill, $"{fixture} daop-exact @ {ratio} prefill");
            for (int i = 0; i < Decode; i++) LogitsAssert.Close(want.Steps[i], got.Steps[i], $"{fixture} daop-exact @ {ratio} decode {i}");
            var s = ((OffloadedExpertScheduler)model.Experts).Stats;
            Assert.Equal(0, s.PrecalculatedRuns);
            Assert.True(s.CpuExpertRuns > 0);
        }
    }

    [Theory]
    [InlineData("mixtral-tiny", 0.25, "daop")]
    [InlineData("mixtral-tiny", 0.5, "daop")]
    [InlineData("mixtral-odd", 0.5, "daop")]
    [InlineData("olmoe-tiny", 0.25, "daop")]
    [InlineData("qwen2moe-tiny", 0.5, "daop")]
    [InlineData("qwen3moe-tiny", 0.5, "daop")]
    [InlineData("phimoe-tiny", 0.5, "daop")]
    [InlineData("mixtral-tiny", 0.25, "daop-checked")]
    [InlineData("olmoe-tiny", 0.25, "daop-checked")]
    [InlineData("qwen2moe-tiny", 0.5, "daop-checked")]
    [InlineData("mixtral-tiny", 0.25, "daop-checked-degrade")]
    [InlineData("qwen3moe-tiny", 0.5, "daop-checked-degrade")]
    [InlineData("gptoss-tiny", 0.25, "daop")]
    [InlineData("gptoss-tiny", 0.5, "daop-checked")]
    [InlineData("gptoss-tiny", 0.25, "daop-checked-degrade")]
    public void CpuAndGpuApproximateModesAgree(string fixture, double ratio, string policy)
    {
        var want = Reference(fixture);
        using var cpu = LoadCpu(fixture, Policy(policy), ratio);
        using var gpuModel = LoadGpu(fixture, Policy(policy), ratio);
        var c = (CpuStandInScheduler)cpu.Experts;
        var g = (OffloadedExpertScheduler)gpuModel.Experts;
        Assert.True(c.Approximate && g.Approximate);
        var a = Run(cpu, want.Tokens);
        var b = Run(gpuModel, want.Tokens);
        g.Synchronize();
        g.CheckInvariants();
        for (int l = 0; l < c.Residency.Layers; l++)
            Assert.Equal(c.Residency.Resident(l), g.Residency.Resident(l));
        LogitsAssert.Close(a.Prefill, b.Prefill, $"{fixture} prefill");
        Assert.Equal(want.Prefill, a.Prefill); // prefill stays exact
        double diff = 0;
        for (int i = 0; i < Decode; i++)
        {
            LogitsAssert.Close(a.Steps[i], b.Steps[i], $"{fixture} approximate decode {i}");
            diff = Math.Max(diff, want.Steps[i].Zip(a.Steps[i], (x, y) => Math.Abs(x - y)).Max());
        }
        var sc = c.Stats;
        var sg = g.Stats;
        Assert.Equal(sc.PrecalculatedRuns, sg.PrecalculatedRuns);
        Assert.Equal(sc.Hits, sg.Hits);
        Assert.Equal(sc.CpuExpertRuns, sg.CpuExpertRuns);
        Assert.Equal(sc.Substitutions, sg.Substitutions);
        Assert.Equal(sc.PredictionHits, sg.PredictionHits);
        Assert.Equal(sc.PrecalculatedUnused, sg.PrecalculatedUnused);
        Assert.True(sc.PrecalculatedRuns > 0, "some predicted experts should run on the CPU");
        Assert.Equal(0, sg.MissTransfers + sg.PrefetchTransfers);
        Assert.Equal(sc.Transfers, sg.Transfers);
        output.WriteLine($"{fixture} @ {ratio} {policy}: max |approx − exact| {diff:E2}; cpu {sc}; gpu {sg}");
    }

    /// <summary>
    /// A drift bound of 0 rejects every pre-calculation (the true input never equals the previous layer's), so the checked
    /// mode computes the exact model's decode on both executors, where the unbounded one does not; a bound in between
    /// makes the same decisions on both (same rejections, same logits).
    /// </summary>
    [Theory]
    [InlineData("mixtral-tiny", 0.25)]
    [InlineData("olmoe-tiny", 0.25)]
    [InlineData("qwen3moe-tiny", 0.5)]
    [InlineData("gptoss-tiny", 0.25)]
    public void DriftBoundedCheckedModeFallsBackToExactExperts(string fixture, double ratio)
    {
        var want = Reference(fixture);
        double Worst((int[] Tokens, float[] Prefill, float[][] Steps) got) =>
            Enumerable.Range(0, Decode).Max(i => want.Steps[i].Zip(got.Steps[i], (x, y) => (double)Math.Abs(x - y)).Max());

        using (var unbounded = LoadCpu(fixture, Policy("daop-checked"), ratio))
            Assert.True(Worst(Run(unbounded, want.Tokens)) > 1e-4, "the unbounded checked mode should differ from the exact model");

        using var cpu = LoadCpu(fixture, new DaopPolicy(approximate: true, use: PredictionUse.Check, precalcMaxDrift: 0), ratio);
        using var gpuModel = LoadGpu(fixture, new DaopPolicy(approximate: true, use: PredictionUse.Check, precalcMaxDrift: 0), ratio);
        var a = Run(cpu, want.Tokens);
        var b = Run(gpuModel, want.Tokens);
        for (int i = 0; i < Decode; i++)
        {
            LogitsAssert.Close(want.Steps[i], a.Steps[i], $"{fixture} checked within 0, CPU, decode {i}");
            LogitsAssert.Close(want.Steps[i], b.Steps[i], $"{fixture} checked within 0, GPU, decode {i}");
        }
        foreach (var s in new[] { ((CpuStandInScheduler)cpu.Experts).Stats, ((OffloadedExpertScheduler)gpuModel.Experts).Stats })
        {
            Assert.Equal(0, s.PrecalculatedRuns);
            Assert.True(s.PrecalculatedRejected > 0, "every pre-calculation should have been rejected, and there were some");
        }

        using var cpuMid = LoadCpu(fixture, new DaopPolicy(approximate: true, use: PredictionUse.Check, precalcMaxDrift: 0.9f), ratio);
        using var gpuMid = LoadGpu(fixture, new DaopPolicy(approximate: true, use: PredictionUse.Check, precalcMaxDrift: 0.9f), ratio);
        var c = Run(cpuMid, want.Tokens);
        var g = Run(gpuMid, want.Tokens);
        for (int i = 0; i < Decode; i++) LogitsAssert.Close(c.Steps[i], g.Steps[i], $"{fixture} checked within 0.9, decode {i}");
        var sc = ((CpuStandInScheduler)cpuMid.Experts).Stats;
        var sg = ((OffloadedExpertScheduler)gpuMid.Experts).Stats;
        Assert.Equal(sc.PrecalculatedRejected, sg.PrecalculatedRejected);
        Assert.Equal(sc.PrecalculatedRuns, sg.PrecalculatedRuns);
        Assert.Equal(sc.CpuExpertRuns, sg.CpuExpertRuns);
        Assert.True(sc.PrecalculatedRuns > 0 && sc.PrecalculatedRejected > 0, "a bound in between should take some pre-calculations and reject others");
        output.WriteLine($"{fixture} @ {ratio} within 0.9: {sc.PrecalculatedRuns} taken, {sc.PrecalculatedRejected} rejected");
    }

    /// <summary>A drift bound belongs to a checked approximate mode: elsewhere (and negative or NaN) it is refused when the policy is made.</summary>
    [Fact]
    public void DriftBoundsOutsideCheckedModesAreRefused()
    {
        Assert.Throws<ArgumentException>(() => new DaopPolicy(approximate: true, precalcMaxDrift: 0.3f));
        Assert.Throws<ArgumentException>(() => new DaopPolicy(approximate: false, use: PredictionUse.Check, precalcMaxDrift: 0.3f));
        Assert.Throws<ArgumentOutOfRangeException>(() => new DaopPolicy(approximate: true, use: PredictionUse.Check, precalcMaxDrift: -1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new DaopPolicy(approximate: true, use: PredictionUse.Check, precalcMaxDrift: float.NaN));
        var p = new DaopPolicy(approximate: true, use: PredictionUse.CheckDegrade, precalcMaxDrift: 0.35f);
        Assert.Equal("daop-checked-degrade-within0.35", p.Name);
        Assert.Equal(0.35f, p.PrecalcMaxDrift);
        Assert.Equal(float.PositiveInfinity, new DaopPolicy(approximate: true, use: PredictionUse.Check).PrecalcMaxDrift);
    }

    /// <summary>
    /// On a recorded trace of the embedded model, the degraded prediction keeps at most K−1 (one for top-2) experts off the
    /// GPU per token and layer whenever the layer has a GPU expert, keeps predicted GPU experts, and keeps the weights' mass.
    /// </summary>
    [Fact]
    public void DegradationLeavesAtMostKMinusOneCpuExpertsOnARecordedTrace()
    {
        using var model = MoeModel.Load(TestPaths.DefaultModel, new ModelOptions { ContextLength = 128 });
        using var seqs = TensorStore.OpenFile(Path.Combine(TestPaths.DefaultModel, "routing-sequences.safetensors"));
        var (ids, shape) = seqs.Int64s("input_ids");
        var tokens = ids.Take(96).Select(x => (int)x).ToArray();
        var trace = RoutingTrace.Record(model, tokens);
        int k = trace.TopK, e = trace.Experts;
        var x = new float[model.Config.HiddenSize];
        long substitutions = 0, checkedTokens = 0;
        foreach (double ratio in new[] { 0.125, 0.25, 0.5, 0.75 })
        {
            var slots = SlotBudget.FromRatio(ratio, trace.Layers, e);
            var r = new Residency(trace.Layers, e, slots);
            var policy = new DaopPolicy(approximate: true);
            policy.Initialize(r, null);
            var counts = new int[e];
            for (int l = 0; l < trace.Layers; l++)
            {
                Array.Clear(counts);
                for (int t = 0; t < 48; t++) foreach (int id in trace.True(t, l)) counts[id]++;
                policy.OnPrefillCounts(l, counts, r);
            }
            var approx = new ApproximateExperts(e, k, policy.ExactLayers);
            var predictor = new NextLayerPredictor(model, new TraceReplay([trace])); // the trace's predicted logits, routed by the model's router
            for (int t = 48; t < trace.Tokens; t++)
                for (int l = 1; l < trace.Layers; l++)
                {
                    predictor.Predict(l, t, x);
                    if (approx.Predict(l, predictor, r)) substitutions++;
                    checkedTokens++;
                    int off = approx.Ids.ToArray().Count(id => !r.IsResident(l, id));
                    Assert.Equal(off, approx.CpuExperts);
                    if (r.Capacity(l) > 0) Assert.True(off <= k - 1, $"ratio {ratio} token {t} layer {l}: {off} CPU experts");
                    var pred = trace.Predicted(t, l).ToArray();
                    Assert.All(approx.Ids.ToArray(), id => Assert.True(pred.Contains(id) || r.IsResident(l, id)));
                    Assert.Equal(1f, approx.Weights.ToArray().Sum(), 4); // Mixtral renormalises
                    approx.Reset();
                }
        }
        Assert.True(substitutions > 0, "some tokens should have had every predicted expert on the CPU");
        output.WriteLine($"{substitutions} substitutions over {checkedTokens} (token, layer) predictions");

        // End to end on the CPU scheduler: per decoded token, at most K−1 pre-calculated experts per approximated layer.
        foreach (double ratio in new[] { 0.25, 0.5 })
        {
            model.UseExperts((m, _) => CpuStandInScheduler.FromRatio(m, new DaopPolicy(approximate: true), ratio));
            var s = (CpuStandInScheduler)model.Experts;
            var cache = model.NewCache();
            var logits = new float[model.Config.VocabSize];
            model.Forward(tokens.AsSpan(0, 48), 0, cache, logits);
            for (int t = 48; t < 64; t++)
            {
                model.Forward(tokens.AsSpan(t, 1), t, cache, logits);
                var step = s.LastStep;
                Assert.True(step.PrecalculatedRuns <= (k - 1) * (model.Config.NumLayers - 1), $"{step.PrecalculatedRuns} pre-calculated experts in one token");
            }
        }
    }

    /// <summary>A replayed trace drives routing and predictions; both schedulers make the same placement decisions.</summary>
    [Theory]
    [InlineData("lru")]
    [InlineData("prefetch")]
    [InlineData("static")]
    [InlineData("daop")]
    public void ReplayedRoutingDrivesBothSchedulersAlike(string policy)
    {
        const string fixture = "mixtral-tiny";
        var tokens = Tokens(fixture);
        RoutingTrace trace;
        using (var m = MoeModel.Load(TestPaths.Fixture(fixture), new ModelOptions { ContextLength = Context })) trace = RoutingTrace.Record(m, tokens);
        // A different routing than the model's own: the trace shifted by one token.
        var shifted = new RoutingTrace
        {
            Layers = trace.Layers, Experts = trace.Experts, TopK = trace.TopK, Tokens = trace.Tokens - 1,
            TrueIds = trace.TrueIds[(trace.Layers * trace.TopK)..], TrueWeights = trace.TrueWeights[(trace.Layers * trace.TopK)..],
            PredictedIds = trace.PredictedIds[(trace.Layers * trace.TopK)..], PredictedLogits = trace.PredictedLogits[(trace.Layers * trace.Experts)..],
        };
        var replay = new TraceReplay([shifted]);
        using var cpu = LoadCpu(fixture, Policy(policy), 0.5, replay);
        using var gpuModel = LoadGpu(fixture, Policy(policy), 0.5, replay);
        replay.Check(cpu.Config);
        var a = Run(cpu, tokens);
        var b = Run(gpuModel, tokens);
        var sc = ((CpuStandInScheduler)cpu.Experts).Stats;
        var sg = ((OffloadedExpertScheduler)gpuModel.Experts).Stats;
        Assert.Equal(sc.Hits, sg.Hits);
        Assert.Equal(sc.Transfers, sg.Transfers);
        Assert.Equal(sc.CpuExpertRuns, sg.CpuExpertRuns);
        Assert.Equal(sc.PredictionHits, sg.PredictionHits);
        Assert.Equal(sc.PredictedActivations, sg.PredictedActivations);
        LogitsAssert.Close(a.Prefill, b.Prefill, "replayed prefill");
        for (int i = 0; i < Decode; i++) LogitsAssert.Close(a.Steps[i], b.Steps[i], $"replayed decode {i}");

        // the recall the schedulers saw is the trace's own over the decoded positions
        long hits = 0, total = 0;
        for (int t = Prefix; t < Prefix + Decode; t++)
            for (int l = 1; l < shifted.Layers; l++)
                foreach (int e in shifted.True(t, l)) { total++; if (shifted.Predicted(t, l).Contains(e)) hits++; }
        Assert.Equal(total, sc.PredictedActivations);
        Assert.Equal(hits, sc.PredictionHits);
        // and the routing is not the model's: logits differ from the reference
        Assert.NotEqual(Reference(fixture).Steps[0], a.Steps[0]);
    }
}
