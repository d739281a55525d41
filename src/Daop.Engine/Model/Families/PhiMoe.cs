using Daop.Engine.Load.Config;

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
}
