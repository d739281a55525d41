using Daop.Engine.Load.Config;
using Daop.Engine.Load.Gguf;

namespace Daop.Engine.Model.Families;

/// <summary>OLMoE: q/k RMSNorm over the whole projection (before the head split), optional clip_qkv, no renormalisation by default.</summary>
public sealed class Olmoe : IModelFamily
{
    /// <inheritdoc />
    public IReadOnlyList<string> ModelTypes => ["olmoe"];

    /// <inheritdoc />
    public ModelConfig ReadConfig(ConfigReader c)
    {
        var common = CommonConfig.Read(c,
            numExperts: c.PositiveInt("num_experts"),
            topK: c.PositiveInt("num_experts_per_tok"),
            expertInter: c.PositiveInt("intermediate_size"),
            router: new RouterSpec.SoftmaxTopK(c.BoolOr("norm_topk_prob", false)));
        double clip = c.DoubleOr("clip_qkv", 0);
        bool bias = c.BoolOr("attention_bias", false);
        var attention = common.Attention with
        {
            QkNorm = new QkNormSpec(QkNormScope.Whole, common.Model.Norm),
            QkvBias = bias,
            OBias = bias,
            ClipQkv = clip > 0 ? (float)clip : null,
        };
        return common.Build(attention, _ => common.Moe);
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
    public GgufSupport Gguf { get; } = new("olmoe", ReadGguf, GgufNames.Moe);

    // llama.cpp's olmoe: q/k norms over the whole projection, no renormalisation, no clip_qkv (GGUF has no key for it).
    static ModelConfig ReadGguf(GgufConfigReader g)
    {
        var common = GgufCommon.Read(g, "olmoe", g.PositiveInt("expert_count"), g.PositiveInt("expert_used_count"),
            GgufCommon.Width(g, "feed_forward_length"), new RouterSpec.SoftmaxTopK(false));
        var attention = common.Attention with { QkNorm = new QkNormSpec(QkNormScope.Whole, common.Model.Norm) };
        return common.Build(attention, _ => common.Moe);
    }
}
