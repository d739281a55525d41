using Daop.Engine.Device;

namespace Daop.Engine.Model.Layers;

/// <summary>
/// One layer's share of a forward chunk: the device, the chunk's buffers (a layer reads xn [T, H] and writes
/// out [T, H]), the layer's index and the chunk's T tokens at positions StartPos.. of one sequence — or, with
/// <paramref name="Batch"/>, T tokens of T sequences, row b at its own position and cache.
/// </summary>
readonly record struct LayerStep(IDevice Device, RunState S, int Layer, int Tokens, int StartPos, SequenceBatch? Batch = null);

/// <summary>Row b of a batched decode step: token b of sequence b, at <see cref="Positions"/>[b] of <see cref="Caches"/>[b].</summary>
sealed class SequenceBatch(int[] positions, KvCache[] caches)
{
    public int[] Positions { get; } = positions;
    public KvCache[] Caches { get; } = caches;
}
