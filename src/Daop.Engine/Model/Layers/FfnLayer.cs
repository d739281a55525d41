using Daop.Engine.Load;
using Daop.Engine.Load.Config;
using Daop.Engine.Model.Families;
using Daop.Engine.Schedule;

namespace Daop.Engine.Model.Layers;

/// <summary>
/// One decoder layer's feed-forward block with its weights: out [T, H] = FFN(xn [T, H]). One subclass per
/// <see cref="FfnSpec"/> record (<see cref="MoeBlock"/>, <see cref="DenseMlp"/>), made by <see cref="Load"/>.
/// </summary>
public abstract class FfnLayer
{
    /// <summary>The spec the layer was made from.</summary>
    public abstract FfnSpec Spec { get; }

    /// <summary>Names the step after it in <see cref="NonFiniteException"/> ("moe", "mlp").</summary>
    public abstract string Stage { get; }

    /// <summary>Maps layer <paramref name="layer"/>'s FFN weights for <paramref name="spec"/>: the one place that picks the implementation.</summary>
    public static FfnLayer Load(FfnSpec spec, ITensorSource st, TensorNames names, int layer, int hidden)
    {
        // The device's Ffn op (dense MLPs, shared experts) is SwiGLU; routed experts of another activation run on the
        // expert schedulers, each of which checks at construction that it has kernels for it.
        if (spec.Act != Activation.Silu && (spec is not FfnSpec.Moe { Shared: null }))
            throw new NotSupportedException($"{spec.Act} MLPs are supported for routed experts only, not dense MLPs or shared experts");
        return spec switch
        {
            FfnSpec.Moe m => MoeBlock.Load(m, st, names, layer, hidden),
            FfnSpec.Dense d => DenseMlp.Load(d, st, names, layer, hidden),
            _ => throw new NotSupportedException($"no FFN layer implements {spec.GetType().Name}"),
        };
    }

    /// <summary>Visits every weight but routed experts, as <see cref="ModelWeights.VisitDense"/> does.</summary>
    public abstract void Visit(DenseMatrixVisitor matrix, Action<float[]> vector);

    /// <summary>s.Out [T, H] = FFN(s.Xn [T, H]); routed experts run on <paramref name="experts"/>, routing reported to <paramref name="observer"/>.</summary>
    internal abstract void Forward(in LayerStep step, IExpertScheduler experts, IRoutingObserver? observer);
}

/// <summary>A dense SwiGLU MLP (<see cref="FfnSpec.Dense"/>): out = down(silu(xn·Wgᵀ) ⊙ xn·Wuᵀ).</summary>
public sealed class DenseMlp(FfnSpec.Dense spec) : FfnLayer
{
    /// <inheritdoc />
    public override FfnSpec.Dense Spec { get; } = spec;
    /// <inheritdoc />
    public override string Stage => "mlp";
    /// <summary>gate/up [I, H], down [H, I].</summary>
    public required ExpertWeights Mlp { get; init; }

    internal static DenseMlp Load(FfnSpec.Dense spec, ITensorSource st, TensorNames n, int layer, int hidden)
    {
        string F(string pattern) => TensorNames.Format(pattern, layer);
        return new DenseMlp(spec) { Mlp = ExpertWeights.Load(st, F(n.DenseGate), F(n.DenseUp), F(n.DenseDown), spec.Intermediate, hidden) };
    }

    /// <inheritdoc />
    public override void Visit(DenseMatrixVisitor matrix, Action<float[]> vector) => Mlp.Visit(matrix);

    internal override void Forward(in LayerStep step, IExpertScheduler experts, IRoutingObserver? observer) =>
        step.Device.Ffn(Mlp, step.S.Xn, step.S.Out, step.Tokens);              // out [T, H]
}
