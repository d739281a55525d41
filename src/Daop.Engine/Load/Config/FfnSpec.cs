namespace Daop.Engine.Load.Config;

/// <summary>The gate's nonlinearity in a gated MLP: down(act(x·Wgᵀ) ⊙ x·Wuᵀ).</summary>
public enum Activation
{
    /// <summary>silu (swish): SwiGLU. What every device kernel computes today.</summary>
    Silu,
}

/// <summary>
/// One decoder layer's feed-forward block, picked per layer by the family file (so Qwen's mlp_only_layers or
/// DeepSeek's first-k dense layers are a list of specs); <see cref="Model.Layers.FfnLayer.Load"/> makes the layer for
/// its record type. Shapes: hidden H, experts E, top-k K, intermediate I.
/// </summary>
public abstract record FfnSpec
{
    /// <summary>The activation of the gated MLP(s).</summary>
    public Activation Act { get; init; } = Activation.Silu;

    /// <summary>A dense gated MLP: gate/up [I, H], down [H, I].</summary>
    public sealed record Dense(int Intermediate) : FfnSpec;

    /// <summary>
    /// A MoE block: router logits xn·Wrᵀ [E] routed per <see cref="Router"/> to K of E experts of width
    /// <see cref="ExpertIntermediate"/>, their outputs summed with the routing weights, plus <see cref="Shared"/> if set.
    /// </summary>
    public sealed record Moe(int Experts, int TopK, int ExpertIntermediate, RouterSpec Router) : FfnSpec
    {
        /// <summary>An always-on expert beside the routed ones, or null for none.</summary>
        public SharedExpertSpec? Shared { get; init; }
    }
}

/// <summary>A shared expert: a gated MLP every token runs, added to the routed experts' output.</summary>
public abstract record SharedExpertSpec(int Intermediate)
{
    /// <summary>Scaled by sigmoid(xn·g) with a [1, H] gate (Qwen2-MoE's shared_expert_gate).</summary>
    public sealed record SigmoidGated(int Intermediate) : SharedExpertSpec(Intermediate);

    /// <summary>Added as is (DeepSeek's shared_experts).</summary>
    public sealed record Ungated(int Intermediate) : SharedExpertSpec(Intermediate);
}
