using Daop.Engine.Load.Config;
using Daop.Engine.Model;
using Daop.Engine.Model.Layers;
using Daop.Kernels.Cpu;

namespace Daop.Engine.Schedule;

/// <summary>
/// DAOP's next-layer predictor, as the placement driver uses it: layer l+1's router applied to layer l's gate input
/// (or a replayed trace's logits) and its top-k, held until layer l+1 runs and scored there (predictor recall); and,
/// for DAOP's approximate mode during prefill, the per-expert counts of what the predictor routes, which that mode
/// places a layer by (its decode routes the layer by the prediction, not by the layer's own gate).
/// </summary>
public sealed class NextLayerPredictor
{
    readonly ModelWeights? _w;
    readonly IRoutingOverride? _override;
    readonly TraceReplay? _trace;
    readonly int _hidden;
    readonly bool[] _moe;
    readonly int[] _ids, _held, _counts, _nextMoe;
    readonly float[] _logits, _vals, _probs, _weights;
    int _layer = -1, _countsLayer = -1;

    /// <summary>A predictor over <paramref name="model"/>'s routers (or <paramref name="routingOverride"/>'s logits, when it has them).</summary>
    public NextLayerPredictor(MoeModel model, IRoutingOverride? routingOverride)
        : this((model ?? throw new ArgumentNullException(nameof(model))).Config.MoeMask(), model.Config.NumExperts, model.Config.TopK,
            model.Config.Router, routingOverride, model.Weights, model.Config.HiddenSize)
    { }

    /// <summary>
    /// A predictor with no model, for the trace simulator: the predicted experts and logits are <paramref name="replay"/>'s
    /// (every layer a MoE layer). A trace records its predicted experts, not a router: predictions route as those experts,
    /// weighted by their logits' softmax (<see cref="RouteHeld"/>).
    /// </summary>
    public NextLayerPredictor(TraceReplay replay)
        : this(Enumerable.Repeat(true, (replay ?? throw new ArgumentNullException(nameof(replay))).Layers).ToArray(), replay.Experts, replay.TopK,
            null, replay, null, 0) => _trace = replay;

    NextLayerPredictor(IReadOnlyList<bool> moeLayers, int experts, int topK, RouterSpec? spec, IRoutingOverride? routingOverride,
        ModelWeights? weights, int hidden)
    {
        Spec = spec;
        _override = routingOverride;
        _w = weights;
        _hidden = hidden;
        Experts = experts;
        TopK = topK;
        _moe = [.. moeLayers];
        _ids = new int[topK];
        _held = new int[topK];
        _vals = new float[topK];
        _weights = new float[topK];
        _counts = new int[experts];
        _logits = new float[experts];
        _probs = new float[experts];
        _nextMoe = new int[_moe.Length];
        for (int l = 0; l < _moe.Length; l++) _nextMoe[l] = l + 1 < _moe.Length && _moe[l + 1] ? l + 1 : -1;
        FirstMoe = Array.IndexOf(_moe, true);
    }

    /// <summary>How the model's router turns logits into experts; null for a replayed trace (see <see cref="RouteHeld"/>).</summary>
    public RouterSpec? Spec { get; }
    /// <summary>Layers of the model.</summary>
    public int Layers => _moe.Length;
    /// <summary>Experts per MoE layer.</summary>
    public int Experts { get; }
    /// <summary>Experts per token (K).</summary>
    public int TopK { get; }
    /// <summary>The first MoE layer, or -1.</summary>
    public int FirstMoe { get; }

    /// <summary>True if <paramref name="layer"/> is a MoE layer.</summary>
    public bool IsMoe(int layer) => _moe[layer];

    /// <summary>The MoE layer right after <paramref name="layer"/> (the one predicted from its gate input), or -1.</summary>
    public int NextMoe(int layer) => (uint)layer < (uint)_nextMoe.Length ? _nextMoe[layer] : -1;

    /// <summary>The layer the held prediction is for, or -1.</summary>
    public int Layer => _layer;

    /// <summary>[K] the predicted experts, best first.</summary>
    public ReadOnlySpan<int> Ids => _ids;

    /// <summary>[E] the predictor's router logits.</summary>
    public ReadOnlySpan<float> Logits => _logits;

    /// <summary>Predicts <paramref name="layer"/> for the token at <paramref name="position"/> from <paramref name="x"/> [H], the previous MoE layer's gate input.</summary>
    public void Predict(int layer, int position, ReadOnlySpan<float> x)
    {
        if (_trace != null)
        {
            _trace.Predicted(layer, position).CopyTo(_ids);
            _trace.PredictedScores(layer, position).CopyTo(_logits);
        }
        else
        {
            if (_override?.TryPredict(layer, position, _logits) != true) RouterLogits(layer, x);
            Router.TopK(_logits, _ids, _vals);
        }
        _ids.CopyTo(_held, 0);
        _layer = layer;
    }

    // The layer's router selection bias (DeepSeek-V3), when a model is there to have one.
    float[]? ScoreBias(int layer) => layer >= 0 && _w != null ? _w.Layers[layer].RouterScoreBias : null;

    // logits = layer's router on x [H] (only a model has routers).
    void RouterLogits(int layer, ReadOnlySpan<float> x)
    {
        if (_w == null) throw new InvalidOperationException($"the replayed trace has no predicted logits for layer {layer}, and there is no model to compute them");
        if (x.Length < _hidden) throw new ArgumentException($"x holds {x.Length} floats, need {_hidden}", nameof(x));
        if (_w.Layers[layer].Router is { } router) MatMul.Forward(router.W, x[.._hidden], _logits, 1);
        else _logits.AsSpan().Clear();                                          // a routerless layer's one expert: logit 0
    }

    /// <summary>
    /// Routes the held prediction as the model's router routes its <see cref="Logits"/> (or, for a replayed trace, as the
    /// trace's predicted experts weighted by the logits' softmax); then <paramref name="probs"/> [E] = softmax(logits).
    /// <paramref name="scratch"/> [E] is the router's scratch.
    /// </summary>
    public void RouteHeld(Span<int> ids, Span<float> weights, Span<float> probs, Span<float> scratch)
    {
        if (Spec != null) Router.Route(Spec, _logits, ScoreBias(_layer), ids, weights, scratch);
        else _ids.CopyTo(ids);
        Softmax.Forward(_logits, probs);
        if (Spec == null)
            for (int i = 0; i < ids.Length; i++) weights[i] = probs[ids[i]];
    }

    /// <summary>
    /// At the start of <paramref name="layer"/>'s call: for a decoded token with a prediction for this layer, counts its
    /// routed experts and those the prediction had into <paramref name="stats"/>; the prediction is then dropped.
    /// </summary>
    public void Score(int layer, RoutingBatch routing, int tokens, OffloadStats stats)
    {
        ArgumentNullException.ThrowIfNull(routing);
        ArgumentNullException.ThrowIfNull(stats);
        if (tokens == 1 && _layer == layer)
            for (int i = 0; i < TopK; i++)
            {
                stats.PredictedActivations++;
                if (Array.IndexOf(_held, routing.Experts[i]) >= 0) stats.PredictionHits++;
            }
        _layer = -1;
    }

    /// <summary>
    /// Prefill: the per-expert counts to place <paramref name="layer"/> by: the predictor's, if <see cref="CountNext"/>
    /// made them for this layer, else the chunk's routing (<paramref name="routing"/>, <paramref name="tokens"/> tokens).
    /// </summary>
    public void PrefillCounts(int layer, RoutingBatch routing, int tokens, Span<int> counts)
    {
        ArgumentNullException.ThrowIfNull(routing);
        counts[..Experts].Clear();
        if (_countsLayer == layer) _counts.CopyTo(counts);
        else
            for (int i = 0; i < tokens * TopK; i++) counts[routing.Experts[i]]++;
        _countsLayer = -1;
    }

    /// <summary>
    /// Prefill, approximate mode: counts, per expert, how many of the chunk's <paramref name="tokens"/> tokens (at positions
    /// <paramref name="startPos"/>..) the predictor routes to <paramref name="layer"/> from <paramref name="x"/> [T, H], for
    /// that layer's <see cref="PrefillCounts"/>.
    /// </summary>
    public void CountNext(int layer, ReadOnlySpan<float> x, int tokens, int startPos)
    {
        Array.Clear(_counts);
        Span<int> ids = stackalloc int[TopK];
        for (int t = 0; t < tokens; t++)
        {
            if (_trace != null)
            {
                foreach (int e in _trace.Predicted(layer, startPos + t)) _counts[e]++;
                continue;
            }
            if (_override?.TryPredict(layer, startPos + t, _logits) != true)
            {
                if (x.Length < tokens * _hidden) throw new ArgumentException($"x holds {x.Length} floats, need {tokens * _hidden}", nameof(x));
                RouterLogits(layer, x.Slice(t * _hidden, _hidden));
            }
            Router.Route(Spec!, _logits, ScoreBias(layer), ids, _weights, _probs);
            foreach (int e in ids) _counts[e]++;
        }
        _countsLayer = layer;
    }

    /// <summary>Drops the held prediction and counts (a new chunk).</summary>
    public void Reset()
    {
        _layer = -1;
        _countsLayer = -1;
    }
}
