namespace Daop.Engine.Load.Config;

/// <summary>
/// The gating of a gated MLP between its gate/up and down projections. A closed set of sealed records, so a variant
/// with parameters (GPT-OSS's clamp) is a record of its own; a device or scheduler without kernels for one fails at load.
/// </summary>
public abstract record Activation
{
    /// <summary>SwiGLU: down(silu(x·Wgᵀ) ⊙ x·Wuᵀ). What every device kernel computes.</summary>
    public static Activation Silu { get; } = new SwiGlu();

    /// <summary>silu (swish) gating: <see cref="Silu"/>.</summary>
    public sealed record SwiGlu : Activation;

    /// <summary>
    /// GPT-OSS's clamped SwiGLU over biased projections: g = min(x·Wgᵀ + bg, limit), u = clamp(x·Wuᵀ + bu, ±limit),
    /// out = ((u + 1) · g·σ(α·g))·Wdᵀ + bd. The experts' three projections carry biases (<c>ExpertWeights.Bias</c>).
    /// </summary>
    /// <param name="Alpha">α of the sigmoid (1.702).</param>
    /// <param name="Limit">The clamp (swiglu_limit, 7.0).</param>
    public sealed record ClampedSwiGlu(float Alpha, float Limit) : Activation;
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
