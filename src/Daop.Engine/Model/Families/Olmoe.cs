using Daop.Engine.Load.Config;

namespace Daop.Engine.Model.Families;

/// <summary>OLMoE: q/k RMSNorm over the whole projection (before the head split), optional clip_qkv, no renormalisation by default.</summary>
public sealed class Olmoe : IModelFamily
{
    /// <inheritdoc />
    public IReadOnlyList<string> ModelTypes => ["olmoe"];

    /// <inheritdoc />
    public ModelConfig ReadConfig(ConfigReader c)
    {
        var cfg = CommonConfig.Read(c,
            numExperts: c.PositiveInt("num_experts"),
            topK: c.PositiveInt("num_experts_per_tok"),
            expertInter: c.PositiveInt("intermediate_size"),
            router: new RouterSpec.SoftmaxTopK(c.BoolOr("norm_topk_prob", false)),
            qkNorm: QkNormKind.Full);
        double clip = c.DoubleOr("clip_qkv", 0);
        return cfg with
        {
            QkvBias = c.BoolOr("attention_bias", false),
            OBias = c.BoolOr("attention_bias", false),
            ClipQkv = clip > 0 ? (float)clip : null,
        };
    }

    /// <inheritdoc />
    public TensorNames Names { get; } = new()
    {
        Router = "model.layers.{l}.mlp.gate.weight",
        ExpertGate = "model.layers.{l}.mlp.experts.{e}.gate_proj.weight",
        ExpertUp = "model.layers.{l}.mlp.experts.{e}.up_proj.weight",
        ExpertDown = "model.layers.{l}.mlp.experts.{e}.down_proj.weight",
    };
}
