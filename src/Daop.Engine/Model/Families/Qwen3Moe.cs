using Daop.Engine.Load.Config;
using Daop.Engine.Load.Gguf;

namespace Daop.Engine.Model.Families;

/// <summary>Qwen3-MoE: per-head q/k RMSNorm, explicit head_dim, no q/k/v bias, renormalisation per norm_topk_prob, optional dense layers.</summary>
public sealed class Qwen3Moe : IModelFamily
{
    /// <inheritdoc />
    public IReadOnlyList<string> ModelTypes => ["qwen3_moe"];

    /// <inheritdoc />
    public ModelConfig ReadConfig(ConfigReader c)
    {
        var common = CommonConfig.Read(c,
            numExperts: c.Has("num_experts") ? c.PositiveInt("num_experts") : c.PositiveInt("num_local_experts"),
            topK: c.PositiveInt("num_experts_per_tok"),
            expertInter: c.PositiveInt("moe_intermediate_size"),
            router: new RouterSpec.SoftmaxTopK(c.BoolOr("norm_topk_prob", true)));
        bool bias = c.BoolOr("attention_bias", false);
        var attention = common.Attention with
        {
            QkNorm = new QkNormSpec(QkNormScope.PerHead, common.Model.Norm),
            QkvBias = bias,
            OBias = bias,
        };
        var dense = common.Dense(CommonConfig.WidthOr0(c, "intermediate_size"));
        return common.Build(attention, QwenLayers.Ffn(c, common.Model.NumLayers, common.Moe, dense));
    }

    /// <inheritdoc />
    public TensorNames Names { get; } = new()
    {
        Router = "model.layers.{l}.mlp.gate.weight",
        ExpertGate = "model.layers.{l}.mlp.experts.{e}.gate_proj.weight",
        ExpertUp = "model.layers.{l}.mlp.experts.{e}.up_proj.weight",
        ExpertDown = "model.layers.{l}.mlp.experts.{e}.down_proj.weight",
    };

    /// <inheritdoc />
    public GgufSupport Gguf { get; } = new("qwen3moe", ReadGguf, GgufNames.Moe);

    // llama.cpp's qwen3moe (added after its February 2025 snapshot): per-head q/k norms, renormalised top-k, an expert's
    // width from expert_feed_forward_length (else feed_forward_length / top-k), no shared expert, no dense layers.
    static ModelConfig ReadGguf(GgufConfigReader g)
    {
        int topK = g.PositiveInt("expert_used_count");
        int inter = g.IntOrNull("expert_feed_forward_length") ?? GgufCommon.Width(g, "feed_forward_length") / topK;
        var common = GgufCommon.Read(g, "qwen3_moe", g.PositiveInt("expert_count"), topK, inter, new RouterSpec.SoftmaxTopK(true));
        bool bias = g.HasTensor("blk.0.attn_q.bias");
        var attention = common.Attention with
        {
            QkNorm = new QkNormSpec(QkNormScope.PerHead, common.Model.Norm),
            QkvBias = bias,
            OBias = g.HasTensor("blk.0.attn_output.bias"),
        };
        return common.Build(attention, _ => common.Moe);
    }
}
