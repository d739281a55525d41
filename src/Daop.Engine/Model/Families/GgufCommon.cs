using Daop.Engine.Load.Config;
using Daop.Engine.Load.Gguf;

namespace Daop.Engine.Model.Families;

/// <summary>
/// The GGUF keys every family shares (llama.cpp's load_hparams), read and checked with the bounds of
/// <see cref="CommonConfig"/>: the same defaults a family then adjusts, as <see cref="CommonConfig.Read"/> gives them for
/// config.json. What GGUF does not say is taken as llama.cpp takes it: head_dim = hidden / heads, rotary width = head_dim,
/// θ = 10000, the vocabulary = the rows of token_embd, an absent <c>output.weight</c> = an LM head tied to the embedding,
/// RoPE frequencies in fp32 (llama.cpp's own arithmetic, no checkpoint-dtype rounding).
/// </summary>
static class GgufCommon
{
    /// <summary>
    /// Reads the shared keys; <paramref name="modelType"/> is the Hugging Face model_type the file corresponds to.
    /// <paramref name="valueLengthIsKeyLength"/>: attention.value_length, when given, must equal key_length (GQA; multi-head
    /// latent attention's differ, and its family reads them).
    /// </summary>
    public static CommonConfig Read(GgufConfigReader g, string modelType, int numExperts, int topK, int expertInter, RouterSpec router,
        bool valueLengthIsKeyLength = true)
    {
        int layers = Layers(g);
        int hidden = g.PositiveInt("embedding_length");
        if (hidden > CommonConfig.MaxWidth) throw g.Error("embedding_length", $"must be at most {CommonConfig.MaxWidth}, found {hidden}");
        int heads = g.UniformIntOrNull("attention.head_count", layers) ?? throw g.Error("attention.head_count", "is missing");
        if (heads <= 0) throw g.Error("attention.head_count", $"must be positive, found {heads}");
        int kvHeads = g.UniformIntOrNull("attention.head_count_kv", layers) ?? heads;
        if (kvHeads <= 0 || heads % kvHeads != 0)
            throw g.Error("attention.head_count_kv", $"must be a positive divisor of attention.head_count ({heads}), found {kvHeads}");
        int headDim = g.IntOrNull("attention.key_length") ?? (hidden % heads == 0 ? hidden / heads
            : throw g.Error("attention.head_count", $"({heads}) must divide embedding_length ({hidden}) when attention.key_length is not given"));
        if (headDim <= 0 || headDim % 2 != 0) throw g.Error("attention.key_length", $"must be a positive even number, found {headDim}");
        if (valueLengthIsKeyLength && g.IntOrNull("attention.value_length") is { } vd && vd != headDim)
            throw g.Error("attention.value_length", $"is {vd}, but Daop's attention needs it equal to attention.key_length ({headDim})");
        if ((long)heads * headDim > CommonConfig.MaxWidth)
            throw g.Error("attention.head_count", $"times the head size ({heads} x {headDim}) must be at most {CommonConfig.MaxWidth}");
        if (expertInter <= 0 || expertInter > CommonConfig.MaxWidth)
            throw g.Error("expert_feed_forward_length", $"(the width of one expert) must be between 1 and {CommonConfig.MaxWidth}, found {expertInter}");
        if (numExperts > CommonConfig.MaxExperts) throw g.Error("expert_count", $"must be at most {CommonConfig.MaxExperts}, found {numExperts}");
        if (topK <= 0 || topK > numExperts)
            throw g.Error("expert_used_count", $"must be between 1 and the number of experts ({numExperts}), found {topK}");

        int ctx = g.PositiveInt("context_length");
        var rope = Rope(g, headDim, ctx);
        double eps = g.NumberOrNull("attention.layer_norm_rms_epsilon") ?? g.NumberOrNull("attention.layer_norm_epsilon")
            ?? throw g.Error("attention.layer_norm_rms_epsilon", "is missing");
        if (!(eps > 0 && eps < 1)) throw g.Error("attention.layer_norm_rms_epsilon", $"must be in (0, 1), found {eps}");
        int window = g.IntOr("attention.sliding_window", 0);

        var embed = g.Tensor("token_embd.weight") ?? throw new Load.ModelLoadException($"{g.Path}: missing tensor 'token_embd.weight'");
        long vocab = embed.Dims.Length >= 2 ? embed.Dims[1] : 0;
        if (vocab <= 0 || vocab > CommonConfig.MaxVocab)
            throw new Load.ModelLoadException($"{g.Path}: tensor 'token_embd.weight' has shape {embed.ShapeText}: its rows (the vocabulary) must number 1 to {CommonConfig.MaxVocab}");

        var attention = new AttentionSpec.Gqa(heads, kvHeads, headDim, rope) { SlidingWindow = window > 0 ? window : null };
        var moe = new FfnSpec.Moe(numExperts, topK, expertInter, router);
        int? eos = g.Metadata.IntOrNull("tokenizer.ggml.eos_token_id");
        var model = new ModelConfig
        {
            ModelType = modelType,
            Path = g.Path,
            VocabSize = (int)vocab,
            HiddenSize = hidden,
            Norm = NormSpec.Rms((float)eps),
            Layers = Enumerable.Range(0, layers).Select(_ => new LayerSpec(attention, moe)).ToArray(),
            LmHead = new LmHeadSpec(TiedToEmbedding: !g.HasTensor("output.weight")),
            MaxPositions = ctx,
            BosTokenId = g.Metadata.IntOrNull("tokenizer.ggml.bos_token_id"),
            EosTokenIds = eos is { } e ? [e] : [],
        };
        return new CommonConfig { Model = model, Attention = attention, Moe = moe, Act = Activation.Silu };
    }

    /// <summary>block_count, within <see cref="CommonConfig.MaxLayers"/>.</summary>
    public static int Layers(GgufConfigReader g)
    {
        int layers = g.PositiveInt("block_count");
        return layers <= CommonConfig.MaxLayers ? layers : throw g.Error("block_count", $"must be at most {CommonConfig.MaxLayers}, found {layers}");
    }

    /// <summary>A required FFN width that may be given per layer (feed_forward_length), the same in every layer.</summary>
    public static int Width(GgufConfigReader g, string field)
    {
        int w = g.UniformIntOrNull(field, Layers(g)) ?? throw g.Error(field, "is missing");
        return w is > 0 and <= CommonConfig.MaxWidth ? w : throw g.Error(field, $"must be between 1 and {CommonConfig.MaxWidth}, found {w}");
    }

    /// <summary>
    /// RoPE: θ from rope.freq_base; linear and yarn scaling from rope.scaling.*; Phi-3's longrope from its
    /// rope_factors_long/short tensors; Llama 3's per-dimension divisors from rope_freqs.
    /// </summary>
    static RopeSpec Rope(GgufConfigReader g, int headDim, int ctx)
    {
        int ropeDim = g.IntOr("rope.dimension_count", headDim);
        if (ropeDim <= 0 || ropeDim > headDim || ropeDim % 2 != 0)
            throw g.Error("rope.dimension_count", $"must be a positive even number up to the head size ({headDim}), found {ropeDim}");
        double partial = (double)ropeDim / headDim;
        double theta = g.NumberOr("rope.freq_base", 10000);
        if (!(theta > 0)) throw g.Error("rope.freq_base", $"must be positive, found {theta}");
        // Llama 3's scaling, as llama.cpp's converter writes it: one divisor per dimension pair.
        if (g.VectorOrNull("rope_freqs.weight", ropeDim / 2) is { } freqs)
            return freqs.All(x => x > 0 && float.IsFinite(x))
                ? new RopeSpec(theta, "factors", PartialRotaryFactor: partial, FreqFactors: freqs.Select(x => (double)x).ToArray())
                : throw new Load.ModelLoadException($"{g.Path}: tensor 'rope_freqs.weight' must hold positive finite factors");
        int orig = g.IntOr("rope.scaling.original_context_length", ctx);
        if (orig <= 0) throw g.Error("rope.scaling.original_context_length", $"must be positive, found {orig}");
        var longFactors = g.VectorOrNull("rope_factors_long.weight", ropeDim / 2);
        var shortFactors = g.VectorOrNull("rope_factors_short.weight", ropeDim / 2);
        if (longFactors != null || shortFactors != null)
        {
            if (longFactors == null || shortFactors == null)
                throw new Load.ModelLoadException($"{g.Path}: rope_factors_long.weight and rope_factors_short.weight come together; the file has one");
            foreach (var (name, f) in new[] { ("rope_factors_long.weight", longFactors), ("rope_factors_short.weight", shortFactors) })
                if (f.Any(x => !(x > 0))) throw new Load.ModelLoadException($"{g.Path}: tensor '{name}' must hold positive factors");
            return new RopeSpec(theta, "longrope", (double)ctx / orig, shortFactors.Select(x => (double)x).ToArray(),
                longFactors.Select(x => (double)x).ToArray(), orig, PartialRotaryFactor: partial,
                AttentionFactor: g.NumberOrNull("rope.scaling.attn_factor"));
        }
        string type = g.StringOrNull("rope.scaling.type") ?? "none";
        double factor = g.NumberOrNull("rope.scaling.factor") ?? g.NumberOrNull("rope.scale_linear") ?? 0;
        if (factor == 0) factor = 1; // llama.cpp's reading of an absent or zero factor
        if (!(factor > 0)) throw g.Error("rope.scaling.factor", $"must be positive, found {factor}");
        return type switch
        {
            "none" => new RopeSpec(theta, "default", PartialRotaryFactor: partial),
            "linear" => factor == 1 ? new RopeSpec(theta, "default", PartialRotaryFactor: partial)
                : new RopeSpec(theta, "linear", factor, PartialRotaryFactor: partial),
            "yarn" => theta > 1 ? new RopeSpec(theta, "yarn", factor, OriginalMaxPositions: orig, PartialRotaryFactor: partial,
                    AttentionFactor: g.NumberOrNull("rope.scaling.attn_factor") is { } a ? a * (factor <= 1 ? 1 : 0.1 * Math.Log(factor) + 1) : null)
                : throw g.Error("rope.freq_base", $"must be greater than 1 for yarn scaling, found {theta}"),
            _ => throw g.Error("rope.scaling.type", $"'{type}' is not supported (none, linear, yarn; Phi-3 longrope through its factor tensors)"),
        };
    }
}
