using Daop.Engine.Model.Layers;

namespace Daop.Engine.Schedule;

/// <summary>
/// Benchmark-only: replaces the router's choice with another one (e.g. a recorded trace of a trained model, so a
/// random-weight model routes realistically). A scheduler given one consults it at the start of every
/// <see cref="IExpertScheduler.RunExperts"/> call, before anything is decided, and for its next-layer predictions.
/// Changes what is computed: never use it for real inference.
/// </summary>
public interface IRoutingOverride
{
    /// <summary>
    /// Overwrites <paramref name="routing"/>'s ids and weights ([T, K]) for the chunk's tokens, which sit at positions
    /// <paramref name="startPos"/>.. of the sequence, at <paramref name="layer"/>.
    /// </summary>
    void Route(int layer, int startPos, RoutingBatch routing);

    /// <summary>
    /// The next-layer predictor's router logits [E] for <paramref name="layer"/> of the token at
    /// <paramref name="position"/> (what layer <paramref name="layer"/>'s router makes of the previous layer's gate
    /// input); false to let the scheduler compute them from the model.
    /// </summary>
    bool TryPredict(int layer, int position, Span<float> logits);
}
