namespace Daop.Engine.Load.Config;

/// <summary>How router logits become (expert, weight) pairs. Chosen by the family file, applied by the one MoE block.</summary>
public abstract record RouterSpec
{
    /// <summary>Whether routing reads a per-layer, per-expert selection bias [E] beside the logits (the MoE block loads it).</summary>
    public virtual bool HasScoreBias => false;

    /// <summary>
    /// Whether the device routes this spec (the GPU's softmax top-k routing kernel), and with its weights renormalised
    /// over the chosen K or not; null: routing takes the host.
    /// </summary>
    public virtual bool? DeviceRenormalize => null;

    /// <summary>softmax over all E logits, top-k, optionally renormalised to sum 1 (Mixtral, Qwen, OLMoE).</summary>
    public sealed record SoftmaxTopK(bool Renormalize) : RouterSpec
    {
        /// <inheritdoc />
        public override bool? DeviceRenormalize => Renormalize;
    }

    /// <summary>
    /// No router: one expert that every token takes with weight 1. A dense model's FFN as its layer's only expert, so the
    /// offloading policies place whole FFNs as they place experts.
    /// </summary>
    public sealed record Single : RouterSpec;

    /// <summary>
    /// The K largest logits (lower id wins ties), weighted by softmax over those K only (Granite-MoE, GPT-OSS). The same
    /// experts and weights as <see cref="SoftmaxTopK"/> renormalised, computed without the other E − K exponentials.
    /// </summary>
    public sealed record TopKSoftmax : RouterSpec
    {
        /// <inheritdoc />
        public override bool? DeviceRenormalize => true; // softmax over the K chosen = softmax over all, renormalised
    }

    /// <summary>
    /// Llama-4's router: the K largest logits, each weight sigmoid(logit), and the weight scales the expert's INPUT
    /// (Expert(w·x), not w·Expert(x)); the MoE block supports K = 1, where that is one scale per token.
    /// </summary>
    public sealed record SigmoidScalesInput : RouterSpec;

    /// <summary>
    /// PhiMoE's sparsemixer at inference: for each of k picks, the arg-max of the remaining logits, weighted
    /// by its softmax over the logits within a relative threshold 2·jitter of that max.
    /// </summary>
    public sealed record SparseMixer(float JitterEps) : RouterSpec;

    /// <summary>
    /// DeepSeek-V2's router: p = softmax(logits) over E experts in <see cref="Groups"/> equal groups; keep the
    /// <see cref="TopGroups"/> groups of largest max p (group_limited_greedy; one group is plain greedy), pick the K largest
    /// p among their experts; weights p·<see cref="Scale"/> (routed_scaling_factor), divided by their sum first when
    /// <see cref="Renormalize"/>.
    /// </summary>
    public sealed record GroupLimitedSoftmax(int Groups, int TopGroups, float Scale, bool Renormalize) : RouterSpec;

    /// <summary>
    /// DeepSeek-V3's router: s = sigmoid(logits); choice c = s + b with a per-layer bias b [E] (e_score_correction_bias);
    /// over <see cref="Groups"/> equal groups, a group's score is the sum of its two largest c; keep the
    /// <see cref="TopGroups"/> best groups, pick the K largest c among their experts; weights are the chosen s (the bias
    /// only chooses), divided by their sum (+1e-20) when <see cref="Renormalize"/>, times <see cref="Scale"/>.
    /// </summary>
    public sealed record GroupLimitedSigmoid(int Groups, int TopGroups, float Scale, bool Renormalize) : RouterSpec
    {
        /// <inheritdoc />
        public override bool HasScoreBias => true;
    }
}
