namespace Daop.Engine.Load.Config;

/// <summary>
/// RoPE frequency scaling, from rope_parameters / rope_scaling. <c>InvFreqDType</c> ("bfloat16", "float16"
/// or null) rounds the inverse frequencies to the checkpoint dtype: transformers builds its rotary
/// embedding's inv_freq buffer in fp32 at init and casts it with the model when the checkpoint loads in
/// bf16, so its "fp32" forward still sees bf16-rounded frequencies. Matching it needs the same rounding.
/// <c>Truncate</c> (yarn): round the correction range outwards to whole dimensions (transformers' default; GPT-OSS
/// sets truncate false).
/// </summary>
public sealed record RopeSpec(
    double Theta,
    string Type,                 // default | linear | llama3 | longrope | yarn | factors
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
    string? InvFreqDType = null,
    double[]? FreqFactors = null,   // type "factors": each pair's frequency divided by its factor (GGUF's rope_freqs, Llama 3)
    bool Truncate = true)           // yarn: round the correction range to whole dimensions (GPT-OSS sets false)
{
    /// <summary>YaRN's mscale (DeepSeek): with <see cref="MscaleAllDim"/>, the attention factor is mscale(factor, Mscale) / mscale(factor, MscaleAllDim).</summary>
    public double? Mscale { get; init; }
    /// <summary>YaRN's mscale_all_dim (DeepSeek): also scales MLA's softmax by mscale(factor, MscaleAllDim)².</summary>
    public double? MscaleAllDim { get; init; }

    /// <summary>transformers' yarn get_mscale: 1 for scale ≤ 1, else 0.1·mscale·ln(scale) + 1.</summary>
    public static double YarnMscale(double scale, double mscale = 1) => scale <= 1 ? 1 : 0.1 * mscale * Math.Log(scale) + 1;
}
