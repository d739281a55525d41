using Daop.Engine.Load.Config;
using Daop.Engine.Load.Gguf;

namespace Daop.Engine.Model.Families;

/// <summary>Mixtral: GQA, 8 experts, top-2, softmax then renormalise; experts named w1 (gate), w3 (up), w2 (down).</summary>
public sealed class Mixtral : IModelFamily
{
    /// <inheritdoc />
    public IReadOnlyList<string> ModelTypes => ["mixtral"];

    /// <inheritdoc />
    public ModelConfig ReadConfig(ConfigReader c) => CommonConfig.Read(c,
        numExperts: c.PositiveInt("num_local_experts"),
        topK: c.PositiveInt("num_experts_per_tok"),
        expertInter: c.PositiveInt("intermediate_size"),
        router: new RouterSpec.SoftmaxTopK(Renormalize: true)).Model; // the defaults: GQA and this MoE block in every layer

    /// <inheritdoc />
    public TensorNames Names { get; } = new()
    {
        Router = "model.layers.{l}.block_sparse_moe.gate.weight",
        ExpertGate = "model.layers.{l}.block_sparse_moe.experts.{e}.w1.weight",
        ExpertUp = "model.layers.{l}.block_sparse_moe.experts.{e}.w3.weight",
        ExpertDown = "model.layers.{l}.block_sparse_moe.experts.{e}.w2.weight",
    };

    /// <inheritdoc />
    /// <remarks>llama.cpp files Mixtral under its <c>llama</c> architecture: a llama file with experts is Mixtral.</remarks>
    public GgufSupport Gguf { get; } = new("llama", ReadGguf, GgufNames.Moe) { QkRowsPermuted = true, Accepts = g => g.IntOr("expert_count", 0) > 0 };

    static ModelConfig ReadGguf(GgufConfigReader g)
    {
        int experts = g.IntOr("expert_count", 0);
        var common = GgufCommon.Read(g, "mixtral", experts, g.PositiveInt("expert_used_count"), GgufCommon.Width(g, "feed_forward_length"),
            new RouterSpec.SoftmaxTopK(Renormalize: true));
        // Biases are optional in llama.cpp's llama graph; a file has them or not.
        var attention = common.Attention with { QkvBias = g.HasTensor("blk.0.attn_q.bias"), OBias = g.HasTensor("blk.0.attn_output.bias") };
        return common.Build(attention, _ => common.Moe);
    }
}
