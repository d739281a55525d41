namespace Daop.Engine.Load.Config;

/// <summary>How the per-layer norms are computed.</summary>
public enum NormKind
{
    /// <summary>x / rms(x) · w.</summary>
    RmsNorm,
    /// <summary>(x − mean) / std · w + b.</summary>
    LayerNorm,
}

/// <summary>Where q/k normalisation applies, if anywhere.</summary>
public enum QkNormKind
{
    /// <summary>No q/k norm (Mixtral, Qwen2-MoE, PhiMoE).</summary>
    None,
    /// <summary>RMSNorm over each head's head_dim (Qwen3-MoE).</summary>
    PerHead,
    /// <summary>RMSNorm over the whole q (or k) projection, before splitting into heads (OLMoE).</summary>
    Full,
}

/// <summary>
/// RoPE frequency scaling, from rope_parameters / rope_scaling. <c>InvFreqDType</c> ("bfloat16", "float16"
/// or null) rounds the inverse frequencies to the checkpoint dtype: transformers builds its rotary
/// embedding's inv_freq buffer in fp32 at init and casts it with the model when the checkpoint loads in
/// bf16, so its "fp32" forward still sees bf16-rounded frequencies. Matching it needs the same rounding.
/// </summary>
public sealed record RopeSpec(
    double Theta,
    string Type,                 // default | linear | llama3 | longrope | yarn
    double Factor = 1,
    double[]? ShortFactor = null,
    double[]? LongFactor = null,
    int OriginalMaxPositions = 0,
    double LowFreqFactor = 1,
    double HighFreqFactor = 4,
    double PartialRotaryFactor = 1,
    double? AttentionFactor = null,
    double BetaFast = 32,
    double BetaSlow = 1,
    string? InvFreqDType = null);

/// <summary>
/// Everything the shared layers need to know about a model, parsed once from config.json by a family
/// file. Shapes use the HF names: hidden H, heads NH, kv heads NKV, head dim D, experts E, top-k K.
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
    /// <summary>Decoder layers.</summary>
    public required int NumLayers { get; init; }
    /// <summary>NH.</summary>
    public required int NumHeads { get; init; }
    /// <summary>NKV (GQA groups).</summary>
    public required int NumKvHeads { get; init; }
    /// <summary>D.</summary>
    public required int HeadDim { get; init; }
    /// <summary>E routed experts per MoE layer.</summary>
    public required int NumExperts { get; init; }
    /// <summary>K experts per token.</summary>
    public required int TopK { get; init; }
    /// <summary>Intermediate width of each routed expert.</summary>
    public required int ExpertIntermediate { get; init; }
    /// <summary>Intermediate width of the shared expert, 0 when there is none.</summary>
    public int SharedIntermediate { get; init; }
    /// <summary>Intermediate width of dense (non-MoE) MLP layers.</summary>
    public int DenseIntermediate { get; init; }
    /// <summary>Per layer: true for a MoE block, false for a dense MLP.</summary>
    public required bool[] MoeLayers { get; init; }
    /// <summary>Norm flavour and epsilon.</summary>
    public required NormKind Norm { get; init; }
    /// <summary>Norm epsilon.</summary>
    public required float NormEps { get; init; }
    /// <summary>q/k norm placement.</summary>
    public QkNormKind QkNorm { get; init; }
    /// <summary>q/k/v projections carry a bias.</summary>
    public bool QkvBias { get; init; }
    /// <summary>o projection carries a bias.</summary>
    public bool OBias { get; init; }
    /// <summary>lm_head carries a bias.</summary>
    public bool LmHeadBias { get; init; }
    /// <summary>Clamp q/k/v to ±this after projection (OLMoE clip_qkv), if set.</summary>
    public float? ClipQkv { get; init; }
    /// <summary>The routing function.</summary>
    public required RouterSpec Router { get; init; }
    /// <summary>RoPE parameters.</summary>
    public required RopeSpec Rope { get; init; }
    /// <summary>Trained context length.</summary>
    public required int MaxPositions { get; init; }
    /// <summary>Attend only to the last W positions, if set.</summary>
    public int? SlidingWindow { get; init; }
    /// <summary>lm_head shares the embedding matrix.</summary>
    public bool TieWordEmbeddings { get; init; }
    /// <summary>BOS id, if any.</summary>
    public int? BosTokenId { get; init; }
    /// <summary>EOS ids (generation stops on any), possibly empty.</summary>
    public int[] EosTokenIds { get; init; } = [];

    /// <summary>Bytes-independent parameter count of one routed expert.</summary>
    public long ExpertParams => 3L * HiddenSize * ExpertIntermediate;
}
