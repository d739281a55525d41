using Daop.Engine.Load.Config;
using Daop.Engine.Load.Gguf;

namespace Daop.Engine.Model.Families;

/// <summary>PhiMoE: LayerNorm with bias everywhere, sparsemixer routing, optional attention and lm_head biases.</summary>
public sealed class PhiMoe : IModelFamily
{
    /// <inheritdoc />
    public IReadOnlyList<string> ModelTypes => ["phimoe"];

    /// <inheritdoc />
    public ModelConfig ReadConfig(ConfigReader c)
    {
        int topK = c.PositiveInt("num_experts_per_tok");
        var common = CommonConfig.Read(c,
            numExperts: c.PositiveInt("num_local_experts"),
            topK: topK,
            expertInter: c.PositiveInt("intermediate_size"),
            router: new RouterSpec.SparseMixer((float)c.DoubleOr("router_jitter_noise", 0.01)));
        bool bias = c.BoolOr("attention_bias", false);
        var attention = common.Attention with
        {
            QkvBias = bias,
            OBias = bias,
            // PhiMoE's rotary embedding recomputes inv_freq in fp32 at every forward (it supports longrope
            // switching), so no checkpoint-dtype rounding applies.
            Rope = common.Attention.Rope with { InvFreqDType = null },
        };
        return common.Build(attention, _ => common.Moe,
            norm: common.Model.Norm with { Kind = NormKind.LayerNorm },
            lmHead: common.Model.LmHead with { Bias = c.BoolOr("lm_head_bias", false) });
    }

    /// <inheritdoc />
    public TensorNames Names { get; } = new()
    {
        Router = "model.layers.{l}.block_sparse_moe.gate.weight",
        ExpertGate = "model.layers.{l}.block_sparse_moe.experts.{e}.w1.weight",
        ExpertUp = "model.layers.{l}.block_sparse_moe.experts.{e}.w3.weight",
        ExpertDown = "model.layers.{l}.block_sparse_moe.experts.{e}.w2.weight",
    };

    /// <inheritdoc />
    public GgufSupport Gguf { get; } = new("phimoe", ReadGguf, GgufNames.Moe);

    // The model as transformers computes it (LayerNorm with biases, sparsemixer routing), which llama.cpp's phimoe graph
    // approximates with RMSNorm plus bias and softmax top-k. GGUF has no router_jitter_noise: Phi-3.5-MoE's 0.01 is used.
    // Biases and the LM head bias are read where the file has them; longrope comes from the rope_factors tensors.
    static ModelConfig ReadGguf(GgufConfigReader g)
    {
        var common = GgufCommon.Read(g, "phimoe", g.PositiveInt("expert_count"), g.PositiveInt("expert_used_count"),
            GgufCommon.Width(g, "feed_forward_length"), new RouterSpec.SparseMixer(0.01f));
        var attention = common.Attention with { QkvBias = g.HasTensor("blk.0.attn_q.bias"), OBias = g.HasTensor("blk.0.attn_output.bias") };
        return common.Build(attention, _ => common.Moe,
            norm: common.Model.Norm with { Kind = NormKind.LayerNorm },
            lmHead: common.Model.LmHead with { Bias = g.HasTensor("output.bias") });
    }
}
