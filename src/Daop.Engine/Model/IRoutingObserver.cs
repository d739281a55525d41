using Daop.Engine.Model.Layers;

namespace Daop.Engine.Model;

/// <summary>Receives each MoE layer's router output as it is computed (routing statistics, traces, tests).</summary>
public interface IRoutingObserver
{
    /// <summary>Called once per MoE layer per forward chunk.</summary>
    /// <param name="layer">Layer index.</param>
    /// <param name="startPos">Position of the chunk's first token.</param>
    /// <param name="gateInput">[T, H] the normalised hidden state the router saw.</param>
    /// <param name="logits">[T, E] pre-softmax router logits.</param>
    /// <param name="routing">The chosen experts and weights.</param>
    void OnRouted(int layer, int startPos, ReadOnlySpan<float> gateInput, ReadOnlySpan<float> logits, RoutingBatch routing);
}
