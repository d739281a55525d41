using Daop.Engine.Load;
using Daop.Engine.Load.Config;
using Daop.Engine.Load.Gguf;
using Daop.Engine.Load.Safetensors;

namespace Daop.Engine.Model.Families;

/// <summary>
/// Llama-4's text model (transformers' Llama4ForCausalLM, model_type llama4_text). MoE layers (<c>moe_layers</c>, or every
/// <c>interleave_moe_layer_step</c>-th) route each token to its top-1 expert by sigmoid(logit), a weight that scales the
/// expert's input, beside an ungated shared expert; the other layers are dense MLPs of <c>intermediate_size_mlp</c>.
/// Attention per <c>no_rope_layers</c>: RoPE layers (complex rotation of adjacent pairs, so q/k rows are reordered at
/// load) with a weightless L2 q/k norm and chunked attention (<c>attention_chunk_size</c>); NoPE layers attend to every
/// position with the attention temperature (<c>floor_scale</c>, <c>attn_scale</c>). Experts are stacked input-major
/// (gate_up_proj [E, H, 2I], down_proj [E, I, H]) and read transposed, copied once at load.
/// </summary>
public sealed class Llama4 : IModelFamily
{
    /// <inheritdoc />
    public IReadOnlyList<string> ModelTypes => ["llama4_text"];

    /// <inheritdoc />
    public ModelConfig ReadConfig(ConfigReader c) => Read(c);

    /// <summary>The text model's config from <paramref name="c"/> (config.json, or the text_config of a multimodal one).</summary>
    internal static ModelConfig Read(ConfigReader c)
    {
        int experts = c.PositiveInt("num_local_experts"), topK = c.PositiveInt("num_experts_per_tok");
        if (topK != 1) throw c.Error("num_experts_per_tok", $"must be 1 (Llama-4's router weight scales each expert's input: Daop runs one expert per token), found {topK}");
        int inter = c.PositiveInt("intermediate_size");
        var common = CommonConfig.Read(c, experts, topK, inter, new RouterSpec.SigmoidScalesInput());
        int layers = common.Model.NumLayers;
        if (c.BoolOr("attention_bias", false)) throw c.Error("attention_bias", "true is not supported for llama4_text");

        int step = c.IntOr("interleave_moe_layer_step", 1);
        if (step <= 0) throw c.Error("interleave_moe_layer_step", $"must be positive, found {step}");
        var moeLayers = c.Has("moe_layers") ? c.IntList("moe_layers").ToHashSet()
            : Enumerable.Range(0, layers).Where(l => l % step == step - 1).ToHashSet();
        if (moeLayers.FirstOrDefault(l => l < 0 || l >= layers, -1) is var bad and >= 0)
            throw c.Error("moe_layers", $"names layer {bad} of a model of {layers} layers");
        int interval = c.IntOr("no_rope_layer_interval", 4);
        if (interval <= 0) throw c.Error("no_rope_layer_interval", $"must be positive, found {interval}");
        int[] useRope = c.Has("no_rope_layers") ? c.IntList("no_rope_layers") : Enumerable.Range(0, layers).Select(l => (l + 1) % interval != 0 ? 1 : 0).ToArray();
        if (useRope.Length != layers) throw c.Error("no_rope_layers", $"has {useRope.Length} entries for {layers} layers");

        int chunk = c.IntOr("attention_chunk_size", 8192);
        if (chunk <= 0) throw c.Error("attention_chunk_size", $"must be positive, found {chunk}");
        // layer_types (transformers 5) says which layers chunk; without it, the RoPE layers do.
        string[] types = c.StringList("layer_types") ?? useRope.Select(u => u != 0 ? "chunked_attention" : "full_attention").ToArray();
        if (types.Length != layers) throw c.Error("layer_types", $"has {types.Length} entries for {layers} layers");
        for (int l = 0; l < layers; l++)
            if (types[l] is not ("chunked_attention" or "full_attention"))
                throw c.Error($"layer_types[{l}]", $"'{types[l]}' is not 'chunked_attention' or 'full_attention'");

        int floor = c.IntOr("floor_scale", 8192);
        if (floor <= 0) throw c.Error("floor_scale", $"must be positive, found {floor}");
        double attnScale = c.DoubleOr("attn_scale", 0.1);
        if (!(attnScale >= 0 && attnScale <= 100)) throw c.Error("attn_scale", $"must be in [0, 100], found {attnScale}");
        var temperature = c.BoolOr("attn_temperature_tuning", true) ? new QueryTemperature(floor, (float)attnScale) : null;
        var l2 = c.BoolOr("use_qk_norm", true) ? new QkNormSpec(QkNormScope.PerHead, NormSpec.Rms((float)c.DoubleOr("rms_norm_eps", 1e-5))) { Weightless = true } : null;

        AttentionSpec Attention(int l) => useRope[l] != 0
            ? common.Attention with { QkNorm = l2, Chunk = types[l] == "chunked_attention" ? chunk : null }
            : common.Attention with { SkipRope = true, Temperature = temperature, Chunk = types[l] == "chunked_attention" ? chunk : null };
        var moe = common.Moe with { Shared = new SharedExpertSpec.Ungated(inter) };
        var dense = common.Dense(c.PositiveInt("intermediate_size_mlp"));
        return common.Build(Attention, l => moeLayers.Contains(l) ? moe : dense);
    }

    /// <inheritdoc />
    public TensorNames Names { get; } = NamesUnder("");

    /// <summary>The text model's tensor names, each after <paramref name="prefix"/> ("language_model." in a multimodal checkpoint).</summary>
    internal static TensorNames NamesUnder(string prefix) => new()
    {
        Embed = prefix + "model.embed_tokens.weight",
        FinalNorm = prefix + "model.norm.weight",
        LmHead = prefix + "lm_head.weight",
        AttnNorm = prefix + "model.layers.{l}.input_layernorm.weight",
        FfnNorm = prefix + "model.layers.{l}.post_attention_layernorm.weight",
        Attention = new GqaNames
        {
            Q = prefix + "model.layers.{l}.self_attn.q_proj.weight",
            K = prefix + "model.layers.{l}.self_attn.k_proj.weight",
            V = prefix + "model.layers.{l}.self_attn.v_proj.weight",
            O = prefix + "model.layers.{l}.self_attn.o_proj.weight",
        },
        Router = prefix + "model.layers.{l}.feed_forward.router.weight",
        ExpertGateUp = prefix + "model.layers.{l}.feed_forward.experts.gate_up_proj[{e}].T",
        ExpertDown = prefix + "model.layers.{l}.feed_forward.experts.down_proj[{e}].T",
        SharedGate = prefix + "model.layers.{l}.feed_forward.shared_expert.gate_proj.weight",
        SharedUp = prefix + "model.layers.{l}.feed_forward.shared_expert.up_proj.weight",
        SharedDown = prefix + "model.layers.{l}.feed_forward.shared_expert.down_proj.weight",
        DenseGate = prefix + "model.layers.{l}.feed_forward.gate_proj.weight",
        DenseUp = prefix + "model.layers.{l}.feed_forward.up_proj.weight",
        DenseDown = prefix + "model.layers.{l}.feed_forward.down_proj.weight",
    };

    /// <inheritdoc />
    /// <remarks>Llama-4 rotates adjacent pairs of q and k (a complex product): their rows are put in rotate_half order, as for llama.cpp's files.</remarks>
    public ITensorSource Tensors(TensorStore store, ModelConfig config) => GgufFamilies.QkRowsInHalves(store, config, Names);

    /// <inheritdoc />
    /// <remarks>
    /// llama.cpp's llama4: q/k rows as the checkpoint's (adjacent RoPE pairs, reordered at load as for the hub files), experts
    /// stacked as <c>ffn_*_exps</c>, the shared expert as <c>*_shexp</c>, dense layers as <c>ffn_{gate,up,down}</c>.
    /// </remarks>
    public GgufSupport Gguf { get; } = new("llama4", ReadGguf, GgufNames.Moe) { QkRowsPermuted = true };

    // As llama.cpp reads llama4: MoE layers every interleave_moe_layer_step-th ((l+1) % step == 0), the experts'
    // width from expert_feed_forward_length and the shared expert's alike, dense layers of feed_forward_length; every
    // fourth layer without RoPE and attending to everything, the others chunked and with the weightless L2 q/k norm (not
    // in 128-expert models, as llama.cpp's Maverick); llama.cpp fixes the chunk (8192) and the NoPE layers' temperature
    // (floor 8192, scale 0.1): Daop takes them from attention.sliding_window, attention.temperature_length and
    // attention.temperature_scale where a file has them (the test converter writes them for its tiny fixture).
    static ModelConfig ReadGguf(GgufConfigReader g)
    {
        int experts = g.PositiveInt("expert_count"), topK = g.PositiveInt("expert_used_count");
        if (topK != 1) throw g.Error("expert_used_count", $"must be 1 (Llama-4's router weight scales each expert's input: Daop runs one expert per token), found {topK}");
        int inter = GgufCommon.Width(g, "expert_feed_forward_length");
        var common = GgufCommon.Read(g, "llama4_text", experts, topK, inter, new RouterSpec.SigmoidScalesInput());
        int layers = common.Model.NumLayers;
        int step = g.PositiveInt("interleave_moe_layer_step");
        int chunk = g.IntOr("attention.sliding_window", 8192);
        if (chunk <= 0) throw g.Error("attention.sliding_window", $"(the attention chunk) must be positive, found {chunk}");
        int floor = g.IntOr("attention.temperature_length", 8192);
        if (floor <= 0) throw g.Error("attention.temperature_length", $"must be positive, found {floor}");
        double attnScale = g.NumberOr("attention.temperature_scale", 0.1);
        if (!(attnScale >= 0 && attnScale <= 100)) throw g.Error("attention.temperature_scale", $"must be in [0, 100], found {attnScale}");
        var l2 = experts == 128 ? null : new QkNormSpec(QkNormScope.PerHead, common.Model.Norm) { Weightless = true };
        var a = common.Attention with { SlidingWindow = null };
        AttentionSpec Attention(int l) => (l + 1) % 4 != 0
            ? a with { QkNorm = l2, Chunk = chunk }
            : a with { SkipRope = true, Temperature = new QueryTemperature(floor, (float)attnScale) };
        var moe = common.Moe with { Shared = new SharedExpertSpec.Ungated(inter) };
        var dense = common.Dense(GgufCommon.Width(g, "feed_forward_length"));
        return common.Build(Attention, l => (l + 1) % step == 0 ? moe : dense);
    }
}

/// <summary>
/// Llama-4 as the hub ships it (Llama4ForConditionalGeneration, model_type llama4): the text model of
/// <see cref="Llama4"/> from config.json's <c>text_config</c> and the <c>language_model.*</c> tensors; the vision tower's
/// tensors are left unread (Daop runs text).
/// </summary>
public sealed class Llama4Multimodal : IModelFamily
{
    /// <inheritdoc />
    public IReadOnlyList<string> ModelTypes => ["llama4"];

    /// <inheritdoc />
    public ModelConfig ReadConfig(ConfigReader c) =>
        Llama4.Read(c.Object("text_config") ?? throw c.Error("text_config", "is missing (a llama4 checkpoint keeps its text model's config there)"));

    /// <inheritdoc />
    public TensorNames Names { get; } = Llama4.NamesUnder("language_model.");

    /// <inheritdoc />
    public GgufSupport? Gguf => null;

    /// <inheritdoc />
    public ITensorSource Tensors(TensorStore store, ModelConfig config) => GgufFamilies.QkRowsInHalves(store, config, Names);
}
