using Daop.Engine.Load.Config;
using Daop.Engine.Load.Gguf;

namespace Daop.Engine.Model.Families;

/// <summary>
/// DeepSeek-V2 and V2-Lite: multi-head latent attention (a q LoRA or none), softmax routing by greedy or
/// group_limited_greedy top-k with routed_scaling_factor, ungated shared experts, first layers dense, YaRN with mscale.
/// </summary>
public sealed class DeepseekV2 : IModelFamily
{
    /// <inheritdoc />
    public IReadOnlyList<string> ModelTypes => ["deepseek_v2"];

    /// <inheritdoc />
    public ModelConfig ReadConfig(ConfigReader c)
    {
        string method = c.StringOrNull("topk_method") ?? "greedy";
        var (groups, top) = method switch
        {
            "greedy" => (1, 1),
            "group_limited_greedy" => DeepseekCommon.Groups(c, null, null),
            _ => throw c.Error("topk_method", $"'{method}' is not supported (greedy, group_limited_greedy)"),
        };
        // transformers 5.17's DeepseekV2TopkRouter never renormalises (norm_topk_prob is false in the released configs).
        var router = new RouterSpec.GroupLimitedSoftmax(groups, top, DeepseekCommon.ScalingFactor(c), Renormalize: false);
        return DeepseekCommon.Read(c, router, interleaved: true, denseDefault: 0);
    }

    /// <inheritdoc />
    public TensorNames Names { get; } = DeepseekCommon.Names(scoreBias: false);

    /// <inheritdoc />
    /// <remarks>llama.cpp's deepseek2 with softmax gating (expert_gating_func 1, or absent).</remarks>
    public GgufSupport Gguf { get; } = new("deepseek2", g => DeepseekCommon.ReadGguf(g, "deepseek_v2",
        (groups, top, scale, norm) => new RouterSpec.GroupLimitedSoftmax(groups, top, scale, norm)), DeepseekCommon.GgufNames(scoreBias: false))
    {
        Accepts = g => DeepseekCommon.GatingFunc(g) == DeepseekCommon.GatingSoftmax,
    };
}
