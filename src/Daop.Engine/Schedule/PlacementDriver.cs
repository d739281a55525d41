using System.Runtime.InteropServices;
using Daop.Engine.Load.Config;
using Daop.Engine.Model;
using Daop.Engine.Model.Layers;
using Daop.Engine.Placement;

namespace Daop.Engine.Schedule;

/// <summary>
/// The one placement protocol: owns the <see cref="Residency"/>, asks the <see cref="IPlacementPolicy"/> at fixed points,
/// keeps the <see cref="NextLayerPredictor"/> and DAOP's approximate-mode bookkeeping (<see cref="ApproximateExperts"/>),
/// counts <see cref="OffloadStats"/>, and emits <see cref="PlacementDecision"/>s. Its executors carry the decisions out:
/// <see cref="OffloadedExpertScheduler"/> on a GPU, <see cref="CpuStandInScheduler"/> on the CPU (accuracy studies) and
/// <see cref="TraceSimulator"/> against a cost model, so all three make the same decisions by construction.
/// </summary>
/// <remarks>
/// A layer call (layer l, T tokens) goes, in this order:
/// <list type="number">
/// <item><see cref="BeginLayer"/>: a routing override replaces the router's choice; the prediction held for l is scored
/// (recall); in approximate mode a decoded token's routing becomes that prediction (degraded at layer l−1), or, checked,
/// stays the true one with the prediction's pre-calculated experts to take; the first MoE layer counts the tokens.</item>
/// <item>Prefill: <see cref="BeforeActivations"/> hands the chunk's per-expert counts to OnPrefillCounts (in approximate
/// mode, for a layer decode will route by the predictor — not checked modes — the predictor's counts made at the layer
/// before) and, in approximate mode, counts the next layer by the predictor from this layer's gate input; the policy's
/// swaps load before the chunk's activations are decided, so an expert the prompt uses most runs from the slot it
/// is copied into, once, rather than on the CPU or streamed now and copied again for decode.</item>
/// <item><see cref="DecideActivations"/>, each routed (token, expert) in token order: pre-calculated (approximate mode) →
/// take it (checked: pre-calculated experts the true gate did not choose are counted unused); resident → GPU (a hit); else the policy's OnMiss: Transfer evicts the named victim (if any) and loads the
/// expert (a miss transfer), which then runs on the GPU; RunOnCpu → CPU. OnUse follows every activation. An eviction of
/// an expert whose GPU work was gathered earlier in the call splits the wave: that work is launched before the copy.</item>
/// <item>Decode: <see cref="PredictNext"/> predicts layer l+1 from layer l's gate input and hands it to OnPredicted; its
/// loads are prefetches; in approximate mode the prediction is degraded against the residency, held, and its CPU
/// experts' pre-calculation starts.</item>
/// <item>Decode: <see cref="AfterDecodeLayer"/> lets the policy re-place layer l (drift); its loads are rebalances.</item>
/// </list>
/// A policy only changes the residency; the driver turns each change into Evict (in expert order) and Load decisions
/// against what the executor holds, layer by layer.
/// </remarks>
public sealed class PlacementDriver
{
    readonly IPlacementPolicy _policy;
    readonly NextLayerPredictor _predictor;
    readonly IRoutingOverride? _override;
    readonly ApproximateExperts? _approx;
    readonly OffloadStats _stats = new();
    readonly long _expertBytes;
    readonly int _experts, _topK;
    readonly CarriedResidency _carried;
    readonly bool[] _gathered; // [expert] GPU work gathered in this call since the last wave split
    readonly bool[] _streamed; // [expert] copied to a staging slot in this call
    readonly int[] _counts, _chunkCounts;
    readonly int[] _nextSlot; // [expert] ExpertMajor's write position
    int[] _order = [];        // a prompt chunk's activations in expert-major order (grows to the largest chunk once)
    readonly List<PlacementDecision> _activations = [], _loads = [];
    OffloadStats _stepStart = new();
    bool _precalculated, _decodeBatch;
    int _pos;

    /// <summary>
    /// Places <paramref name="model"/>'s experts with <paramref name="policy"/> (its Initialize, with
    /// <paramref name="popularity"/>) into <paramref name="slotsPerLayer"/> GPU slots (0 for dense layers).
    /// </summary>
    /// <param name="model">The model (its routers predict; its config gives the shape).</param>
    /// <param name="policy">Placement policy (initialised here).</param>
    /// <param name="slotsPerLayer">GPU expert slots per layer, e.g. from <see cref="OffloadBudget"/>.</param>
    /// <param name="popularity">[layers, experts] calibration counts for the initial placement, or null.</param>
    /// <param name="expertBytes">Bytes one transfer moves (for <see cref="OffloadStats.TransferBytes"/>).</param>
    /// <param name="routingOverride">Benchmark-only routing replacement, or null.</param>
    public PlacementDriver(MoeModel model, IPlacementPolicy policy, IReadOnlyList<int> slotsPerLayer, long[,]? popularity, long expertBytes,
        IRoutingOverride? routingOverride = null)
        : this(new NextLayerPredictor(model, routingOverride), routingOverride, policy, slotsPerLayer, popularity, expertBytes)
    { }

    /// <summary>Places experts of a model <paramref name="replay"/> was recorded on (the trace simulator): its traces route and predict.</summary>
    public PlacementDriver(TraceReplay replay, IPlacementPolicy policy, IReadOnlyList<int> slotsPerLayer, long[,]? popularity)
        : this(new NextLayerPredictor(replay), replay, policy, slotsPerLayer, popularity, 0)
    { }

    PlacementDriver(NextLayerPredictor predictor, IRoutingOverride? routingOverride, IPlacementPolicy policy, IReadOnlyList<int> slotsPerLayer,
        long[,]? popularity, long expertBytes)
    {
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentNullException.ThrowIfNull(slotsPerLayer);
        int layers = predictor.Layers;
        _experts = predictor.Experts;
        _topK = predictor.TopK;
        if (slotsPerLayer.Count != layers)
            throw new ArgumentException($"{slotsPerLayer.Count} slot counts for a model of {layers} layers", nameof(slotsPerLayer));
        for (int l = 0; l < layers; l++)
        {
            int s = slotsPerLayer[l];
            if (s < 0 || s > _experts)
                throw new ArgumentOutOfRangeException(nameof(slotsPerLayer), $"layer {l} asks for {s} expert slots; it must be 0..{_experts}");
            if (s > 0 && !predictor.IsMoe(l)) throw new ArgumentException($"layer {l} is dense and cannot hold expert slots", nameof(slotsPerLayer));
        }
        if (popularity != null && (popularity.GetLength(0) != layers || popularity.GetLength(1) != _experts))
            throw new ArgumentException($"popularity is [{popularity.GetLength(0)}, {popularity.GetLength(1)}], the model [{layers}, {_experts}]", nameof(popularity));
        if (predictor.FirstMoe < 0) throw new ArgumentException("the model has no MoE layer", "model");
        // Pre-calculated outputs are w·Expert(x); a router whose weight scales the expert's input has no such output.
        if (policy.Approximate && predictor.Spec is RouterSpec.SigmoidScalesInput)
            throw new NotSupportedException("DAOP's approximate mode pre-calculates w·Expert(x), but this model's router weight scales the expert's input (Llama-4): use the exact mode");
        _policy = policy;
        _predictor = predictor;
        _override = routingOverride;
        _expertBytes = expertBytes;
        Residency = new Residency(layers, _experts, slotsPerLayer);
        _policy.Initialize(Residency, popularity);
        Residency.PendingLoads.Clear();
        _carried = new CarriedResidency(Residency);
        _gathered = new bool[_experts];
        _streamed = new bool[_experts];
        _counts = new int[_experts];
        _chunkCounts = new int[_experts];
        _nextSlot = new int[_experts];
        if (policy.Approximate) _approx = new ApproximateExperts(_experts, _topK, policy.ExactLayers, policy.PredictionUse, policy.PrecalcMaxDrift);
    }

    /// <summary>Which experts are on the GPU (the policy's view; executors hold exactly this after each phase).</summary>
    public Residency Residency { get; }
    /// <summary>Bytes one transfer moves: one expert in its stored format as a GPU slot holds it (<see cref="OffloadStats.TransferBytes"/>).</summary>
    public long ExpertBytes => _expertBytes;
    /// <summary>The placement policy.</summary>
    public IPlacementPolicy Policy => _policy;
    /// <summary>True when the policy asks for DAOP's approximate mode.</summary>
    public bool Approximate => _approx != null;
    /// <summary>The approximate mode's held prediction (what <see cref="PlacementAction.StartPrecalculation"/> computes), or null.</summary>
    public ApproximateExperts? Approximation => _approx;
    /// <summary>The first MoE layer (where a forward chunk's counters start).</summary>
    public int FirstMoe => _predictor.FirstMoe;
    /// <summary>
    /// Writes an executor's measured counters (launch waves, copy waits, CPU seconds) into the live stats; called before
    /// every snapshot.
    /// </summary>
    public Action<OffloadStats>? Measure { get; init; }

    /// <summary>
    /// Prefill: a miss the policy leaves on the CPU runs on the GPU from a staging slot instead
    /// (<see cref="PlacementAction.RunStreamed"/>) when its chunk routes at least this many tokens to the expert (0: never).
    /// Copying an expert costs a fixed time and the CPU a time per token, so past a break-even count the copy wins
    /// (<see cref="OffloadOptions.StreamPrefillMinTokens"/>). The residency does not change.
    /// </summary>
    public int StreamMinTokens
    {
        get;
        init
        {
            ArgumentOutOfRangeException.ThrowIfNegative(value, nameof(StreamMinTokens));
            field = value;
        }
    }

    /// <summary>
    /// Mixed precision on a miss (HOBBIT), or null (off): during decode (one token, or a batched decode step) an
    /// activation the policy leaves on the CPU whose router weight is at most <see cref="Schedule.MissPrecision.MaxWeight"/>
    /// runs from the expert's low-precision host copy (<see cref="PlacementDecision.LowPrecision"/>), counted in
    /// <see cref="OffloadStats.LowPrecisionRuns"/>. Prefill chunks keep full precision: a chunk reads each CPU expert once
    /// for all its tokens, so only an expert none of whose tokens is above the bound would read fewer bytes. Misses a policy
    /// loads into a slot keep full precision (a slot holds the stored format); pre-calculated outputs too.
    /// </summary>
    public MissPrecision? MissPrecision { get; init; }

    /// <summary>
    /// Host bytes a low-precision run does not read (the primary expert's less its copy's), for
    /// <see cref="OffloadStats.LowPrecisionBytesSaved"/>; at least 0.
    /// </summary>
    public long MissCopySavedBytes
    {
        get;
        init
        {
            ArgumentOutOfRangeException.ThrowIfNegative(value, nameof(MissCopySavedBytes));
            field = value;
        }
    }

    /// <summary>The MoE layer after <paramref name="layer"/> (predicted from its gate input), or -1.</summary>
    public int NextMoe(int layer) => _predictor.NextMoe(layer);

    /// <summary>Cumulative counters.</summary>
    public OffloadStats Stats => Measured().Snapshot();

    /// <summary>Counters of the latest forward chunk (from its first MoE layer on): per token when decoding.</summary>
    public OffloadStats LastStep => Measured().Since(_stepStart);

    /// <summary>
    /// The counts as they stand (activations, hits, transfers, bytes; no device timings), read without touching the
    /// device: safe from another thread while the model runs (e.g. a metrics endpoint), each count read atomically.
    /// </summary>
    public OffloadStats CountsNow => _stats.Snapshot();

    // The live counters, for executors to add what only they count (launch waves).
    internal OffloadStats Counters => _stats;

    OffloadStats Measured()
    {
        Measure?.Invoke(_stats);
        return _stats;
    }

    bool Approximates(int layer) => _approx != null && layer >= _approx.ExactLayers;

    // Decode routes this layer by the prediction, so prefill places it by the predictor's counts; checked modes keep the
    // true routing and place by the true counts.
    bool RoutesByPrediction(int layer) => Approximates(layer) && _approx!.Use == PredictionUse.Route;

    /// <summary>Before each forward chunk: its tokens sit at positions <paramref name="startPos"/>.. (position 0 starts a sequence).</summary>
    public void BeginChunk(int startPos, int tokens)
    {
        _decodeBatch = false;
        _pos = startPos;
        _predictor.Reset();
        if (tokens != 1) _approx?.Reset();
    }

    /// <summary>
    /// Before a batched step of several sequences, <paramref name="tokens"/> in all. Without <paramref name="prompt"/> they
    /// are one new token each, placed as decode (<see cref="AfterLayer"/>: the policy's AfterDecodeLayer, no prefill
    /// counts); with it some sequence brings a prompt chunk, and the step is placed as one prompt chunk over the batch's
    /// counts (<see cref="PlacePrefillChunk"/>, experts streamed as for a prompt). Either way nothing is predicted per
    /// token, the approximate mode stays exact (its prediction is per token) and a routing override cannot route them.
    /// </summary>
    public void BeginBatch(int tokens, bool prompt)
    {
        if (!BatchesSequences) throw new NotSupportedException("a replayed routing trace routes one sequence by position; it cannot route a batch of sequences");
        _decodeBatch = !prompt;
        _pos = -1;
        _predictor.Reset();
        _approx?.Reset();
    }

    /// <summary>Whether a step may batch several sequences: not while a replayed trace routes by position.</summary>
    public bool BatchesSequences => _override == null;

    /// <summary>True between a <see cref="BeginBatch"/> of decode tokens only and the next <see cref="BeginChunk"/> or <see cref="BeginBatch"/>.</summary>
    public bool DecodeBatch => _decodeBatch;

    /// <summary>
    /// Between <see cref="BeginLayer"/> and <see cref="DecideActivations"/>: a prompt chunk → <see cref="PlacePrefillChunk"/>
    /// (<paramref name="x"/> [T, H], the layer's gate input, is read when <see cref="LayerCall.CountsNext"/>); decode → nothing.
    /// </summary>
    public ReadOnlySpan<PlacementDecision> BeforeActivations(int layer, RoutingBatch r, int tokens, ReadOnlySpan<float> x) =>
        tokens == 1 || _decodeBatch ? default : PlacePrefillChunk(layer, r, tokens, x);

    /// <summary>True when a pre-calculated layer call must be shown its true input (<see cref="CheckPrecalculatedInput"/>).</summary>
    public bool ChecksDrift => _approx != null && float.IsFinite(_approx.MaxDrift);

    /// <summary>
    /// Between <see cref="BeginLayer"/> and <see cref="DecideActivations"/> of a pre-calculated call: <paramref name="x"/>
    /// [H] is the layer's true gate input, <paramref name="stale"/> [H] the one its pre-calculation ran on; past the
    /// policy's drift bound the pre-calculated experts run exactly instead (<see cref="ApproximateExperts.RejectIfDrifted(ReadOnlySpan{float}, ReadOnlySpan{float})"/>).
    /// </summary>
    public void CheckPrecalculatedInput(ReadOnlySpan<float> x, ReadOnlySpan<float> stale)
    {
        if (_precalculated) _stats.PrecalculatedRejected += _approx!.RejectIfDrifted(x, stale);
    }

    /// <summary><see cref="CheckPrecalculatedInput"/> with the drift ‖x − x′‖ / ‖x‖ already measured (the trace simulator).</summary>
    public void CheckPrecalculatedDrift(float drift)
    {
        if (_precalculated) _stats.PrecalculatedRejected += _approx!.RejectIfDrifted(drift);
    }

    /// <summary>After the layer's experts ran: decode (one token, or a batched decode step) → <see cref="AfterDecodeLayer"/>; a prompt chunk → nothing.</summary>
    public ReadOnlySpan<PlacementDecision> AfterLayer(int layer, int tokens) =>
        tokens == 1 || _decodeBatch ? AfterDecodeLayer(layer) : default;

    /// <summary>Step 1 of a layer call (see the remarks): may rewrite <paramref name="r"/>; validates it.</summary>
    public LayerCall BeginLayer(int layer, RoutingBatch r, int tokens)
    {
        ArgumentNullException.ThrowIfNull(r);
        if ((uint)layer >= (uint)_predictor.Layers || !_predictor.IsMoe(layer)) throw new ArgumentException($"layer {layer} is not an MoE layer", nameof(layer));
        if (r.TopK != _topK) throw new ArgumentException($"routing has top-{r.TopK}, the model top-{_topK}", nameof(r));
        _override?.Route(layer, _pos, r);
        _predictor.Score(layer, r, tokens, _stats);
        _precalculated = _approx?.ApplyOrReset(layer, r, tokens, Residency) == true;
        if (_precalculated) _stats.Substitutions += _approx!.MissSubstitutions;
        for (int i = 0; i < tokens * _topK; i++)
            if ((uint)r.Experts[i] >= (uint)_experts)
                throw new ArgumentOutOfRangeException(nameof(r), $"expert {r.Experts[i]} of slot {i} is outside [0, {_experts})");
        if (layer == FirstMoe)
        {
            _stepStart = Measured().Snapshot();
            _stats.Tokens += tokens;
        }
        int next = _predictor.NextMoe(layer);
        return new LayerCall(_precalculated, tokens == 1 ? next : -1, tokens > 1 && !_decodeBatch && RoutesByPrediction(next));
    }

    /// <summary>
    /// Step 2: where each activation runs, with the misses' evictions and loads in between. The span is valid until the next
    /// call of this method.
    /// </summary>
    public ReadOnlySpan<PlacementDecision> DecideActivations(int layer, RoutingBatch r, int tokens)
    {
        ArgumentNullException.ThrowIfNull(r);
        _activations.Clear();
        Array.Clear(_gathered);
        int taken = 0;
        bool chunk = tokens > 1 && !_decodeBatch;
        bool stream = StreamMinTokens > 0 && chunk;
        float lowMax = MissPrecision is { } mp && !chunk ? mp.MaxWeight : -1; // decode only (see MissPrecision)
        if (chunk)
        {
            Array.Clear(_streamed);
            Array.Clear(_chunkCounts);
            for (int i = 0; i < tokens * _topK; i++) _chunkCounts[r.Experts[i]]++;
        }
        var order = chunk ? ExpertMajor(layer, r, tokens * _topK) : default;
        for (int k = 0; k < tokens * _topK; k++)
        {
            int i = chunk ? order[k] : k;
            int e = r.Experts[i];
            _stats.Activations++;
            bool resident = Residency.IsResident(layer, e);
            if (resident) _stats.Hits++;
            else _stats.Misses++;
            if (_precalculated && _approx!.IsPrecalculated(e))
            {
                _stats.CpuExpertRuns++;
                _stats.PrecalculatedRuns++;
                taken++;
                _activations.Add(new(PlacementAction.TakePrecalculated, layer, e, i));
            }
            else
            {
                if (!resident && _policy.OnMiss(layer, e, Residency, out int victim) == MissAction.Transfer)
                {
                    LoadOnMiss(layer, e, victim);
                    resident = true;
                }
                if (resident)
                {
                    _gathered[e] = true;
                    _stats.GpuExpertRuns++;
                    _activations.Add(new(PlacementAction.RunOnGpu, layer, e, i));
                }
                else if (stream && _chunkCounts[e] >= StreamMinTokens) _activations.Add(Streamed(layer, e, i));
                else
                {
                    _stats.CpuExpertRuns++;
                    bool low = lowMax >= 0 && r.Weights[i] <= lowMax;
                    if (low)
                    {
                        _stats.LowPrecisionRuns++;
                        _stats.LowPrecisionBytesSaved += MissCopySavedBytes;
                    }
                    _activations.Add(new(PlacementAction.RunOnCpu, layer, e, i, LowPrecision: low));
                }
            }
            _policy.OnUse(layer, e);
        }
        if (_precalculated)
        {
            _stats.PrecalculatedUnused += _approx!.CpuExperts - taken;
            _approx.Reset(); // the prediction is consumed
        }
        return CollectionsMarshal.AsSpan(_activations);
    }

    /// <summary>
    /// A prompt chunk's <paramref name="n"/> activations grouped by expert, the experts resident now first, each expert's
    /// in token order. A policy that loads on a miss then copies each expert the chunk needs once: in token order every
    /// activation of a non-resident expert could evict another expert of the same chunk, to be copied back a few
    /// tokens later (LRU with two of eight slots per layer copied each expert of the embedded model ~35 times per 256-token
    /// prompt: 6.56 copies per prompt token, now 0.135).
    /// </summary>
    ReadOnlySpan<int> ExpertMajor(int layer, RoutingBatch r, int n)
    {
        if (_order.Length < n) _order = new int[n];
        int at = 0;
        for (int pass = 0; pass < 2; pass++)
            for (int e = 0; e < _experts; e++)
                if (Residency.IsResident(layer, e) == (pass == 0))
                {
                    _nextSlot[e] = at;
                    at += _chunkCounts[e];
                }
        for (int i = 0; i < n; i++) _order[_nextSlot[r.Experts[i]]++] = i;
        return _order.AsSpan(0, n);
    }

    // Activation i of a prefill chunk runs expert e from a staging slot; its first activation in the call carries the copy.
    PlacementDecision Streamed(int layer, int e, int i)
    {
        _stats.GpuExpertRuns++;
        _stats.StreamedRuns++;
        bool first = !_streamed[e];
        if (first)
        {
            _streamed[e] = true;
            _stats.StreamTransfers++;
            Transferred();
        }
        return new(PlacementAction.RunStreamed, layer, e, i, first ? LoadReason.Stream : LoadReason.Miss);
    }

    void LoadOnMiss(int layer, int expert, int victim)
    {
        if (victim >= 0)
        {
            if (!_carried.Holds(layer, victim)) throw new InvalidOperationException($"policy {_policy.Name} evicts expert {victim} of layer {layer}, which is not resident");
            bool split = _gathered[victim];
            if (split) Array.Clear(_gathered);
            Residency.Evict(layer, victim);
            _carried.Set(layer, victim, false);
            _activations.Add(new(PlacementAction.Evict, layer, victim, SplitsWave: split));
        }
        Residency.Load(layer, expert);
        Residency.PendingLoads.Clear();
        _carried.Set(layer, expert, true);
        _activations.Add(new(PlacementAction.Load, layer, expert, Reason: LoadReason.Miss));
        _stats.MissTransfers++;
        Transferred();
    }

    void Transferred()
    {
        _stats.Transfers++;
        _stats.TransferBytes += _expertBytes;
    }

    /// <summary>
    /// Step 3 (decode): predicts <paramref name="layer"/> (the next MoE layer) from <paramref name="x"/> [H], the current
    /// layer's gate input; the policy may prefetch; in approximate mode the prediction is degraded and held. The span is
    /// valid until the next call of a phase that loads.
    /// </summary>
    public ReadOnlySpan<PlacementDecision> PredictNext(int layer, ReadOnlySpan<float> x)
    {
        _loads.Clear();
        _predictor.Predict(layer, _pos, x);
        _policy.OnPredicted(layer, _predictor.Ids, Residency);
        Reconcile(layer, LoadReason.Prefetch);
        if (Approximates(layer))
        {
            if (_approx!.Predict(layer, _predictor, Residency)) _stats.Substitutions++;
            if (_approx.CpuExperts > 0) _loads.Add(new(PlacementAction.StartPrecalculation, layer, -1));
        }
        return CollectionsMarshal.AsSpan(_loads);
    }

    /// <summary>Step 4 (decode): the policy may re-place <paramref name="layer"/> once it has run a token.</summary>
    public ReadOnlySpan<PlacementDecision> AfterDecodeLayer(int layer)
    {
        _loads.Clear();
        _policy.AfterDecodeLayer(layer, Residency);
        if (Residency.PendingLoads.Count > 0) Reconcile(layer, LoadReason.Rebalance);
        return CollectionsMarshal.AsSpan(_loads);
    }

    /// <summary>
    /// Prefill, before the chunk's activations: the chunk's <paramref name="tokens"/> routed by <paramref name="r"/> place
    /// <paramref name="layer"/> (its loads are post-prefill loads, then used by the chunk itself); <paramref name="x"/>
    /// [T, H] is its gate input, read when <see cref="LayerCall.CountsNext"/>.
    /// </summary>
    public ReadOnlySpan<PlacementDecision> PlacePrefillChunk(int layer, RoutingBatch r, int tokens, ReadOnlySpan<float> x)
    {
        _loads.Clear();
        _predictor.PrefillCounts(layer, r, tokens, _counts);
        _policy.OnPrefillCounts(layer, _counts, Residency);
        Reconcile(layer, LoadReason.PostPrefill);
        int next = _predictor.NextMoe(layer);
        if (RoutesByPrediction(next)) _predictor.CountNext(next, x, tokens, _pos);
        return CollectionsMarshal.AsSpan(_loads);
    }

    // Carries the policy's changes out and counts the loads.
    void Reconcile(int layer, LoadReason reason)
    {
        int from = _loads.Count;
        _carried.Reconcile(layer, reason, _loads);
        foreach (var d in CollectionsMarshal.AsSpan(_loads)[from..])
        {
            if (d.Action != PlacementAction.Load) continue;
            if (reason == LoadReason.Prefetch) _stats.PrefetchTransfers++;
            if (reason == LoadReason.Rebalance) _stats.RebalanceTransfers++;
            Transferred();
        }
    }
}
