using Daop.Engine.Model.Layers;
using Daop.Engine.Placement;

namespace Daop.Engine.Schedule;

/// <summary>What one policy did over a replayed trace.</summary>
public sealed record SimulationResult(string Policy, int DecodeTokens, double DecodeSeconds, double HitRate,
    double CpuExpertsPerToken, double TransfersPerToken, double GpuWaitUsPerToken, double PredictorRecall)
{
    /// <summary>Decode CPU expert runs per token that read the low-precision copy (<see cref="MissPrecision"/>).</summary>
    public double LowPrecisionRunsPerToken { get; init; }

    /// <summary>Decode tokens per second.</summary>
    public double TokensPerSecond => DecodeTokens / DecodeSeconds;
}

/// <summary>
/// Replays routing traces under a placement policy with a cost model: the <see cref="PlacementDriver"/> makes the
/// decisions (the same code that drives <see cref="OffloadedExpertScheduler"/>), fed by the trace's routing and
/// predictions, and the simulator charges them to three timelines: GPU compute, the copy engine, and CPU expert
/// threads. Results are deterministic on any machine. The first <c>prefill</c> tokens of each trace are the prompt: their
/// counts place every layer (<see cref="PlacementDriver.PlacePrefillChunk"/>; the swaps are copied during the prompt).
/// The rest are decoded one token at a time; per layer l:
/// <list type="number">
/// <item>GPU: dense part of layer l (the gate input is then known).</item>
/// <item>The prediction for layer l+1 issues prefetch copies (policies that want them) and, in DAOP's approximate mode,
/// CPU pre-calculations of predicted CPU-resident experts.</item>
/// <item>Layer l's experts: GPU-resident ones on the GPU (waiting for a copy still in flight), pre-calculated ones
/// joined from the CPU, misses transferred or run on the CPU as the policy said.</item>
/// <item>The layer ends when the GPU and the CPU work it needs are both done; then the policy may re-place the layer
/// (AfterDecodeLayer), and its loads queue on the copy engine.</item>
/// </list>
/// The driver decides layer l's activations before it predicts layer l+1 (as on the GPU); the policies' decisions do not
/// depend on that order, and the simulator charges the prediction's copies and pre-calculations first, at the time the
/// gate input is known.
/// </summary>
public static class TraceSimulator
{
    /// <summary>Simulates <paramref name="policy"/> over the decode part of every trace.</summary>
    /// <param name="traces">Routing traces (true and predicted experts per token and layer).</param>
    /// <param name="policy">The policy; it is initialised afresh for each sequence.</param>
    /// <param name="slotsPerLayer">GPU expert slots per layer.</param>
    /// <param name="cost">Per-piece costs.</param>
    /// <param name="prefill">Tokens of each trace treated as the prompt.</param>
    /// <param name="popularity">[layers, experts] calibration counts for the initial placement, or null.</param>
    /// <param name="missPrecision">
    /// Mixed precision on a miss (<see cref="PlacementDriver.MissPrecision"/>), or null; its CPU runs cost
    /// <see cref="CostModel.LowPrecisionBytesRatio"/> of a full one.
    /// </param>
    public static SimulationResult Run(IReadOnlyList<RoutingTrace> traces, IPlacementPolicy policy, IReadOnlyList<int> slotsPerLayer,
        CostModel cost, int prefill, long[,]? popularity, MissPrecision? missPrecision = null)
    {
        var timeline = new Timeline(cost, missPrecision);
        var decode = new OffloadStats();
        foreach (var tr in traces) decode.Add(timeline.Sequence(tr, policy, slotsPerLayer, prefill, popularity));
        long tokens = decode.Tokens;
        return new SimulationResult(policy.Name, (int)tokens, timeline.TotalUs / 1e6, (double)decode.Hits / decode.Activations,
            (double)decode.CpuExpertRuns / tokens, (double)decode.Transfers / tokens, timeline.WaitUs / tokens,
            decode.PredictedActivations == 0 ? 0 : (double)decode.PredictionHits / decode.PredictedActivations)
        {
            LowPrecisionRunsPerToken = (double)decode.LowPrecisionRuns / tokens,
        };
    }

    // The three timelines of one sequence at a time (µs), and the totals over all of them.
    sealed class Timeline(CostModel cost, MissPrecision? missPrecision)
    {
        public double TotalUs, WaitUs;
        double _gpu, _pcie, _cpu, _cpuDone;
        double[,] _ready = new double[0, 0]; // [layer, expert] when its latest copy lands
        double[] _cur = [], _next = [];     // [expert] this / the next layer's pre-calculations: done time, or -1

        // Replays one trace; returns the driver's counters over its decode.
        public OffloadStats Sequence(RoutingTrace tr, IPlacementPolicy policy, IReadOnlyList<int> slotsPerLayer, int prefill, long[,]? popularity)
        {
            var replay = new TraceReplay([tr]);
            var driver = new PlacementDriver(replay, policy, slotsPerLayer, popularity) { MissPrecision = missPrecision };
            var routing = new RoutingBatch(Math.Max(prefill, 1), tr.TopK) { Tokens = prefill };
            driver.BeginChunk(0, prefill);
            for (int l = 0; l < tr.Layers; l++)
            {
                replay.Route(l, 0, routing);
                driver.PlacePrefillChunk(l, routing, prefill, default); // copied during the prompt, before decode starts
            }
            var start = driver.Stats;
            _ready = new double[tr.Layers, tr.Experts];
            _cur = new double[tr.Experts];
            _next = new double[tr.Experts];
            _gpu = _pcie = _cpu = 0;
            routing.Tokens = 1;
            for (int t = prefill; t < tr.Tokens; t++)
            {
                double tokenStart = _gpu;
                Array.Fill(_cur, -1);
                driver.BeginChunk(t, 1);
                for (int l = 0; l < tr.Layers; l++) Layer(driver, routing, l, tr, t);
                _gpu += cost.HeadUs;
                TotalUs += _gpu - tokenStart;
            }
            return driver.Stats.Since(start);
        }

        void Layer(PlacementDriver driver, RoutingBatch routing, int l, RoutingTrace tr, int t)
        {
            _gpu += cost.DenseLayerUs;
            Array.Fill(_next, -1);
            var call = driver.BeginLayer(l, routing, 1);
            if (call.Precalculated && driver.ChecksDrift) driver.CheckPrecalculatedDrift(tr.Drift(t, l)); // rejected: they run below, again
            var activations = driver.DecideActivations(l, routing, 1);
            if (call.Next >= 0) Charge(driver.PredictNext(call.Next, default), driver.Approximation);
            _cpuDone = _gpu;
            Charge(activations, null);
            if (_cpuDone > _gpu) { WaitUs += _cpuDone - _gpu; _gpu = _cpuDone; }
            Charge(driver.AfterDecodeLayer(l), null);
            (_cur, _next) = (_next, _cur);
        }

        void Charge(ReadOnlySpan<PlacementDecision> decisions, ApproximateExperts? prediction)
        {
            foreach (var d in decisions)
                switch (d.Action)
                {
                    case PlacementAction.Load: // a copy queues on the copy engine from now; a GPU use waits for it
                        _pcie = Math.Max(_pcie, _gpu) + cost.TransferUs;
                        _ready[d.Layer, d.Expert] = _pcie;
                        break;
                    case PlacementAction.RunStreamed: // the first activation of the expert carries its copy
                        if (d.Reason == LoadReason.Stream) _ready[d.Layer, d.Expert] = _pcie = Math.Max(_pcie, _gpu) + cost.TransferUs;
                        goto case PlacementAction.RunOnGpu;
                    case PlacementAction.RunOnGpu:
                        if (_ready[d.Layer, d.Expert] > _gpu) { WaitUs += _ready[d.Layer, d.Expert] - _gpu; _gpu = _ready[d.Layer, d.Expert]; }
                        _gpu += cost.GpuExpertUs;
                        break;
                    case PlacementAction.TakePrecalculated:
                        _cpuDone = Math.Max(_cpuDone, _cur[d.Expert] + cost.CpuRoundTripUs / 2);
                        break;
                    case PlacementAction.RunOnCpu:
                        _cpu = cost.CpuExpertEnd(Math.Max(_cpu, _gpu) + cost.CpuRoundTripUs / 2, _pcie, d.LowPrecision);
                        _cpuDone = Math.Max(_cpuDone, _cpu + cost.CpuRoundTripUs / 2);
                        break;
                    case PlacementAction.StartPrecalculation: // the predicted CPU experts, in routing order
                        foreach (int e in prediction!.Ids)
                            if (prediction.IsPrecalculated(e))
                            {
                                _cpu = cost.CpuExpertEnd(Math.Max(_cpu, _gpu) + cost.CpuRoundTripUs / 2, _pcie);
                                _next[e] = _cpu;
                            }
                        break;
                }
        }
    }
}
