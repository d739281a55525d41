using Daop.Engine.Load.Config;

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
}
