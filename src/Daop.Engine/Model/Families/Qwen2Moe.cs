using Daop.Engine.Load.Config;
using Daop.Engine.Load.Gguf;

namespace Daop.Engine.Model.Families;

/// <summary>
/// Qwen2-MoE: q/k/v biases, a shared expert scaled by sigmoid(shared_expert_gate · x), optional dense
/// layers (mlp_only_layers, decoder_sparse_step), renormalisation per norm_topk_prob.
/// </summary>
public sealed class Qwen2Moe : IModelFamily
{
    /// <inheritdoc />
    public IReadOnlyList<string> ModelTypes => ["qwen2_moe"];

    /// <inheritdoc />
    public ModelConfig ReadConfig(ConfigReader c)
    {
        var common = CommonConfig.Read(c,
            numExperts: c.PositiveInt("num_experts"),
            topK: c.PositiveInt("num_experts_per_tok"),
            expertInter: c.PositiveInt("moe_intermediate_size"),
            router: new RouterSpec.SoftmaxTopK(c.BoolOr("norm_topk_prob", false)));
        var attention = common.Attention with { QkvBias = c.BoolOr("qkv_bias", true) };
        int shared = CommonConfig.WidthOr0(c, "shared_expert_intermediate_size");
        var moe = common.Moe with { Shared = shared > 0 ? new SharedExpertSpec.SigmoidGated(shared) : null };
        var dense = common.Dense(CommonConfig.WidthOr0(c, "intermediate_size"));
        return common.Build(attention, QwenLayers.Ffn(c, common.Model.NumLayers, moe, dense));
    }

    /// <inheritdoc />
    public TensorNames Names { get; } = new()
    {
        Router = "model.layers.{l}.mlp.gate.weight",
        ExpertGate = "model.layers.{l}.mlp.experts.{e}.gate_proj.weight",
        ExpertUp = "model.layers.{l}.mlp.experts.{e}.up_proj.weight",
        ExpertDown = "model.layers.{l}.mlp.experts.{e}.down_proj.weight",
        SharedGate = "model.layers.{l}.mlp.shared_expert.gate_proj.weight",
        SharedUp = "model.layers.{l}.mlp.shared_expert.up_proj.weight",
        SharedDown = "model.layers.{l}.mlp.shared_expert.down_proj.weight",
        SharedExpertGate = "model.layers.{l}.mlp.shared_expert_gate.weight",
    };

    /// <inheritdoc />
    public GgufSupport Gguf { get; } = new("qwen2moe", ReadGguf, GgufNames.Moe);

    // As llama.cpp reads qwen2moe: an expert's width from expert_feed_forward_length (else feed_forward_length / top-k), the
    // shared expert's from expert_shared_feed_forward_length (else feed_forward_length); no key says norm_topk_prob, and
    // llama.cpp never renormalises; no dense layers.
    static ModelConfig ReadGguf(GgufConfigReader g)
    {
        int topK = g.PositiveInt("expert_used_count");
        int inter = g.IntOrNull("expert_feed_forward_length") ?? GgufCommon.Width(g, "feed_forward_length") / topK;
        var common = GgufCommon.Read(g, "qwen2_moe", g.PositiveInt("expert_count"), topK, inter, new RouterSpec.SoftmaxTopK(false));
        int shared = !g.HasTensor("blk.0.ffn_gate_shexp.weight") ? 0
            : g.IntOrNull("expert_shared_feed_forward_length") ?? GgufCommon.Width(g, "feed_forward_length");
        var moe = common.Moe with { Shared = shared > 0 ? new SharedExpertSpec.SigmoidGated(shared) : null };
        return common.Build(common.Attention with { QkvBias = true }, _ => moe);
    }
}

/// <summary>Qwen's rule for which layers are sparse: not in mlp_only_layers and (l+1) % decoder_sparse_step == 0.</summary>
static class QwenLayers
{
    /// <summary>Layer l's FFN: <paramref name="moe"/> where the rule says sparse, else <paramref name="dense"/>.</summary>
    public static Func<int, FfnSpec> Ffn(ConfigReader c, int layers, FfnSpec.Moe moe, FfnSpec.Dense dense)
    {
        int step = c.IntOr("decoder_sparse_step", 1);
        if (step <= 0) throw c.Error("decoder_sparse_step", $"must be positive, found {step}");
        var denseLayers = c.IntList("mlp_only_layers").ToHashSet();
        bool Sparse(int l) => !denseLayers.Contains(l) && (l + 1) % step == 0;
        if (!Enumerable.Range(0, layers).All(Sparse) && c.IntOr("intermediate_size", 0) <= 0)
            throw c.Error("intermediate_size", "is needed for the dense layers named by mlp_only_layers/decoder_sparse_step");
        return l => Sparse(l) ? moe : dense;
    }
}
