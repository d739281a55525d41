using Daop.Engine.Load;
using Daop.Engine.Load.Config;
using Daop.Engine.Load.Gguf;
using Daop.Engine.Load.Safetensors;

namespace Daop.Engine.Model.Families;

/// <summary>
/// GPT-OSS: attention with per-head sinks and q/k/v/o biases, sliding and full layers per <c>layer_types</c>, YaRN RoPE;
/// a biased router whose top-k logits are softmaxed; experts stacked per layer with biases and a clamped SwiGLU,
/// stored in bf16 or as the hub's MXFP4 blocks (<see cref="GptOssTensors"/> unstacks both).
/// </summary>
public sealed class GptOss : IModelFamily
{
    /// <summary>α of the experts' gate sigmoid, fixed in the model (transformers GptOssExperts.alpha).</summary>
    public const float Alpha = 1.702f;

    /// <inheritdoc />
    public IReadOnlyList<string> ModelTypes => ["gpt_oss"];

    /// <inheritdoc />
    public ModelConfig ReadConfig(ConfigReader c)
    {
        var common = CommonConfig.Read(c,
            numExperts: c.PositiveInt("num_local_experts"),
            topK: c.PositiveInt("num_experts_per_tok"),
            expertInter: c.PositiveInt("intermediate_size"),
            router: new RouterSpec.TopKSoftmax());
        int layers = common.Model.NumLayers;
        // transformers' default: even layers slide, odd ones see everything.
        string[] types = c.StringList("layer_types")
            ?? Enumerable.Range(0, layers).Select(l => l % 2 == 0 ? Sliding : Full).ToArray();
        if (types.Length != layers) throw c.Error("layer_types", $"has {types.Length} entries, expected num_hidden_layers ({layers})");
        for (int l = 0; l < layers; l++)
            if (types[l] is not (Sliding or Full))
                throw c.Error($"layer_types[{l}]", $"is '{types[l]}'; GPT-OSS layers are '{Sliding}' or '{Full}'");
        int? window = c.IntOrNull("sliding_window");
        if (types.Contains(Sliding) && window is not > 0)
            throw c.Error("sliding_window", $"must be a positive integer when layer_types has '{Sliding}' layers, found {window?.ToString() ?? "null"}");
        double limit = c.DoubleOr("swiglu_limit", 7.0);
        if (!(limit > 0)) throw c.Error("swiglu_limit", $"must be positive, found {limit}");

        var a = common.Attention;
        var full = new AttentionSpec.SinkGqa(a.Heads, a.KvHeads, a.HeadDim, a.Rope) { Bias = c.BoolOr("attention_bias", true) };
        var sliding = full with { SlidingWindow = window };
        // hidden_act is not read by GptOssExperts: its gating is the clamped SwiGLU whatever the config says.
        var moe = common.Moe with { Act = new Activation.ClampedSwiGlu(Alpha, (float)limit) };
        return common.Model with
        {
            Layers = types.Select(t => new LayerSpec(t == Sliding ? sliding : full, moe)).ToArray(),
        };
    }

    const string Sliding = "sliding_attention", Full = "full_attention";

    /// <inheritdoc />
    /// <remarks>The experts' names are <see cref="GptOssTensors"/>' per-expert views of the stacked tensors.</remarks>
    public TensorNames Names { get; } = new()
    {
        Attention = new SinkGqaNames(),
        Router = "model.layers.{l}.mlp.router.weight",
        RouterBias = true,
        ExpertGate = GptOssTensors.Gate,
        ExpertUp = GptOssTensors.Up,
        ExpertDown = GptOssTensors.Down,
    };

    /// <inheritdoc />
    /// <remarks>
    /// llama.cpp's gpt-oss: experts stacked as <c>ffn_{gate,up,down}_exps</c> (MXFP4 as shipped, or float) with their biases
    /// <c>ffn_*_exps.bias</c> [E, rows], router bias <c>ffn_gate_inp.bias</c>, sinks <c>attn_sinks.weight</c>, the pre-FFN norm
    /// as <c>post_attention_norm</c>.
    /// </remarks>
    public GgufSupport Gguf { get; } = new("gpt-oss", ReadGguf, GgufNames.Moe with
    {
        FfnNorm = "blk.{l}.post_attention_norm.weight",
        Attention = new SinkGqaNames
        {
            Q = "blk.{l}.attn_q.weight",
            K = "blk.{l}.attn_k.weight",
            V = "blk.{l}.attn_v.weight",
            O = "blk.{l}.attn_output.weight",
            Sinks = "blk.{l}.attn_sinks.weight",
        },
        RouterBias = true,
        SharedGate = null, SharedUp = null, SharedDown = null, SharedExpertGate = null,
    });

    /// <summary>swiglu_limit of every released GPT-OSS, which llama.cpp's graph fixes too (GGUF has no key for it).</summary>
    public const float SwigluLimit = 7.0f;

    // As llama.cpp reads gpt-oss: expert_feed_forward_length, attention.sliding_window; the layers that slide from
    // attention.sliding_window_pattern (one bool per layer) or, absent, llama.cpp's fixed pattern: the even layers (transformers'
    // default layer_types). Sinks and biases as the file has them; YaRN without rounding its correction range (transformers'
    // GPT-OSS config says truncate: false).
    static ModelConfig ReadGguf(GgufConfigReader g)
    {
        var common = GgufCommon.Read(g, "gpt_oss", g.PositiveInt("expert_count"), g.PositiveInt("expert_used_count"),
            GgufCommon.Width(g, "expert_feed_forward_length"), new RouterSpec.TopKSoftmax());
        int layers = common.Model.NumLayers;
        bool[] slides = SlidingLayers(g, layers);
        int window = g.IntOr("attention.sliding_window", 0);
        if (slides.Contains(true) && window <= 0)
            throw g.Error("attention.sliding_window", $"must be a positive integer when layers slide, found {window}");
        var a = common.Attention;
        var full = new AttentionSpec.SinkGqa(a.Heads, a.KvHeads, a.HeadDim, a.Rope with { Truncate = false }) { Bias = g.HasTensor("blk.0.attn_q.bias") };
        var sliding = full with { SlidingWindow = window };
        var moe = common.Moe with { Act = new Activation.ClampedSwiGlu(Alpha, SwigluLimit) };
        return common.Build(l => slides[l] ? sliding : full, _ => moe);
    }

    static bool[] SlidingLayers(GgufConfigReader g, int layers)
    {
        string field = "attention.sliding_window_pattern";
        if (g.Metadata.Raw(g.Key(field)) is not { } raw) return Enumerable.Range(0, layers).Select(l => l % 2 == 0).ToArray();
        if (raw.Data is not bool[] pattern) throw g.Error(field, $"must be an array of one bool per layer, found {raw.TypeName}");
        return pattern.Length == layers ? pattern : throw g.Error(field, $"has {pattern.Length} entries for {layers} layers");
    }

    /// <inheritdoc />
    /// <remarks>"mxfp4": the hub's <c>_blocks</c>/<c>_scales</c> experts, which <see cref="GptOssTensors"/> repacks.</remarks>
    public IReadOnlyList<string> QuantMethods => ["mxfp4"];

    /// <inheritdoc />
    public ITensorSource Tensors(TensorStore store, ModelConfig config) => new GptOssTensors(store, config);
}
