using Daop.Engine.Load.Config;
using Daop.Engine.Load.Gguf;

namespace Daop.Engine.Model.Families;

/// <summary>
/// Granite-MoE (transformers' GraniteMoeForCausalLM): Mixtral's layout with four multipliers — embeddings ×
/// embedding_multiplier, attention scaled by attention_multiplier instead of 1/√D, each sublayer's output ×
/// residual_multiplier before the residual add, logits ÷ logits_scaling — top-k of the router logits weighted by their
/// softmax, and each layer's experts stacked: input_linear [E, 2I, H] (gate rows, then up rows), output_linear [E, H, I].
/// Granite-MoE-Shared (GraniteMoeSharedForCausalLM) adds an ungated shared expert beside them when
/// shared_intermediate_size S > 0: shared_mlp.input_linear [2S, H] (gate rows, then up), output_linear [H, S], its output
/// added to the experts' before the residual multiplier.
/// </summary>
public sealed class GraniteMoe : IModelFamily
{
    /// <inheritdoc />
    public IReadOnlyList<string> ModelTypes => ["granitemoe", "granitemoeshared"];

    /// <inheritdoc />
    public ModelConfig ReadConfig(ConfigReader c) => WithMultipliers(ReadLayers(c), f => Multiplier(c, f));

    static ModelConfig ReadLayers(ConfigReader c)
    {
        var common = CommonConfig.Read(c,
            numExperts: c.PositiveInt("num_local_experts"),
            topK: c.PositiveInt("num_experts_per_tok"),
            expertInter: c.PositiveInt("intermediate_size"),
            router: new RouterSpec.TopKSoftmax());
        bool bias = c.BoolOr("attention_bias", false);
        int shared = c.IntOr("shared_intermediate_size", 0);
        if (shared < 0) throw c.Error("shared_intermediate_size", $"must be 0 (no shared expert) or positive, found {shared}");
        return common.Build(common.Attention with { QkvBias = bias, OBias = bias }, _ => WithShared(common.Moe, shared));
    }

    // The shared expert of Granite-MoE-Shared (width S; 0: none, as plain Granite-MoE).
    static FfnSpec.Moe WithShared(FfnSpec.Moe moe, int shared) => shared > 0 ? moe with { Shared = new SharedExpertSpec.Ungated(shared) } : moe;

    // The four multipliers, by their config.json names, on a config read as Mixtral's.
    static ModelConfig WithMultipliers(ModelConfig m, Func<string, float> multiplier) => m with
    {
        Layers = m.Layers.Select(l => l with { Attention = ((AttentionSpec.Gqa)l.Attention) with { SoftmaxScale = multiplier("attention_multiplier") } }).ToArray(),
        LmHead = m.LmHead with { Scale = 1 / multiplier("logits_scaling") },
        EmbeddingScale = multiplier("embedding_multiplier"),
        ResidualScale = multiplier("residual_multiplier"),
    };

    // A multiplier (default 1): finite and positive, since each scales every activation it touches.
    static float Multiplier(ConfigReader c, string field)
    {
        double v = c.DoubleOr(field, 1);
        return v > 0 && v <= 1e6 ? (float)v : throw c.Error(field, $"must be in (0, 1e6], found {v}");
    }

    // llama.cpp's granitemoe: Mixtral's tensors (its converter splits input_linear into ffn_gate_exps and ffn_up_exps,
    // and reorders q/k rows as for llama) and the multipliers as attention.scale, embedding_scale, residual_scale and
    // logit_scale (absent: 1). Granite-MoE-Shared files are granitemoe too, with the shared expert split likewise into
    // ffn_{gate,up,down}_shexp and its width as expert_shared_feed_forward_length.
    static ModelConfig ReadGguf(GgufConfigReader g)
    {
        var common = GgufCommon.Read(g, "granitemoe", g.PositiveInt("expert_count"), g.PositiveInt("expert_used_count"),
            GgufCommon.Width(g, "feed_forward_length"), new RouterSpec.TopKSoftmax());
        var attention = common.Attention with { QkvBias = g.HasTensor("blk.0.attn_q.bias"), OBias = g.HasTensor("blk.0.attn_output.bias") };
        var keys = new Dictionary<string, string>
        {
            ["attention_multiplier"] = "attention.scale", ["logits_scaling"] = "logit_scale",
            ["embedding_multiplier"] = "embedding_scale", ["residual_multiplier"] = "residual_scale",
        };
        int shared = g.HasTensor("blk.0.ffn_gate_shexp.weight") ? g.PositiveInt("expert_shared_feed_forward_length") : 0;
        return WithMultipliers(common.Build(attention, _ => WithShared(common.Moe, shared)), f =>
        {
            double v = g.NumberOr(keys[f], 1);
            return v > 0 && v <= 1e6 ? (float)v : throw g.Error(keys[f], $"must be in (0, 1e6], found {v}");
        });
    }

    /// <inheritdoc />
    public TensorNames Names { get; } = new()
    {
        Router = "model.layers.{l}.block_sparse_moe.router.layer.weight",
        ExpertGateUp = "model.layers.{l}.block_sparse_moe.input_linear.weight[{e}]",
        ExpertDown = "model.layers.{l}.block_sparse_moe.output_linear.weight[{e}]",
        SharedGateUp = "model.layers.{l}.shared_mlp.input_linear.weight",
        SharedDown = "model.layers.{l}.shared_mlp.output_linear.weight",
    };

    /// <inheritdoc />
    public GgufSupport Gguf { get; } = new("granitemoe", ReadGguf, GgufNames.Moe) { QkRowsPermuted = true };
}
