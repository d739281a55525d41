namespace Daop.Engine.Load.Config;

/// <summary>How router logits become (expert, weight) pairs. Chosen by the family file, applied by the one MoE block.</summary>
public abstract record RouterSpec
{
    /// <summary>softmax over all E logits, top-k, optionally renormalised to sum 1 (Mixtral, Qwen, OLMoE).</summary>
    public sealed record SoftmaxTopK(bool Renormalize) : RouterSpec;

    /// <summary>
    /// No router: one expert that every token takes with weight 1. A dense model's FFN as its layer's only expert, so the
    /// offloading policies place whole FFNs as they place experts.
    /// </summary>
    public sealed record Single : RouterSpec;

    /// <summary>
    /// The K largest logits (lower id wins ties), weighted by softmax over those K only (Granite-MoE, GPT-OSS). The same
    /// experts and weights as <see cref="SoftmaxTopK"/> renormalised, computed without the other E − K exponentials.
    /// </summary>
    public sealed record TopKSoftmax : RouterSpec;

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
}
