using Daop.Engine.Model.Layers;

namespace Daop.Engine.Model;

/// <summary>
/// Records, per position and MoE layer, the chosen experts and their weights (and optionally the router
/// logits and gate inputs), as DAOP's statistics and traces need. Attach with <see cref="MoeModel.Observer"/>.
/// </summary>
public sealed class RoutingRecorder(int layers, int experts, int topK, bool keepLogits = false, bool keepGateInputs = false) : IRoutingObserver
{
    readonly List<int>[] _ids = NewLists<int>(layers);
    readonly List<float>[] _weights = NewLists<float>(layers);
    readonly List<float>[] _logits = NewLists<float>(layers);
    readonly List<float>[] _gateInputs = NewLists<float>(layers);

    /// <summary>K.</summary>
    public int TopK => topK;
    /// <summary>E.</summary>
    public int Experts => experts;

    /// <summary>Positions recorded for <paramref name="layer"/>.</summary>
    public int Count(int layer) => _ids[layer].Count / topK;

    /// <summary>[K] expert ids of position <paramref name="pos"/> at <paramref name="layer"/>.</summary>
    public ReadOnlySpan<int> Ids(int layer, int pos) => System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_ids[layer]).Slice(pos * topK, topK);

    /// <summary>[K] combine weights of position <paramref name="pos"/> at <paramref name="layer"/>.</summary>
    public ReadOnlySpan<float> Weights(int layer, int pos) => System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_weights[layer]).Slice(pos * topK, topK);

    /// <summary>[E] router logits (when kept).</summary>
    public ReadOnlySpan<float> Logits(int layer, int pos) => System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_logits[layer]).Slice(pos * experts, experts);

    /// <summary>[H] router input (when kept).</summary>
    public ReadOnlySpan<float> GateInput(int layer, int pos, int hidden) => System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_gateInputs[layer]).Slice(pos * hidden, hidden);

    /// <summary>Forgets everything (a new sequence).</summary>
    public void Clear()
    {
        foreach (var l in _ids) l.Clear();
        foreach (var l in _weights) l.Clear();
        foreach (var l in _logits) l.Clear();
        foreach (var l in _gateInputs) l.Clear();
    }

    /// <inheritdoc />
    public void OnRouted(int layer, int startPos, ReadOnlySpan<float> gateInput, ReadOnlySpan<float> logits, RoutingBatch routing)
    {
        int n = routing.Tokens * topK;
        _ids[layer].AddRange(routing.Experts.AsSpan(0, n));
        _weights[layer].AddRange(routing.Weights.AsSpan(0, n));
        if (keepLogits) _logits[layer].AddRange(logits);
        if (keepGateInputs) _gateInputs[layer].AddRange(gateInput);
    }

    static List<T>[] NewLists<T>(int n) => Enumerable.Range(0, n).Select(_ => new List<T>()).ToArray();
}
