using Daop.Engine.Load.Config;
using Daop.Engine.Load.Gguf;

namespace Daop.Engine.Model.Families;

/// <summary>
/// Dense Llama and Mistral (transformers' LlamaForCausalLM, MistralForCausalLM): GQA and a SwiGLU MLP per layer. Each
/// layer's MLP is that layer's one expert (<see cref="RouterSpec.Single"/>: no router, weight 1), so every offloading
/// policy places whole FFNs as it places experts. attention_bias puts biases on q, k, v and o; Mistral's sliding_window
/// (or layer_types) limits attention. llama.cpp files both as <c>llama</c> without experts.
/// </summary>
public sealed class DenseLlama : IModelFamily
{
    /// <inheritdoc />
    public IReadOnlyList<string> ModelTypes => ["llama", "mistral"];

    /// <inheritdoc />
    public ModelConfig ReadConfig(ConfigReader c) => Dense.ReadConfig(c, qkvBias: c.BoolOr("attention_bias", false), oBias: c.BoolOr("attention_bias", false));

    /// <inheritdoc />
    public TensorNames Names => Dense.Names;

    /// <inheritdoc />
    public GgufSupport Gguf { get; } = new("llama", g => Dense.ReadGguf(g, "llama"), Dense.GgufNames)
    {
        QkRowsPermuted = true,
        Accepts = g => g.IntOr("expert_count", 0) == 0,
    };
}

/// <summary>Dense Qwen2 (Qwen2ForCausalLM): <see cref="DenseLlama"/> with q/k/v biases always and none on o.</summary>
public sealed class Qwen2 : IModelFamily
{
    /// <inheritdoc />
    public IReadOnlyList<string> ModelTypes => ["qwen2"];

    /// <inheritdoc />
    public ModelConfig ReadConfig(ConfigReader c) => Dense.ReadConfig(c, qkvBias: true, oBias: false);

    /// <inheritdoc />
    public TensorNames Names => Dense.Names;

    /// <inheritdoc />
    public GgufSupport Gguf { get; } = new("qwen2", g => Dense.ReadGguf(g, "qwen2"), Dense.GgufNames);
}

/// <summary>What the dense families share: a model whose every FFN is a single routerless expert.</summary>
static class Dense
{
    public static ModelConfig ReadConfig(ConfigReader c, bool qkvBias, bool oBias)
    {
        if (c.BoolOr("mlp_bias", false)) throw c.Error("mlp_bias", "true is not supported (Daop's MLPs have no biases)");
        int tp = c.IntOr("pretraining_tp", 1);
        if (tp != 1) throw c.Error("pretraining_tp", $"must be 1 (slices of split projections are not supported), found {tp}");
        var common = CommonConfig.Read(c, numExperts: 1, topK: 1, expertInter: c.PositiveInt("intermediate_size"), router: new RouterSpec.Single());
        var attention = common.Attention with { QkvBias = qkvBias, OBias = oBias };
        var window = common.LayerWindows(c);
        return common.Build(l => attention with { SlidingWindow = window(l) }, _ => common.Moe);
    }

    // As llama.cpp reads llama and qwen2: the MLP's width from feed_forward_length; biases where the file has them.
    public static ModelConfig ReadGguf(GgufConfigReader g, string modelType)
    {
        var common = GgufCommon.Read(g, modelType, 1, 1, GgufCommon.Width(g, "feed_forward_length"), new RouterSpec.Single());
        var attention = common.Attention with { QkvBias = g.HasTensor("blk.0.attn_q.bias"), OBias = g.HasTensor("blk.0.attn_output.bias") };
        return common.Build(attention, _ => common.Moe);
    }

    public static TensorNames Names { get; } = new()
    {
        Router = null,
        ExpertGate = "model.layers.{l}.mlp.gate_proj.weight",
        ExpertUp = "model.layers.{l}.mlp.up_proj.weight",
        ExpertDown = "model.layers.{l}.mlp.down_proj.weight",
    };

    public static TensorNames GgufNames { get; } = Families.GgufNames.Moe with
    {
        Router = null,
        ExpertGate = "blk.{l}.ffn_gate.weight",
        ExpertUp = "blk.{l}.ffn_up.weight",
        ExpertDown = "blk.{l}.ffn_down.weight",
    };
}
