using Daop.Engine.Load.Config;
using Daop.Engine.Load.Gguf;

namespace Daop.Engine.Model.Families;

/// <summary>
/// DeepSeek-V3 (and R1): multi-head latent attention with a q LoRA, sigmoid routing chosen with a per-layer
/// e_score_correction_bias within the best groups (scored by their top-2 sums), weights normalised (norm_topk_prob) and
/// scaled by routed_scaling_factor, an ungated shared expert, first layers dense, YaRN with mscale.
/// </summary>
public sealed class DeepseekV3 : IModelFamily
{
    /// <inheritdoc />
    public IReadOnlyList<string> ModelTypes => ["deepseek_v3"];

    /// <inheritdoc />
    public ModelConfig ReadConfig(ConfigReader c)
    {
        // Defaults as transformers' DeepseekV3Config: 8 groups, 4 kept, first 3 layers dense, normalised weights.
        var (groups, top) = DeepseekCommon.Groups(c, 8, 4);
        int experts = c.PositiveInt("n_routed_experts");
        if (experts / groups < 2)
            throw c.Error("n_group", $"must leave at least 2 experts per group (a group scores its top 2), found {groups} groups of {experts}");
        var router = new RouterSpec.GroupLimitedSigmoid(groups, top, DeepseekCommon.ScalingFactor(c), c.BoolOr("norm_topk_prob", true));
        return DeepseekCommon.Read(c, router, interleaved: c.BoolOr("rope_interleave", true), denseDefault: 3);
    }

    /// <inheritdoc />
    public TensorNames Names { get; } = DeepseekCommon.Names(scoreBias: true);

    /// <inheritdoc />
    /// <remarks>llama.cpp's deepseek2 with sigmoid gating (expert_gating_func 2) and the exp_probs_b selection bias.</remarks>
    public GgufSupport Gguf { get; } = new("deepseek2", ReadGguf, DeepseekCommon.GgufNames(scoreBias: true))
    {
        Accepts = g => DeepseekCommon.GatingFunc(g) == DeepseekCommon.GatingSigmoid,
    };

    static ModelConfig ReadGguf(GgufConfigReader g)
    {
        var config = DeepseekCommon.ReadGguf(g, "deepseek_v3", (groups, top, scale, norm) => new RouterSpec.GroupLimitedSigmoid(groups, top, scale, norm));
        int experts = config.NumExperts, groups = g.IntOr("expert_group_count", 1);
        if (experts / groups < 2)
            throw g.Error("expert_group_count", $"must leave at least 2 experts per group (a group scores its top 2), found {groups} groups of {experts}");
        return config;
    }
}
