using Daop.Engine.Load.Config;

namespace Daop.Engine.Model.Families;

/// <summary>
/// Granite-MoE (transformers' GraniteMoeForCausalLM): Mixtral's layout with four multipliers — embeddings ×
/// embedding_multiplier, attention scaled by attention_multiplier instead of 1/√D, each sublayer's output ×
/// residual_multiplier before the residual add, logits ÷ logits_scaling — top-k of the router logits weighted by their
/// softmax, and each layer's experts stacked: input_linear [E, 2I, H] (gate rows, then up rows), output_linear [E, H, I].
/// </summary>
public sealed class GraniteMoe : IModelFamily
{
    /// <inheritdoc />
    public IReadOnlyList<string> ModelTypes => ["granitemoe"];

    /// <inheritdoc />
    public ModelConfig ReadConfig(ConfigReader c)
    {
        var common = CommonConfig.Read(c,
            numExperts: c.PositiveInt("num_local_experts"),
            topK: c.PositiveInt("num_experts_per_tok"),
            expertInter: c.PositiveInt("intermediate_size"),
            router: new RouterSpec.TopKSoftmax());
        bool bias = c.BoolOr("attention_bias", false);
        var attention = common.Attention with { QkvBias = bias, OBias = bias, SoftmaxScale = Multiplier(c, "attention_multiplier") };
        return common.Build(attention, _ => common.Moe, lmHead: common.Model.LmHead with { Scale = 1 / Multiplier(c, "logits_scaling") }) with
        {
            EmbeddingScale = Multiplier(c, "embedding_multiplier"),
            ResidualScale = Multiplier(c, "residual_multiplier"),
        };
    }

    // A multiplier (default 1): finite and positive, since each scales every activation it touches.
    static float Multiplier(ConfigReader c, string field)
    {
        double v = c.DoubleOr(field, 1);
        return v > 0 && v <= 1e6 ? (float)v : throw c.Error(field, $"must be in (0, 1e6], found {v}");
    }

    /// <inheritdoc />
    public TensorNames Names { get; } = new()
    {
        Router = "model.layers.{l}.block_sparse_moe.router.layer.weight",
        ExpertGateUp = "model.layers.{l}.block_sparse_moe.input_linear.weight[{e}]",
        ExpertDown = "model.layers.{l}.block_sparse_moe.output_linear.weight[{e}]",
    };

    /// <inheritdoc />
    public GgufSupport? Gguf => null;
}
