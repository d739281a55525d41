using Daop.Engine.Load.Config;

namespace Daop.Engine.Model.Families;

/// <summary>
/// The config keys every family shares, read and checked once: model-level fields and the default specs (GQA
/// attention, RMSNorm, a MoE block in every layer). A family adjusts these specs and composes them with
/// <c>Build</c>; where the defaults are the whole model (Mixtral), <see cref="Model"/> is the config.
/// </summary>
sealed record CommonConfig
{
    /// <summary>Most decoder layers a config may declare.</summary>
    public const int MaxLayers = 4096;
    /// <summary>Most routed experts per layer a config may declare.</summary>
    public const int MaxExperts = 65536;

    /// <summary>Widest hidden, attention (heads · head_dim) or FFN dimension a config may declare (2^20): per-chunk buffers are sized from these.</summary>
    public const int MaxWidth = 1 << 20;
    /// <summary>Largest vocabulary a config may declare (2^24).</summary>
    public const int MaxVocab = 1 << 24;

    /// <summary>The default composition (RMSNorm, <see cref="Attention"/> and <see cref="Moe"/> in every layer), whose model-level fields <c>Build</c> keeps.</summary>
    public required ModelConfig Model { get; init; }
    /// <summary>Grouped-query attention from num_attention_heads, num_key_value_heads, head_dim, RoPE and sliding_window.</summary>
    public required AttentionSpec.Gqa Attention { get; init; }
    /// <summary>The MoE block the family described, with hidden_act.</summary>
    public required FfnSpec.Moe Moe { get; init; }
    /// <summary>hidden_act.</summary>
    public required Activation Act { get; init; }

    /// <summary>A dense MLP of width <paramref name="intermediate"/> with hidden_act.</summary>
    public FfnSpec.Dense Dense(int intermediate) => new(intermediate) { Act = Act };

    /// <summary>The config: <paramref name="attention"/> in every layer, layer l's FFN <paramref name="ffn"/>(l).</summary>
    public ModelConfig Build(AttentionSpec attention, Func<int, FfnSpec> ffn, NormSpec? norm = null, LmHeadSpec? lmHead = null) =>
        Build(_ => attention, ffn, norm, lmHead);

    /// <summary>The config: layer l's attention <paramref name="attention"/>(l) and FFN <paramref name="ffn"/>(l).</summary>
    public ModelConfig Build(Func<int, AttentionSpec> attention, Func<int, FfnSpec> ffn, NormSpec? norm = null, LmHeadSpec? lmHead = null) => Model with
    {
        Norm = norm ?? Model.Norm,
        Layers = Enumerable.Range(0, Model.NumLayers).Select(l => new LayerSpec(attention(l), ffn(l))).ToArray(),
        LmHead = lmHead ?? Model.LmHead,
    };

    /// <summary>
    /// Layer l's sliding window as transformers 5 writes it: <c>layer_types[l]</c> is "sliding_attention" (the last
    /// <c>sliding_window</c> positions) or "full_attention"; without layer_types every layer takes
    /// <see cref="Attention"/>'s window (use_sliding_window and sliding_window).
    /// </summary>
    public Func<int, int?> LayerWindows(ConfigReader c)
    {
        if (c.StringList("layer_types") is not { } types) return _ => Attention.SlidingWindow;
        int layers = Model.NumLayers;
        if (types.Length != layers) throw c.Error("layer_types", $"has {types.Length} entries for {layers} layers");
        int window = c.IntOr("sliding_window", 0);
        var windows = new int?[layers];
        for (int l = 0; l < layers; l++)
            windows[l] = types[l] switch
            {
                "full_attention" => null,
                "sliding_attention" => window > 0 ? window
                    : throw c.Error("sliding_window", $"must be a positive integer for layer_types[{l}] 'sliding_attention', found {window}"),
                _ => throw c.Error($"layer_types[{l}]", $"'{types[l]}' is not 'full_attention' or 'sliding_attention'"),
            };
        return l => windows[l];
    }

    /// <summary>Reads the shared fields, checking the family's expert counts and widths with them.</summary>
    public static CommonConfig Read(ConfigReader c, int numExperts, int topK, int expertInter, RouterSpec router)
    {
        int hidden = c.PositiveInt("hidden_size");
        int heads = c.PositiveInt("num_attention_heads");
        int kvHeads = c.IntOr("num_key_value_heads", heads);
        if (kvHeads <= 0 || heads % kvHeads != 0)
            throw c.Error("num_key_value_heads", $"must be a positive divisor of num_attention_heads ({heads}), found {kvHeads}");
        int headDim = c.IntOrNull("head_dim") ?? (hidden % heads == 0 ? hidden / heads
            : throw c.Error("num_attention_heads", $"({heads}) must divide hidden_size ({hidden}) when head_dim is not given"));
        if (headDim <= 0 || headDim % 2 != 0) throw c.Error("head_dim", $"must be a positive even number, found {headDim}");
        if (hidden > MaxWidth) throw c.Error("hidden_size", $"must be at most {MaxWidth}, found {hidden}");
        if ((long)heads * headDim > MaxWidth)
            throw c.Error("num_attention_heads", $"times head_dim ({heads} x {headDim}) must be at most {MaxWidth}");
        if (expertInter > MaxWidth)
            throw c.Error(c.Has("moe_intermediate_size") ? "moe_intermediate_size" : "intermediate_size", $"must be at most {MaxWidth}, found {expertInter}");
        int layers = c.PositiveInt("num_hidden_layers");
        // Sanity bounds far above any real model: per-layer and per-expert tables are sized from these before the
        // checkpoint can contradict them, so an absurd value must fail here rather than allocate gigabytes.
        if (layers > MaxLayers) throw c.Error("num_hidden_layers", $"must be at most {MaxLayers}, found {layers}");
        if (numExperts > MaxExperts)
            throw c.Error(c.Has("num_local_experts") ? "num_local_experts" : "num_experts", $"must be at most {MaxExperts}, found {numExperts}");
        if (topK <= 0 || topK > numExperts)
            throw c.Error("num_experts_per_tok", $"must be between 1 and the number of experts ({numExperts}), found {topK}");
        string act = c.StringOrNull("hidden_act") ?? "silu";
        var activation = act is "silu" or "swish" ? Activation.Silu
            : throw c.Error("hidden_act", $"'{act}' is not supported (Daop's experts are SwiGLU with silu)");

        string? dtype = c.StringOrNull("dtype") ?? c.StringOrNull("torch_dtype");
        var rope = ReadRope(c) with { InvFreqDType = dtype is "bfloat16" or "float16" ? dtype : null };
        int maxPos = c.IntOr("max_position_embeddings", 4096);
        if (maxPos <= 0) throw c.Error("max_position_embeddings", $"must be positive, found {maxPos}");
        int vocab = c.PositiveInt("vocab_size");
        if (vocab > MaxVocab) throw c.Error("vocab_size", $"must be at most {MaxVocab}, found {vocab}");
        // eps guards x / sqrt(mean(x²) + eps): 0 divides an all-zero row (a padding embedding) by 0, a negative one
        // takes the root of a negative number; real models use 1e-6 .. 1e-5.
        double eps = c.DoubleOr("rms_norm_eps", 1e-5);
        if (!(eps > 0 && eps < 1)) throw c.Error("rms_norm_eps", $"must be in (0, 1), found {eps}");
        bool useSliding = c.BoolOr("use_sliding_window", true);
        int? window = useSliding ? c.IntOrNull("sliding_window") : null;
        if (window is <= 0) window = null;

        var attention = new AttentionSpec.Gqa(heads, kvHeads, headDim, rope) { SlidingWindow = window };
        var moe = new FfnSpec.Moe(numExperts, topK, expertInter, router) { Act = activation };
        var model = new ModelConfig
        {
            ModelType = c.StringOrNull("model_type")!,
            Path = c.Path,
            VocabSize = vocab,
            HiddenSize = hidden,
            Norm = NormSpec.Rms((float)eps),
            Layers = Enumerable.Range(0, layers).Select(_ => new LayerSpec(attention, moe)).ToArray(),
            LmHead = new LmHeadSpec(TiedToEmbedding: c.BoolOr("tie_word_embeddings", false)),
            MaxPositions = maxPos,
            BosTokenId = c.IntOrNull("bos_token_id"),
            EosTokenIds = c.IntList("eos_token_id"),
        };
        return new CommonConfig { Model = model, Attention = attention, Moe = moe, Act = activation };
    }

    /// <summary>An optional FFN width (0 when absent): must lie in [0, <see cref="MaxWidth"/>].</summary>
    public static int WidthOr0(ConfigReader c, string field)
    {
        int w = c.IntOr(field, 0);
        if (w < 0 || w > MaxWidth) throw c.Error(field, $"must be between 0 and {MaxWidth}, found {w}");
        return w;
    }

    /// <summary>
    /// RoPE from <c>rope_parameters</c> (transformers 5) or top-level <c>rope_theta</c> + <c>rope_scaling</c>
    /// (checkpoints written by older versions).
    /// </summary>
    public static RopeSpec ReadRope(ConfigReader c)
    {
        var p = c.Object("rope_parameters");
        double theta = p?.Has("rope_theta") == true ? p.Double("rope_theta") : c.DoubleOr("rope_theta", 10000);
        var s = p ?? c.Object("rope_scaling");
        double partial = p?.DoubleOr("partial_rotary_factor", c.DoubleOr("partial_rotary_factor", 1)) ?? c.DoubleOr("partial_rotary_factor", 1);
        if (!(partial > 0 && partial <= 1))
            throw (p?.Has("partial_rotary_factor") == true ? p : c).Error("partial_rotary_factor", $"must be in (0, 1], found {partial}");
        // θ^(2i/d) of θ ≤ 0 is 0 or NaN, and every frequency would be infinite or NaN.
        if (!(theta > 0)) throw (p?.Has("rope_theta") == true ? p : c).Error("rope_theta", $"must be positive, found {theta}");
        if (s == null) return new RopeSpec(theta, "default", PartialRotaryFactor: partial);
        string type = s.StringOrNull("rope_type") ?? s.StringOrNull("type") ?? "default";
        int origMax = s.IntOr("original_max_position_embeddings", c.IntOr("original_max_position_embeddings", 0));
        if (origMax < 0) throw s.Error("original_max_position_embeddings", $"must not be negative, found {origMax}");
        var spec = ReadScaling(s, p, type, theta, partial, origMax);
        CheckScaling(s, spec);
        return spec;
    }

    // Fields a scaling divides by or takes the logarithm of must be positive; llama3 needs low < high frequency factor.
    static void CheckScaling(ConfigReader s, RopeSpec r)
    {
        void Positive(string field, double v) { if (!(v > 0)) throw s.Error(field, $"must be positive, found {v}"); }
        if (r.Type != "default") Positive("factor", r.Factor);
        if (r.AttentionFactor is { } a) Positive("attention_factor", a);
        if (r.Type == "llama3")
        {
            Positive("original_max_position_embeddings", r.OriginalMaxPositions);
            Positive("low_freq_factor", r.LowFreqFactor);
            if (!(r.HighFreqFactor > r.LowFreqFactor))
                throw s.Error("high_freq_factor", $"must be greater than low_freq_factor ({r.LowFreqFactor}), found {r.HighFreqFactor}");
        }
        if (r.Type == "yarn")
        {
            if (!(r.Theta > 1)) throw s.Error("rope_theta", $"must be greater than 1 for yarn scaling, found {r.Theta}");
            Positive("beta_fast", r.BetaFast);
            Positive("beta_slow", r.BetaSlow);
            // mscale(factor, m) = 0.1·m·ln(factor) + 1 scales (mscale) or divides (mscale_all_dim) the attention factor:
            // each must be positive and finite, and so must their ratio in fp32.
            foreach (var (field, m) in new[] { ("mscale", r.Mscale), ("mscale_all_dim", r.MscaleAllDim) })
                if (m is { } v && v != 0 && !(RopeSpec.YarnMscale(r.Factor, v) is var y && double.IsFinite(y) && y > 0))
                    throw s.Error(field, $"gives a non-positive or infinite mscale for factor {r.Factor}, found {v}");
            if (r.Mscale is { } ms && ms != 0 && r.MscaleAllDim is { } ma && ma != 0
                && !float.IsFinite((float)(RopeSpec.YarnMscale(r.Factor, ms) / RopeSpec.YarnMscale(r.Factor, ma))))
                throw s.Error("mscale_all_dim", $"({ma}) with mscale {ms} gives an infinite attention factor");
        }
        foreach (var (field, list) in new[] { ("short_factor", r.ShortFactor), ("long_factor", r.LongFactor) })
            if (list != null)
                for (int i = 0; i < list.Length; i++) Positive($"{field}[{i}]", list[i]);
    }

    static RopeSpec ReadScaling(ConfigReader s, ConfigReader? p, string type, double theta, double partial, int origMax)
    {
        return type switch
        {
            "default" => new RopeSpec(theta, type, PartialRotaryFactor: partial),
            "linear" or "dynamic" => new RopeSpec(theta, type, s.Double("factor"), PartialRotaryFactor: partial),
            "llama3" => new RopeSpec(theta, type, s.Double("factor"), OriginalMaxPositions: origMax,
                LowFreqFactor: s.DoubleOr("low_freq_factor", 1), HighFreqFactor: s.DoubleOr("high_freq_factor", 4), PartialRotaryFactor: partial),
            "longrope" or "su" => new RopeSpec(theta, "longrope", s.DoubleOr("factor", 1), s.DoubleList("short_factor"),
                s.DoubleList("long_factor"), origMax, PartialRotaryFactor: partial,
                AttentionFactor: s.Has("attention_factor") ? s.Double("attention_factor") : null),
            "yarn" => new RopeSpec(theta, type, s.Double("factor"), OriginalMaxPositions: origMax, PartialRotaryFactor: partial,
                AttentionFactor: s.Has("attention_factor") ? s.Double("attention_factor") : null,
                BetaFast: s.DoubleOr("beta_fast", 32), BetaSlow: s.DoubleOr("beta_slow", 1), Truncate: s.BoolOr("truncate", true))
            {
                Mscale = s.Has("mscale") ? s.Double("mscale") : null,
                MscaleAllDim = s.Has("mscale_all_dim") ? s.Double("mscale_all_dim") : null,
            },
            _ => throw s.Error(p != null ? "rope_type" : "type", $"'{type}' is not a supported RoPE scaling (default, linear, dynamic, llama3, longrope, yarn)"),
        };
    }
}
