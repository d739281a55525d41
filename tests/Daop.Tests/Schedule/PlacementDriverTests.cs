using Daop.Engine.Model.Layers;
using Daop.Engine.Placement;
using Daop.Engine.Schedule;

namespace Daop.Tests.Schedule;

/// <summary>The decisions <see cref="PlacementDriver"/> emits, on hand-made traces (no model).</summary>
public class PlacementDriverTests
{
    static RoutingTrace Trace(int layers, int experts, int topK, int[] trueIds, int[] predictedIds, float[]? logits = null) => new()
    {
        Layers = layers, Experts = experts, TopK = topK, Tokens = trueIds.Length / (layers * topK),
        TrueIds = trueIds, TrueWeights = Enumerable.Repeat(1f / topK, trueIds.Length).ToArray(),
        PredictedIds = predictedIds, PredictedLogits = logits ?? new float[trueIds.Length / topK * experts],
    };

    static (PlacementAction, int, int) Of(PlacementDecision d) => (d.Action, d.Expert, d.Index);

    [Fact]
    public void AMissThatEvictsAnExpertGatheredInTheCallSplitsTheWave()
    {
        // One layer, one slot (expert 0 by round-robin); a two-token chunk routes 0 then 1.
        var replay = new TraceReplay([Trace(1, 3, 1, [0, 1], [0, 0])]);
        var driver = new PlacementDriver(replay, new LruPolicy(prefetch: false), [1], null);
        var r = new RoutingBatch(2, 1) { Tokens = 2 };
        driver.BeginChunk(0, 2);
        var call = driver.BeginLayer(0, r, 2);
        Assert.Equal(-1, call.Next);
        var d = driver.DecideActivations(0, r, 2).ToArray();
        Assert.Equal([(PlacementAction.RunOnGpu, 0, 0), (PlacementAction.Evict, 0, -1), (PlacementAction.Load, 1, -1), (PlacementAction.RunOnGpu, 1, 1)],
            d.Select(Of));
        Assert.True(d[1].SplitsWave);
        Assert.Equal(LoadReason.Miss, d[2].Reason);
        var s = driver.Stats;
        Assert.Equal((1, 1, 1, 1), (s.Hits, s.Misses, s.MissTransfers, s.Transfers));
        Assert.Equal(0, s.SplitWaves); // launch waves are the GPU executor's to count
    }

    [Fact]
    public void APrefillChunkStreamsACpuExpertWithEnoughTokensAndDecodeDoesNot()
    {
        // One layer, one slot (expert 0); a five-token chunk routes expert 1 three times, 2 once, 0 once; then one token to 1.
        var replay = new TraceReplay([Trace(1, 3, 1, [1, 2, 1, 0, 1, 1], [0, 0, 0, 0, 0, 0])]);
        var driver = new PlacementDriver(replay, new StaticPolicy(), [1], null) { StreamMinTokens = 3 };
        Assert.True(driver.Residency.IsResident(0, 0));
        var r = new RoutingBatch(5, 1) { Tokens = 5 };
        driver.BeginChunk(0, 5);
        driver.BeginLayer(0, r, 5);
        var d = driver.DecideActivations(0, r, 5).ToArray();
        // expert-major: the resident expert 0 first, then 1's three activations, then 2's
        Assert.Equal([(PlacementAction.RunOnGpu, 0, 3), (PlacementAction.RunStreamed, 1, 0), (PlacementAction.RunStreamed, 1, 2),
            (PlacementAction.RunStreamed, 1, 4), (PlacementAction.RunOnCpu, 2, 1)], d.Select(Of));
        Assert.Equal([LoadReason.Stream, LoadReason.Miss, LoadReason.Miss], d.Where(x => x.Action == PlacementAction.RunStreamed).Select(x => x.Reason));
        driver.AfterLayer(0, 5);
        Assert.False(driver.Residency.IsResident(0, 1)); // streaming places nothing
        var s = driver.Stats;
        Assert.Equal((4, 1, 3, 1, 1), (s.GpuExpertRuns, s.CpuExpertRuns, s.StreamedRuns, s.StreamTransfers, s.Transfers));

        r.Tokens = 1;
        driver.BeginChunk(5, 1);
        driver.BeginLayer(0, r, 1);
        Assert.Equal([(PlacementAction.RunOnCpu, 1, 0)], driver.DecideActivations(0, r, 1).ToArray().Select(Of));
        Assert.Equal(1, driver.Stats.StreamTransfers);
    }

    [Fact]
    public void LruCopiesEachExpertOfAPromptChunkOnce()
    {
        // One layer, two slots (experts 0 and 1); an eight-token chunk alternates 2, 3, 0, 2, 3, 0, 2, 3. In token order
        // LRU evicts 1 for 2, 0 for 3, 2 for 0, 3 for 2, ... and copies on nearly every activation; grouped by expert,
        // 0 runs while resident, then 2 and 3 are copied once each.
        var replay = new TraceReplay([Trace(1, 4, 1, [2, 3, 0, 2, 3, 0, 2, 3], new int[8])]);
        var driver = new PlacementDriver(replay, new LruPolicy(prefetch: false), [2], null);
        var r = new RoutingBatch(8, 1) { Tokens = 8 };
        driver.BeginChunk(0, 8);
        driver.BeginLayer(0, r, 8);
        var d = driver.DecideActivations(0, r, 8).ToArray();
        Assert.Equal(2, d.Count(x => x.Action == PlacementAction.Load));
        Assert.Equal([0, 0, 2, 2, 2, 3, 3, 3], d.Where(x => x.Action == PlacementAction.RunOnGpu).Select(x => x.Expert));
        Assert.Equal([2, 5, 0, 3, 6, 1, 4, 7], d.Where(x => x.Action == PlacementAction.RunOnGpu).Select(x => x.Index));
        var s = driver.Stats;
        Assert.Equal((6, 2, 2), (s.Hits, s.Misses, s.Transfers));
    }

    [Fact]
    public void StreamingIsOffByDefaultInTheDriverAndRejectsNegativeThresholds()
    {
        var replay = new TraceReplay([Trace(1, 3, 1, [1, 1, 1], [0, 0, 0])]);
        var driver = new PlacementDriver(replay, new StaticPolicy(), [1], null);
        var r = new RoutingBatch(3, 1) { Tokens = 3 };
        driver.BeginChunk(0, 3);
        driver.BeginLayer(0, r, 3);
        Assert.All(driver.DecideActivations(0, r, 3).ToArray(), x => Assert.Equal(PlacementAction.RunOnCpu, x.Action));
        Assert.Throws<ArgumentOutOfRangeException>(() => new PlacementDriver(replay, new StaticPolicy(), [1], null) { StreamMinTokens = -1 });
    }

    [Fact]
    public void APredictionPrefetchesIntoTheNextLayer()
    {
        // Two layers, one slot each (experts 0 and 1 by round-robin); layer 1 is predicted to use 3.
        var replay = new TraceReplay([Trace(2, 4, 1, [0, 2], [-1, 3])]);
        var driver = new PlacementDriver(replay, new LruPolicy(prefetch: true), [1, 1], null);
        var r = new RoutingBatch(1, 1) { Tokens = 1 };
        driver.BeginChunk(0, 1);
        var call = driver.BeginLayer(0, r, 1);
        Assert.Equal(1, call.Next);
        Assert.Equal([(PlacementAction.RunOnGpu, 0, 0)], driver.DecideActivations(0, r, 1).ToArray().Select(Of));
        var p = driver.PredictNext(call.Next, default).ToArray();
        Assert.Equal([(PlacementAction.Evict, 1, -1), (PlacementAction.Load, 3, -1)], p.Select(Of));
        Assert.All(p, x => Assert.Equal(1, x.Layer));
        Assert.Equal(LoadReason.Prefetch, p[1].Reason);
        Assert.Empty(driver.AfterDecodeLayer(0).ToArray());
        driver.BeginLayer(1, r, 1);                                // routes 2: the prefetch missed
        Assert.Equal([(PlacementAction.Evict, 3, -1), (PlacementAction.Load, 2, -1), (PlacementAction.RunOnGpu, 2, 0)],
            driver.DecideActivations(1, r, 1).ToArray().Select(Of));
        var s = driver.Stats;
        Assert.Equal((1, 1, 2, 1), (s.PredictedActivations, s.PrefetchTransfers, s.Transfers, s.MissTransfers));
        Assert.Equal(0, s.PredictionHits);
    }

    [Fact]
    public void ApproximateModeTakesTheDegradedPredictionAndItsPrecalculatedExpert()
    {
        // Top-2 of 4, two slots per layer (layer 1 holds 1 and 2). Layer 1 is predicted {3, 0}, both off the GPU:
        // degradation swaps the lower-weight 0 for the best resident by probability (1), so 3 is pre-calculated.
        var logits = new float[2 * 4];
        logits[4 + 0] = 2; logits[4 + 1] = 1; logits[4 + 2] = 0.5f; logits[4 + 3] = 3;
        var replay = new TraceReplay([Trace(2, 4, 2, [0, 1, 1, 2], [-1, -1, 3, 0], logits)]);
        var policy = new DaopPolicy(approximate: true);
        Assert.True(((IPlacementPolicy)policy).Approximate);
        Assert.False(((IPlacementPolicy)new LruPolicy(false)).Approximate);
        var driver = new PlacementDriver(replay, policy, [2, 2], null);
        var r = new RoutingBatch(1, 2) { Tokens = 1 };
        driver.BeginChunk(0, 1);
        var call = driver.BeginLayer(0, r, 1);
        Assert.False(call.Precalculated);
        driver.DecideActivations(0, r, 1);
        var p = driver.PredictNext(call.Next, default).ToArray();
        Assert.Equal([(PlacementAction.StartPrecalculation, -1, -1)], p.Select(Of));
        Assert.Equal(new[] { 3, 1 }, driver.Approximation!.Ids.ToArray());
        Assert.True(driver.Approximation.IsPrecalculated(3));
        driver.AfterDecodeLayer(0);
        Assert.True(driver.BeginLayer(1, r, 1).Precalculated);
        Assert.Equal(new[] { 3, 1 }, r.Experts);
        Assert.Equal([(PlacementAction.TakePrecalculated, 3, 0), (PlacementAction.RunOnGpu, 1, 1)], driver.DecideActivations(1, r, 1).ToArray().Select(Of));
        var s = driver.Stats;
        Assert.Equal((1, 1, 3), (s.Substitutions, s.PrecalculatedRuns, s.GpuExpertRuns)); // layer 0: two GPU runs
    }

    [Fact]
    public void CheckedModeKeepsTheTrueRoutingAndTakesOnlyPredictedExpertsItChose()
    {
        // As above, but checked: layer 1 is predicted {3, 0} (both off the GPU, no degradation: both pre-calculated) and
        // truly routed {0, 2}. 0 is taken pre-calculated with its true slot, 2 runs on the GPU, 3 goes unused.
        var logits = new float[2 * 4];
        logits[4 + 0] = 2; logits[4 + 1] = 1; logits[4 + 2] = 0.5f; logits[4 + 3] = 3;
        var replay = new TraceReplay([Trace(2, 4, 2, [0, 1, 0, 2], [-1, -1, 3, 0], logits)]);
        var policy = new DaopPolicy(approximate: true, use: PredictionUse.Check);
        Assert.Equal("daop-checked", policy.Name);
        Assert.Equal(PredictionUse.Route, ((IPlacementPolicy)new DaopPolicy(approximate: true)).PredictionUse);
        var driver = new PlacementDriver(replay, policy, [2, 2], null);
        var r = new RoutingBatch(1, 2) { Tokens = 1 };
        driver.BeginChunk(0, 1);
        var call = driver.BeginLayer(0, r, 1);
        driver.DecideActivations(0, r, 1);
        Assert.Equal([(PlacementAction.StartPrecalculation, -1, -1)], driver.PredictNext(call.Next, default).ToArray().Select(Of));
        Assert.Equal(new[] { 3, 0 }, driver.Approximation!.Ids.ToArray());
        Assert.True(driver.Approximation.IsPrecalculated(3) && driver.Approximation.IsPrecalculated(0));
        Assert.Equal(2, driver.Approximation.CpuExperts);
        driver.AfterDecodeLayer(0);
        Assert.True(driver.BeginLayer(1, r, 1).Precalculated);
        Assert.Equal(new[] { 0, 2 }, r.Experts); // the true routing stays
        Assert.Equal([(PlacementAction.TakePrecalculated, 0, 0), (PlacementAction.RunOnGpu, 2, 1)], driver.DecideActivations(1, r, 1).ToArray().Select(Of));
        var s = driver.Stats;
        Assert.Equal((0, 1, 1), (s.Substitutions, s.PrecalculatedRuns, s.PrecalculatedUnused));
    }

    [Theory]
    [InlineData(PredictionUse.Check)]
    [InlineData(PredictionUse.CheckDegrade)]
    public void AMissedCpuExpertRunsOnTheCpuOrIsReplacedByTheBestPredictedResidentOne(PredictionUse use)
    {
        // Layer 1 (holding 1 and 2) is predicted {3, 1}: only 3 is pre-calculated. The true routing {0, 2} misses 0 (off
        // the GPU, not pre-calculated): checked, it runs on the CPU; degrading, the highest-ranked resident expert not
        // routed (1) stands in with 0's slot and weight.
        var logits = new float[2 * 4];
        logits[4 + 0] = 2; logits[4 + 1] = 2.5f; logits[4 + 2] = 0.5f; logits[4 + 3] = 3;
        var replay = new TraceReplay([Trace(2, 4, 2, [0, 1, 0, 2], [-1, -1, 3, 1], logits)]);
        var driver = new PlacementDriver(replay, new DaopPolicy(approximate: true, use: use), [2, 2], null);
        var r = new RoutingBatch(1, 2) { Tokens = 1 };
        driver.BeginChunk(0, 1);
        var call = driver.BeginLayer(0, r, 1);
        driver.DecideActivations(0, r, 1);
        driver.PredictNext(call.Next, default);
        Assert.Equal(1, driver.Approximation!.CpuExperts);
        driver.AfterDecodeLayer(0);
        Assert.True(driver.BeginLayer(1, r, 1).Precalculated);
        bool degrade = use == PredictionUse.CheckDegrade;
        Assert.Equal(degrade ? new[] { 1, 2 } : new[] { 0, 2 }, r.Experts);
        Assert.Equal([(degrade ? PlacementAction.RunOnGpu : PlacementAction.RunOnCpu, degrade ? 1 : 0, 0), (PlacementAction.RunOnGpu, 2, 1)],
            driver.DecideActivations(1, r, 1).ToArray().Select(Of));
        Assert.Equal(0.5f, r.Weights[0]);
        var s = driver.Stats;
        Assert.Equal((degrade ? 1 : 0, 0, 1, degrade ? 0 : 1), (s.Substitutions, s.PrecalculatedRuns, s.PrecalculatedUnused, s.CpuExpertRuns));
    }
}
