using Daop.Engine.Load.Config;
using Daop.Engine.Model.Layers;

namespace Daop.Engine.Schedule;

/// <summary>
/// An <see cref="IRoutingOverride"/> that replays recorded <see cref="RoutingTrace"/>s: position p of the current
/// sequence routes, at layer l, as token p mod length of trace <see cref="Sequence"/> mod count did, with its recorded
/// weights, and the next-layer predictor sees the trace's predicted logits. For benchmarks of random-weight models
/// (expand the traces to the model's depth with <see cref="RoutingTrace.Expand"/> first).
/// </summary>
public sealed class TraceReplay : IRoutingOverride
{
    readonly IReadOnlyList<RoutingTrace> _traces;

    /// <summary>Replays <paramref name="traces"/> (all of one shape).</summary>
    public TraceReplay(IReadOnlyList<RoutingTrace> traces)
    {
        ArgumentNullException.ThrowIfNull(traces);
        if (traces.Count == 0) throw new ArgumentException("no trace to replay", nameof(traces));
        var t0 = traces[0];
        if (traces.Any(t => t.Layers != t0.Layers || t.Experts != t0.Experts || t.TopK != t0.TopK || t.Tokens == 0))
            throw new ArgumentException("traces to replay must share layers, experts and top-k, and hold tokens", nameof(traces));
        _traces = traces;
    }

    /// <summary>The traces.</summary>
    public IReadOnlyList<RoutingTrace> Traces => _traces;

    /// <summary>Which trace the current sequence replays (taken modulo the trace count).</summary>
    public int Sequence { get; set; }

    /// <summary>Layers of the traces.</summary>
    public int Layers => _traces[0].Layers;

    /// <summary>Experts per layer of the traces.</summary>
    public int Experts => _traces[0].Experts;

    /// <summary>Experts per token of the traces.</summary>
    public int TopK => _traces[0].TopK;

    /// <summary>The K experts the current trace's predictor expected at <paramref name="layer"/> for <paramref name="position"/>.</summary>
    public ReadOnlySpan<int> Predicted(int layer, int position) => Current.Predicted(position % Current.Tokens, layer);

    /// <summary>The current trace's E predicted logits at <paramref name="layer"/> for <paramref name="position"/>.</summary>
    public ReadOnlySpan<float> PredictedScores(int layer, int position) => Current.PredictedScores(position % Current.Tokens, layer);

    RoutingTrace Current => _traces[(int)((uint)Sequence % (uint)_traces.Count)];

    /// <summary>Throws unless the traces fit a model of <paramref name="config"/> (same depth, experts and top-k, every layer MoE).</summary>
    public void Check(ModelConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        var t = _traces[0];
        if (config.NumExperts != t.Experts || config.TopK != t.TopK)
            throw new ArgumentException($"the routing trace has {t.Experts} experts top-{t.TopK}; the model {config.NumExperts} top-{config.TopK}: it cannot be replayed");
        if (config.NumLayers != t.Layers)
            throw new ArgumentException($"the routing trace has {t.Layers} layers, the model {config.NumLayers}: expand it first");
        if (config.MoeLayerCount < config.NumLayers) throw new ArgumentException("replaying a routing trace needs every layer to be a MoE layer");
    }

    /// <inheritdoc />
    public void Route(int layer, int startPos, RoutingBatch routing)
    {
        ArgumentNullException.ThrowIfNull(routing);
        var tr = Current;
        int k = routing.TopK;
        if (k != tr.TopK) throw new ArgumentException($"routing has top-{k}, the trace top-{tr.TopK}", nameof(routing));
        for (int i = 0; i < routing.Tokens; i++)
        {
            int t = (startPos + i) % tr.Tokens;
            tr.True(t, layer).CopyTo(routing.Experts.AsSpan(i * k, k));
            tr.TrueWeights.AsSpan((t * tr.Layers + layer) * k, k).CopyTo(routing.Weights.AsSpan(i * k, k));
        }
    }

    /// <inheritdoc />
    public bool TryPredict(int layer, int position, Span<float> logits)
    {
        var tr = Current;
        if (layer <= 0 || layer >= tr.Layers) return false;
        tr.PredictedScores(position % tr.Tokens, layer).CopyTo(logits);
        return true;
    }
}
