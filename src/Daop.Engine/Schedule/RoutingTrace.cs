using Daop.Engine.Model;
using Daop.Engine.Model.Layers;
using Daop.Kernels.Cpu;

namespace Daop.Engine.Schedule;

/// <summary>
/// Per token and MoE layer: the experts the router chose, their weights, and the experts DAOP's
/// next-layer predictor (layer l+1's gate applied to layer l's gate input) expected. Layer 0 has no
/// prediction (-1). Shapes: [tokens, layers, K].
/// </summary>
public sealed class RoutingTrace
{
    /// <summary>MoE layers.</summary>
    public required int Layers { get; init; }
    /// <summary>E.</summary>
    public required int Experts { get; init; }
    /// <summary>K.</summary>
    public required int TopK { get; init; }
    /// <summary>Tokens traced.</summary>
    public required int Tokens { get; init; }
    /// <summary>[tokens, layers, K] chosen expert ids, largest weight first.</summary>
    public required int[] TrueIds { get; init; }
    /// <summary>[tokens, layers, K] their combine weights.</summary>
    public required float[] TrueWeights { get; init; }
    /// <summary>[tokens, layers, K] predicted ids for each layer from the previous layer's gate input (-1 at layer 0).</summary>
    public required int[] PredictedIds { get; init; }

    /// <summary>[tokens, layers, E] the predictor's logits for each layer (zeros at layer 0).</summary>
    public required float[] PredictedLogits { get; init; }

    /// <summary>
    /// [tokens, layers] how far each layer's gate input x lies from the previous layer's x′, ‖x − x′‖ / ‖x‖ (0 at layer 0):
    /// what a drift-bounded checked mode compares with its bound (<see cref="Placement.IPlacementPolicy.PrecalcMaxDrift"/>).
    /// Null for traces made without it.
    /// </summary>
    public float[]? InputDrift { get; init; }

    /// <summary>The input drift of <paramref name="token"/> at <paramref name="layer"/> (see <see cref="InputDrift"/>).</summary>
    public float Drift(int token, int layer) =>
        InputDrift is { } d ? d[token * Layers + layer] : throw new InvalidOperationException("this routing trace was recorded without input drift");

    /// <summary>The E predicted logits of <paramref name="token"/> at <paramref name="layer"/>.</summary>
    public ReadOnlySpan<float> PredictedScores(int token, int layer) => PredictedLogits.AsSpan((token * Layers + layer) * Experts, Experts);

    /// <summary>The K true ids of <paramref name="token"/> at <paramref name="layer"/>.</summary>
    public ReadOnlySpan<int> True(int token, int layer) => TrueIds.AsSpan((token * Layers + layer) * TopK, TopK);

    /// <summary>The K predicted ids of <paramref name="token"/> at <paramref name="layer"/>.</summary>
    public ReadOnlySpan<int> Predicted(int token, int layer) => PredictedIds.AsSpan((token * Layers + layer) * TopK, TopK);

    /// <summary>The first <paramref name="tokens"/> tokens of this trace.</summary>
    public RoutingTrace Take(int tokens)
    {
        if (tokens < 1 || tokens > Tokens) throw new ArgumentOutOfRangeException(nameof(tokens), $"take {tokens} of a trace of {Tokens} tokens");
        int k = tokens * Layers * TopK, e = tokens * Layers * Experts;
        return new RoutingTrace
        {
            Layers = Layers, Experts = Experts, TopK = TopK, Tokens = tokens,
            TrueIds = TrueIds[..k], TrueWeights = TrueWeights[..k], PredictedIds = PredictedIds[..k], PredictedLogits = PredictedLogits[..e],
            InputDrift = InputDrift?[..(tokens * Layers)],
        };
    }

    /// <summary>
    /// A deeper trace for projecting a larger model: layer 0 keeps layer 0, and every later layer l takes
    /// source layer 1 + (l − 1) mod (L − 1), so each projected layer past the first still carries a
    /// real next-layer prediction.
    /// </summary>
    public RoutingTrace Expand(int layers)
    {
        if (Layers < 2) throw new InvalidOperationException("expanding a trace needs at least two layers");
        int Src(int l) => l == 0 ? 0 : 1 + (l - 1) % (Layers - 1);
        var ids = new int[Tokens * layers * TopK];
        var w = new float[ids.Length];
        var pred = new int[ids.Length];
        var logits = new float[Tokens * layers * Experts];
        var drift = InputDrift == null ? null : new float[Tokens * layers];
        for (int t = 0; t < Tokens; t++)
            for (int l = 0; l < layers; l++)
            {
                int s = Src(l);
                True(t, s).CopyTo(ids.AsSpan((t * layers + l) * TopK, TopK));
                TrueWeights.AsSpan((t * Layers + s) * TopK, TopK).CopyTo(w.AsSpan((t * layers + l) * TopK, TopK));
                Predicted(t, s).CopyTo(pred.AsSpan((t * layers + l) * TopK, TopK));
                PredictedScores(t, s).CopyTo(logits.AsSpan((t * layers + l) * Experts, Experts));
                if (drift != null) drift[t * layers + l] = InputDrift![t * Layers + s];
            }
        return new RoutingTrace
        {
            Layers = layers, Experts = Experts, TopK = TopK, Tokens = Tokens,
            TrueIds = ids, TrueWeights = w, PredictedIds = pred, PredictedLogits = logits, InputDrift = drift,
        };
    }

    /// <summary>
    /// Runs <paramref name="tokens"/> through <paramref name="model"/> as one sequence (prefill, exact routing)
    /// and records the trace. Every layer must be a MoE layer.
    /// </summary>
    public static RoutingTrace Record(MoeModel model, ReadOnlySpan<int> tokens)
    {
        var c = model.Config;
        if (c.MoeLayerCount < c.NumLayers) throw new NotSupportedException("routing traces need every layer to be a MoE layer");
        var rec = new Recorder(model, tokens.Length);
        var previous = model.Observer;
        model.Observer = rec;
        try
        {
            var logits = new float[c.VocabSize];
            model.Forward(tokens, 0, model.NewCache(), logits);
        }
        finally { model.Observer = previous; }
        return new RoutingTrace
        {
            Layers = c.NumLayers, Experts = c.NumExperts, TopK = c.TopK, Tokens = tokens.Length,
            TrueIds = rec.TrueIds, TrueWeights = rec.TrueWeights, PredictedIds = rec.PredictedIds, PredictedLogits = rec.PredictedLogits,
            InputDrift = rec.InputDrift,
        };
    }

    sealed class Recorder(MoeModel model, int tokens) : IRoutingObserver
    {
        readonly int _l = model.Config.NumLayers, _e = model.Config.NumExperts, _k = model.Config.TopK, _h = model.Config.HiddenSize;
        public readonly int[] TrueIds = new int[tokens * model.Config.NumLayers * model.Config.TopK];
        public readonly float[] TrueWeights = new float[tokens * model.Config.NumLayers * model.Config.TopK];
        public readonly int[] PredictedIds = Enumerable.Repeat(-1, tokens * model.Config.NumLayers * model.Config.TopK).ToArray();
        public readonly float[] PredictedLogits = new float[tokens * model.Config.NumLayers * model.Config.NumExperts];
        public readonly float[] InputDrift = new float[tokens * model.Config.NumLayers];
        readonly float[] _previous = new float[tokens * model.Config.HiddenSize]; // the previous layer's gate inputs [T, H]

        public void OnRouted(int layer, int startPos, ReadOnlySpan<float> gateInput, ReadOnlySpan<float> logits, RoutingBatch r)
        {
            int t = r.Tokens;
            for (int i = 0; i < t; i++)
            {
                int dst = ((startPos + i) * _l + layer) * _k;
                r.Experts.AsSpan(i * _k, _k).CopyTo(TrueIds.AsSpan(dst, _k));
                r.Weights.AsSpan(i * _k, _k).CopyTo(TrueWeights.AsSpan(dst, _k));
            }
            for (int i = 0; i < t && layer > 0; i++)
                InputDrift[(startPos + i) * _l + layer] = ApproximateExperts.RelativeDistance(gateInput.Slice(i * _h, _h), _previous.AsSpan((startPos + i) * _h, _h));
            gateInput[..(t * _h)].CopyTo(_previous.AsSpan(startPos * _h, t * _h));
            if (layer + 1 >= _l) return;
            // DAOP's predictor: layer l+1's gate on layer l's gate input; softmax is monotonic, so top-k of logits.
            var predLogits = new float[t * _e];                                 // a routerless layer's one expert: logits 0
            if (model.Weights.Layers[layer + 1].Router is { } next) MatMul.Forward(next.W, gateInput[..(t * _h)], predLogits, t);
            Span<float> vals = stackalloc float[_k];
            for (int i = 0; i < t; i++)
                predLogits.AsSpan(i * _e, _e).CopyTo(PredictedLogits.AsSpan(((startPos + i) * _l + layer + 1) * _e, _e));
            for (int i = 0; i < t; i++)
                Router.TopK(predLogits.AsSpan(i * _e, _e), PredictedIds.AsSpan(((startPos + i) * _l + layer + 1) * _k, _k), vals);
        }
    }
}
