using Daop.Engine.Placement;
using Daop.Engine.Schedule;

namespace Daop.Tests.Schedule;

public class TraceSimulatorTests
{
    // 2 layers, 4 experts, top-1, two decode tokens: layer 0 uses experts 0 then 1, layer 1 uses 2 twice.
    static RoutingTrace Tiny() => new()
    {
        Layers = 2, Experts = 4, TopK = 1, Tokens = 2,
        TrueIds = [0, 2, 1, 2],
        TrueWeights = [1, 1, 1, 1],
        PredictedIds = [-1, 3, -1, 2],
        PredictedLogits = new float[2 * 2 * 4],
    };

    static readonly CostModel Cost = new(DenseLayerUs: 10, GpuExpertUs: 5, CpuExpertUs: 20, TransferUs: 40, CpuRoundTripUs: 0, HeadUs: 1);

    [Fact]
    public void LruOnDemandMatchesTheHandComputedTimeline()
    {
        // t0: L0 dense 0→10, e0 resident →15; L1 dense →25, e2 missing: copy 25→65 (GPU waits 40), run →70; head →71.
        // t1: L0 dense →81, e1 missing (evicts e0): copy 81→121 (waits 40), run →126; L1 dense →136, e2 hit →141; head →142.
        var r = TraceSimulator.Run([Tiny()], new LruPolicy(prefetch: false), [1, 1], Cost, prefill: 0, popularity: null);
        Assert.Equal(2, r.DecodeTokens);
        Assert.Equal(142e-6, r.DecodeSeconds, 12);
        Assert.Equal(0.5, r.HitRate);
        Assert.Equal(1.0, r.TransfersPerToken);
        Assert.Equal(40.0, r.GpuWaitUsPerToken, 9);
        Assert.Equal(0.0, r.CpuExpertsPerToken);
    }

    [Fact]
    public void CpuComputesMissesMatchesTheHandComputedTimeline()
    {
        // t0: L0 →10, e0 hit →15; L1 →25, e2 on CPU 25→45, GPU waits 20; head →46.
        // t1: L0 →56, e1 on CPU 56→76 (waits 20); L1 →86, e2 on CPU 86→106 (waits 20); head →107.
        var r = TraceSimulator.Run([Tiny()], new StaticPolicy(), [1, 1], Cost, prefill: 0, popularity: null);
        Assert.Equal(107e-6, r.DecodeSeconds, 12);
        Assert.Equal(0.25, r.HitRate);
        Assert.Equal(1.5, r.CpuExpertsPerToken);
        Assert.Equal(30.0, r.GpuWaitUsPerToken, 9);
        Assert.Equal(0.0, r.TransfersPerToken);
        Assert.Equal(0.5, r.PredictorRecall); // layer 1 predicted 3 (wrong) then 2 (right)
    }

    [Fact]
    public void PrefetchOverlapsTheCopyWithTheDenseWork()
    {
        // t1 predicts expert 2 for layer 1 while e2 is already resident: nothing to fetch; t0 predicts 3 and fetches it
        // (evicting 1 at 10→50), so layer 1's e2 still misses: copy 50→90, waiting from 25.
        var r = TraceSimulator.Run([Tiny()], new LruPolicy(prefetch: true), [1, 1], Cost, prefill: 0, popularity: null);
        Assert.Equal(3.0 / 2, r.TransfersPerToken); // one prefetch (wasted) + two on-demand copies over two tokens
        Assert.True(r.DecodeSeconds > 142e-6);
    }

    [Fact]
    public void DaopSwapsInThePromptsHotExperts()
    {
        var r = new Residency(1, 4, [1]);
        var p = new DaopPolicy(approximate: false);
        p.Initialize(r, null);                                   // round-robin puts expert 0 in the slot
        p.OnPrefillCounts(0, [5, 0, 0, 6], r);                   // 6 > 1.05·5: swap
        Assert.True(r.IsResident(0, 3));
        var r2 = new Residency(1, 4, [1]);
        p.Initialize(r2, null);
        p.OnPrefillCounts(0, [5, 0, 0, 5], r2);                  // 5 is not > 5.25: keep
        Assert.True(r2.IsResident(0, 0));
    }

    [Fact]
    public void DriftReplacementIsCopiedWhileTheTokenFinishes()
    {
        // One layer, 2 experts, 1 slot (expert 0 by round-robin); the prompt uses 0, decode uses 1 four times.
        // Window 2: p = [1, 0] → [.5, .5] → [.25, .75] → [.125, .875]: after t3, .875 > 1.05·.125 + .5/1: swap.
        // t1: dense 0→10, e1 on CPU 10→30 (wait 20), head →31. t2: →41, CPU 41→61 (wait 20), →62.
        // t3: →72, CPU 72→92 (wait 20); the swap's copy runs 92→132; head →93. t4: →103, e1 resident but its copy
        // lands at 132 (wait 29), runs →137, head →138.
        var trace = new RoutingTrace
        {
            Layers = 1, Experts = 2, TopK = 1, Tokens = 5,
            TrueIds = [0, 1, 1, 1, 1], TrueWeights = [1, 1, 1, 1, 1],
            PredictedIds = [0, 0, 0, 0, 0], PredictedLogits = new float[10],
        };
        var r = TraceSimulator.Run([trace], new DaopPolicy(approximate: false, driftWindow: 2), [1], Cost, prefill: 1, popularity: null);
        Assert.Equal(4, r.DecodeTokens);
        Assert.Equal(138e-6, r.DecodeSeconds, 12);
        Assert.Equal(0.25, r.HitRate);
        Assert.Equal(0.75, r.CpuExpertsPerToken);
        Assert.Equal(0.25, r.TransfersPerToken);
        Assert.Equal((20 + 20 + 20 + 29) / 4.0, r.GpuWaitUsPerToken, 9);
        // Without drift the placement holds: four CPU runs, no copy.
        var held = TraceSimulator.Run([trace], new DaopPolicy(approximate: false), [1], Cost, prefill: 1, popularity: null);
        Assert.Equal(1.0, held.CpuExpertsPerToken);
        Assert.Equal(0.0, held.TransfersPerToken);
    }

    [Fact]
    public void ApproximateDaopPlacesByWhatThePredictorWillRoute()
    {
        // Top-2 of 6, two slots per layer. Layer 1's gate picks {2, 3} for every token; the predictor (layer 1's gate on
        // layer 0's input) picks {4, 5}. Approximate decode routes layer 1 by the predictor, so placing layer 1 by the
        // prompt's predicted counts makes both its activations hits; placing by the true counts ({2, 3}) would leave
        // {4, 5} on the CPU and degradation would keep one of them there.
        var logits = new float[3 * 2 * 6];
        for (int t = 0; t < 3; t++) { logits[(t * 2 + 1) * 6 + 4] = 5; logits[(t * 2 + 1) * 6 + 5] = 4; }
        var trace = new RoutingTrace
        {
            Layers = 2, Experts = 6, TopK = 2, Tokens = 3,
            TrueIds = [0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3], TrueWeights = Enumerable.Repeat(0.5f, 12).ToArray(),
            PredictedIds = [-1, -1, 4, 5, -1, -1, 4, 5, -1, -1, 4, 5], PredictedLogits = logits,
        };
        var approx = TraceSimulator.Run([trace], new DaopPolicy(approximate: true), [2, 2], Cost, prefill: 2, popularity: null);
        Assert.Equal(1.0, approx.HitRate);
        Assert.Equal(0.0, approx.CpuExpertsPerToken);
        var exact = TraceSimulator.Run([trace], new DaopPolicy(approximate: false), [2, 2], Cost, prefill: 2, popularity: null);
        Assert.Equal(1.0, exact.HitRate); // exact mode routes {2, 3}, which its true counts placed
    }

    /// <summary>
    /// A drift-bounded checked mode replays the trace's recorded input drift: within the bound it takes the pre-calculation
    /// as the unbounded mode does (same timeline); past it the expert runs again, exactly, on the token's path (slower).
    /// </summary>
    [Fact]
    public void DriftBoundedCheckedModeRerunsRejectedPreCalculations()
    {
        // 2 layers, 4 experts, top-1, one slot per layer holding expert 0 (no swaps); layer 1 routes to CPU expert 2,
        // which the predictor also picks, so the checked mode pre-calculates it during layer 0.
        RoutingTrace Trace(float[]? drift) => new()
        {
            Layers = 2, Experts = 4, TopK = 1, Tokens = 3,
            TrueIds = [0, 2, 0, 2, 0, 2], TrueWeights = [1, 1, 1, 1, 1, 1],
            PredictedIds = [-1, 2, -1, 2, -1, 2], PredictedLogits = new float[3 * 2 * 4], InputDrift = drift,
        };
        float[] drift = [0, 0.9f, 0, 0.9f, 0, 0.9f];
        SimulationResult Run(float maxDrift) => TraceSimulator.Run([Trace(drift)],
            new DaopPolicy(approximate: true, maxSwapsPerLayer: 0, use: PredictionUse.Check, precalcMaxDrift: maxDrift), [1, 1], Cost, prefill: 1, popularity: null);
        var unbounded = Run(float.PositiveInfinity);
        Assert.Equal(unbounded.TokensPerSecond, Run(1.0f).TokensPerSecond);
        Assert.True(Run(0.5f).TokensPerSecond < unbounded.TokensPerSecond);
        Assert.Throws<InvalidOperationException>(() => TraceSimulator.Run([Trace(null)],
            new DaopPolicy(approximate: true, maxSwapsPerLayer: 0, use: PredictionUse.Check, precalcMaxDrift: 0.5f), [1, 1], Cost, prefill: 1, popularity: null));
    }

    /// <summary>
    /// A recorded trace carries each layer's input drift: none at layer 0, positive and finite past it, and expanding or
    /// cutting the trace keeps each layer's value with its source layer.
    /// </summary>
    [Fact]
    public void RecordedTracesCarryTheInputDrift()
    {
        using var model = Daop.Engine.Model.MoeModel.Load(TestPaths.Fixture("mixtral-tiny"), new Daop.Engine.Model.ModelOptions { ContextLength = 32 });
        var tr = RoutingTrace.Record(model, [1, 5, 9, 13, 17, 21, 25, 29]);
        for (int t = 0; t < tr.Tokens; t++)
        {
            Assert.Equal(0f, tr.Drift(t, 0));
            for (int l = 1; l < tr.Layers; l++) Assert.InRange(tr.Drift(t, l), 1e-4f, 100f);
        }
        var deep = tr.Expand(7);
        for (int t = 0; t < tr.Tokens; t++)
            for (int l = 1; l < 7; l++) Assert.Equal(tr.Drift(t, 1 + (l - 1) % (tr.Layers - 1)), deep.Drift(t, l));
        Assert.Equal(tr.Drift(3, 1), tr.Take(4).Drift(3, 1));
    }

    [Fact]
    public void LowPrecisionMissesCostTheirBytes()
    {
        // Weights: t0 L1 e2 0.2 (≤ W: from the q4-sized copy, 5 µs), t1 L0 e1 0.6 (full, 20 µs), t1 L1 e2 0.2 (5 µs).
        // t0: L0 →10, e0 hit →15; L1 →25, e2 low 25→30 (waits 5); head →31.
        // t1: L0 →41, e1 full 41→61 (waits 20); L1 →71, e2 low 71→76 (waits 5); head →77.
        var tr = Tiny();
        var weighted = new RoutingTrace
        {
            Layers = tr.Layers, Experts = tr.Experts, TopK = tr.TopK, Tokens = tr.Tokens, TrueIds = tr.TrueIds,
            TrueWeights = [1, 0.2f, 0.6f, 0.2f], PredictedIds = tr.PredictedIds, PredictedLogits = tr.PredictedLogits,
        };
        var miss = new MissPrecision(Daop.Kernels.DType.Q4_0, 0.3f);
        var r = TraceSimulator.Run([weighted], new StaticPolicy(), [1, 1], Cost with { LowPrecisionBytesRatio = 0.25 }, prefill: 0, popularity: null, miss);
        Assert.Equal(77e-6, r.DecodeSeconds, 12);
        Assert.Equal(1.5, r.CpuExpertsPerToken);
        Assert.Equal(1.0, r.LowPrecisionRunsPerToken);
        Assert.Equal(15.0, r.GpuWaitUsPerToken, 9);
        // without the switch (or with the copy as large as the expert) the same trace takes the full-precision timeline
        Assert.Equal(107e-6, TraceSimulator.Run([weighted], new StaticPolicy(), [1, 1], Cost, 0, null).DecodeSeconds, 12);
        Assert.Equal(107e-6, TraceSimulator.Run([weighted], new StaticPolicy(), [1, 1], Cost, 0, null, miss).DecodeSeconds, 12);
        // LRU loads its misses into slots: nothing reads a copy
        Assert.Equal(0.0, TraceSimulator.Run([weighted], new LruPolicy(false), [1, 1], Cost with { LowPrecisionBytesRatio = 0.25 }, 0, null, miss).LowPrecisionRunsPerToken);
    }

    [Fact]
    public void CpuWorkBesideACopyRunsSlower()
    {
        var c = Cost with { CpuSlowdownWhileCopying = 2 };
        Assert.Equal(20.0, c.CpuExpertEnd(0, copyBusyUntil: -5));   // no copy: 20 µs of work
        Assert.Equal(25.0, c.CpuExpertEnd(0, copyBusyUntil: 10));   // 5 µs of work in the first 10, the other 15 after
        Assert.Equal(40.0, c.CpuExpertEnd(0, copyBusyUntil: 100));  // all of it at half speed
        Assert.Equal(20.0, Cost.CpuExpertEnd(0, copyBusyUntil: 100)); // factor 1: copies cost the CPU nothing
    }

    [Fact]
    public void DegradationLeavesAtMostOneCpuExpertForTopTwo()
    {
        var r = new Residency(1, 4, [2]);
        r.Load(0, 0);
        r.Load(0, 1);
        int[] ids = [2, 3];
        float[] w = [0.6f, 0.4f];
        float[] probs = [0.1f, 0.2f, 0.4f, 0.3f];
        Assert.True(GracefulDegradation.Apply(0, ids, w, probs, r));
        Assert.Equal(new[] { 2, 1 }, ids);                         // lowest-weight 3 → best GPU expert 1
        Assert.Equal(1f, w[0] + w[1], 5);
        Assert.Equal(0.4f / 0.6f, w[0], 5);
        int[] mixed = [2, 0];
        Assert.False(GracefulDegradation.Apply(0, mixed, [0.5f, 0.5f], probs, r));
    }
}
