using Daop.Engine.Load.Config;

namespace Daop.Engine.Model.Families;

/// <summary>
/// Dense Llama, Mistral and Qwen2 (transformers' LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM): GQA and a
/// SwiGLU MLP per layer. Each layer's MLP is that layer's one expert (<see cref="RouterSpec.Single"/>: no router,
/// weight 1), so every offloading policy places whole FFNs as it places experts. Llama's attention_bias puts biases on
/// q, k, v and o; Qwen2 always has q/k/v biases and none on o; Mistral's sliding_window (or layer_types) limits attention.
/// </summary>
public sealed class DenseLlama : IModelFamily
{
    /// <inheritdoc />
    public IReadOnlyList<string> ModelTypes => ["llama", "mistral", "qwen2"];

    /// <inheritdoc />
    public ModelConfig ReadConfig(ConfigReader c)
    {
        if (c.BoolOr("mlp_bias", false)) throw c.Error("mlp_bias", "true is not supported (Daop's MLPs have no biases)");
        int tp = c.IntOr("pretraining_tp", 1);
        if (tp != 1) throw c.Error("pretraining_tp", $"must be 1 (slices of split projections are not supported), found {tp}");
        var common = CommonConfig.Read(c, numExperts: 1, topK: 1, expertInter: c.PositiveInt("intermediate_size"), router: new RouterSpec.Single());
        bool qwen2 = common.Model.ModelType == "qwen2", bias = c.BoolOr("attention_bias", false);
        var attention = common.Attention with { QkvBias = qwen2 || bias, OBias = !qwen2 && bias };
        var window = common.LayerWindows(c);
        return common.Build(l => attention with { SlidingWindow = window(l) }, _ => common.Moe);
    }

    /// <inheritdoc />
    public TensorNames Names { get; } = new()
    {
        Router = null,
        ExpertGate = "model.layers.{l}.mlp.gate_proj.weight",
        ExpertUp = "model.layers.{l}.mlp.up_proj.weight",
        ExpertDown = "model.layers.{l}.mlp.down_proj.weight",
    };

    /// <inheritdoc />
    public GgufSupport? Gguf => null;
}
