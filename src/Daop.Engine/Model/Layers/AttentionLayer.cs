using Daop.Engine.Device;
using Daop.Engine.Load;
using Daop.Engine.Load.Config;
using Daop.Engine.Model.Families;

namespace Daop.Engine.Model.Layers;

/// <summary>
/// One decoder layer's attention with its weights: out [T, H] = Attention(xn [T, H]), appending the layer's keys and
/// values to the sequence's cache. One subclass per <see cref="AttentionSpec"/> record, made by <see cref="Load"/>.
/// </summary>
public abstract class AttentionLayer
{
    /// <summary>The spec the layer was made from.</summary>
    public abstract AttentionSpec Spec { get; }

    /// <summary>Maps layer <paramref name="layer"/>'s attention weights for <paramref name="spec"/>: the one place that picks the implementation.</summary>
    public static AttentionLayer Load(AttentionSpec spec, ITensorSource st, TensorNames names, int layer, int hidden) => spec switch
    {
        AttentionSpec.Gqa g => GqaAttention.Load(g, st, Names<GqaNames>(names, spec), layer, hidden),
        AttentionSpec.Mla m => MlaAttention.Load(m, st, Names<MlaNames>(names, spec), layer, hidden),
        AttentionSpec.SinkGqa g => SinkAttention.Load(g, st, Names<SinkGqaNames>(names, spec), layer, hidden),
        _ => throw new NotSupportedException($"no attention layer implements {spec.GetType().Name}"),
    };

    /// <summary>Visits every weight, as <see cref="ModelWeights.VisitDense"/> does.</summary>
    public abstract void Visit(DenseMatrixVisitor matrix, Action<float[]> vector);

    /// <summary>
    /// s.Out [T, H] = attention over s.Xn [T, H]; RoPE from <paramref name="rope"/>; keys and values appended to the
    /// step's caches (<see cref="IDevice.BeginStep"/>, every token at its position; latent attention takes
    /// <paramref name="cache"/>, or the batch's segments, one sequence per call).
    /// </summary>
    internal abstract void Forward(in LayerStep step, RopeTable rope, KvCache cache);

    static T Names<T>(TensorNames names, AttentionSpec spec) where T : AttentionNames =>
        names.Attention as T ?? throw new InvalidOperationException(
            $"{spec.GetType().Name} attention needs {typeof(T).Name} tensor names, the family gives {names.Attention.GetType().Name}");
}
