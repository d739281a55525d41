using Daop.Engine.Load.Config;
using Daop.Engine.Model;
using Daop.Engine.Model.Layers;
using Daop.Kernels.Cpu;

namespace Daop.Engine.Schedule;

/// <summary>
/// DAOP's next-layer predictor as both expert schedulers use it: layer l+1's router applied to layer l's gate input
/// (or a replayed trace's logits) and its top-k, held until layer l+1 runs and scored there (predictor recall); and,
/// for DAOP's approximate mode during prefill, the per-expert counts of what the predictor routes, which that mode
/// places a layer by (its decode routes the layer by the prediction, not by the layer's own gate).
/// </summary>
public sealed class NextLayerPredictor
{
    readonly ModelWeights _w;
    readonly RouterSpec _spec;
    readonly IRoutingOverride? _override;
    readonly int _hidden, _experts, _topK;
    readonly int[] _ids, _held, _counts, _nextMoe;
    readonly float[] _logits, _vals, _probs;
    int _layer = -1, _countsLayer = -1;

    /// <summary>A predictor over <paramref name="model"/>'s routers (or <paramref name="routingOverride"/>'s logits, when it has them).</summary>
    public NextLayerPredictor(MoeModel model, IRoutingOverride? routingOverride)
    {
        ArgumentNullException.ThrowIfNull(model);
        var c = model.Config;
        _w = model.Weights;
        _spec = c.Router;
        _override = routingOverride;
        _hidden = c.HiddenSize;
        _experts = c.NumExperts;
        _topK = c.TopK;
        _ids = new int[_topK];
        _held = new int[_topK];
        _vals = new float[_topK];
        _counts = new int[_experts];
        _logits = new float[_experts];
        _probs = new float[_experts];
        _nextMoe = new int[c.NumLayers];
        for (int l = 0; l < c.NumLayers; l++) _nextMoe[l] = l + 1 < c.NumLayers && c.IsMoe(l + 1) ? l + 1 : -1;
    }

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
        if (_override?.TryPredict(layer, position, _logits) != true)
            MatMul.Forward(_w.Layers[layer].Router!.W, x[.._hidden], _logits, 1);
        Router.TopK(_logits, _ids, _vals);
        _ids.CopyTo(_held, 0);
        _layer = layer;
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
            for (int i = 0; i < _topK; i++)
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
        counts[.._experts].Clear();
        if (_countsLayer == layer) _counts.CopyTo(counts);
        else
            for (int i = 0; i < tokens * _topK; i++) counts[routing.Experts[i]]++;
        _countsLayer = -1;
    }

    /// <summary>
    /// Prefill, approximate mode: counts, per expert, how many of the chunk's <paramref name="tokens"/> tokens (at positions
    /// <paramref name="startPos"/>..) the predictor routes to <paramref name="layer"/> from <paramref name="x"/> [T, H], for
    /// that layer's <see cref="PrefillCounts"/>.
    /// </summary>
    public void CountNext(int layer, ReadOnlySpan<float> x, int tokens, int startPos)
    {
        if (x.Length < tokens * _hidden) throw new ArgumentException($"x holds {x.Length} floats, need {tokens * _hidden}", nameof(x));
        Array.Clear(_counts);
        Span<int> ids = stackalloc int[_topK];
        Span<float> weights = stackalloc float[_topK];
        var router = _w.Layers[layer].Router!.W;
        for (int t = 0; t < tokens; t++)
        {
            if (_override?.TryPredict(layer, startPos + t, _logits) != true)
                MatMul.Forward(router, x.Slice(t * _hidden, _hidden), _logits, 1);
            Router.Route(_spec, _logits, ids, weights, _probs);
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
