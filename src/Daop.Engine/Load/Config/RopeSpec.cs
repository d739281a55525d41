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
    string? InvFreqDType = null,
    bool Truncate = true);
