namespace Daop.Engine.Load.Config;

/// <summary>One decoder layer: x += Attention(norm(x)); x += Ffn(norm(x)).</summary>
public sealed record LayerSpec(AttentionSpec Attention, FfnSpec Ffn);

/// <summary>
/// The output projection: tied to the embedding (when the checkpoint has no lm_head of its own), with a bias, and the
/// logits multiplied by <paramref name="Scale"/> (Granite divides them by logits_scaling).
/// </summary>
public sealed record LmHeadSpec(bool TiedToEmbedding = false, bool Bias = false, float Scale = 1);

/// <summary>
/// Everything the shared layers need to know about a model, composed from config.json by a family file: model-level
/// fields, the norm, and per decoder layer an attention and an FFN spec. Shapes use the HF names: hidden H, heads NH,
/// kv heads NKV, head dim D, experts E, top-k K.
/// </summary>
public sealed record ModelConfig
{
    /// <summary>HF model_type ("mixtral", "qwen3_moe", ...).</summary>
    public required string ModelType { get; init; }
    /// <summary>Path of the config.json it came from.</summary>
    public required string Path { get; init; }
    /// <summary>V.</summary>
    public required int VocabSize { get; init; }
    /// <summary>H.</summary>
    public required int HiddenSize { get; init; }
    /// <summary>The pre-attention, pre-FFN and final norms.</summary>
    public required NormSpec Norm { get; init; }
    /// <summary>Decoder layers, in order.</summary>
    public required IReadOnlyList<LayerSpec> Layers
    {
        get => _layers;
        init
        {
            // What the convenience properties below read, derived once here (also by a `with` that replaces the layers).
            _layers = value;
            _moe = value.Select(l => l.Ffn).OfType<FfnSpec.Moe>().FirstOrDefault();
            _moeLayers = value.Count(l => l.Ffn is FfnSpec.Moe);
            _queryWidth = value.Count == 0 ? 0 : value.Max(l => l.Attention.QueryWidth);
            _kvWidth = value.Count == 0 ? 0 : value.Max(l => l.Attention.KvWidth);
            _cacheWidth = value.Count == 0 ? 0 : value.Max(l => l.Attention.CacheWidth);
        }
    }
    readonly IReadOnlyList<LayerSpec> _layers = [];
    readonly FfnSpec.Moe? _moe;
    readonly int _moeLayers, _queryWidth, _kvWidth, _cacheWidth;

    /// <summary>The output projection.</summary>
    public LmHeadSpec LmHead { get; init; } = new();
    /// <summary>The token embedding is multiplied by this (Granite's embedding_multiplier).</summary>
    public float EmbeddingScale { get; init; } = 1;
    /// <summary>Each sublayer's output is multiplied by this before it joins the residual stream (Granite's residual_multiplier).</summary>
    public float ResidualScale { get; init; } = 1;
    /// <summary>Trained context length.</summary>
    public required int MaxPositions { get; init; }
    /// <summary>BOS id, if any.</summary>
    public int? BosTokenId { get; init; }
    /// <summary>EOS ids (generation stops on any), possibly empty.</summary>
    public int[] EosTokenIds { get; init; } = [];
    /// <summary>The block formats a <c>daop quantize</c> checkpoint stores its matrices in (quantization_config); null for F32/F16/BF16 checkpoints.</summary>
    public QuantizationConfig? Quantization { get; init; }

    /// <summary>Decoder layers.</summary>
    public int NumLayers => Layers.Count;
    /// <summary>Whether layer <paramref name="layer"/>'s FFN is a MoE block (else a dense MLP).</summary>
    public bool IsMoe(int layer) => Layers[layer].Ffn is FfnSpec.Moe;
    /// <summary>Per layer: true for a MoE block (a fresh array).</summary>
    public bool[] MoeMask() => Layers.Select(l => l.Ffn is FfnSpec.Moe).ToArray();
    /// <summary>Layers whose FFN is a MoE block.</summary>
    public int MoeLayerCount => _moeLayers;
    /// <summary>The first n layers only (benchmarks of a truncated model).</summary>
    public ModelConfig Truncated(int layers) => this with { Layers = Layers.Take(layers).ToArray() };

    /// <summary>Layer 0's attention: what reports show and what the convenience shapes below describe.</summary>
    public AttentionSpec Attention => Layers[0].Attention;
    /// <summary>NH (layer 0).</summary>
    public int NumHeads => Attention.Heads;
    /// <summary>NKV (layer 0).</summary>
    public int NumKvHeads => Attention.KvHeads;
    /// <summary>D (layer 0).</summary>
    public int HeadDim => Attention.HeadDim;
    /// <summary>RoPE parameters (layer 0).</summary>
    public RopeSpec Rope => Attention.Rope;
    /// <summary>Floats per token of q and of the attention output, the widest over layers: the run state's width.</summary>
    public int QueryWidth => _queryWidth;
    /// <summary>Floats per cached position of K and of V, the widest over layers: the KV cache's width.</summary>
    public int KvWidth => _kvWidth;
    /// <summary>
    /// Floats the KV cache holds per position and layer, all streams together, the widest over layers: 2·<see cref="KvWidth"/>
    /// for K and V, r + dr for multi-head latent attention's compressed cache.
    /// </summary>
    public int KvCacheWidth => _cacheWidth;

    /// <summary>The first MoE layer's block, which every MoE layer of the supported families shares; null when all are dense.</summary>
    public FfnSpec.Moe? Moe => _moe;
    /// <summary>E routed experts per MoE layer (0 when there is none).</summary>
    public int NumExperts => Moe?.Experts ?? 0;
    /// <summary>K experts per token.</summary>
    public int TopK => Moe?.TopK ?? 0;
    /// <summary>Intermediate width of each routed expert.</summary>
    public int ExpertIntermediate => Moe?.ExpertIntermediate ?? 0;
    /// <summary>The routing function.</summary>
    public RouterSpec Router => Moe?.Router ?? throw new InvalidOperationException($"{Path}: the model has no MoE layer");

    /// <summary>Bytes-independent parameter count of one routed expert.</summary>
    public long ExpertParams => 3L * HiddenSize * ExpertIntermediate;
}
