namespace Daop.Engine.Load.Config;

/// <summary>
/// One decoder layer's attention, picked by the family file; <see cref="Model.Layers.AttentionLayer.Load"/> makes the
/// layer for its record type. A closed set of sealed records: a new mechanism (multi-head latent attention with a
/// compressed KV and decoupled RoPE, attention sinks) is a new record here plus a new attention layer, never a flag on
/// <see cref="Gqa"/>; per-layer variation (alternating sliding and full windows) is a different value per layer.
/// What every kind has: NH query heads, NKV heads whose keys and values are cached, head dim D, and RoPE.
/// </summary>
/// <param name="Heads">NH.</param>
/// <param name="KvHeads">NKV: heads whose keys and values are cached.</param>
/// <param name="HeadDim">D.</param>
/// <param name="Rope">RoPE of q and k.</param>
public abstract record AttentionSpec(int Heads, int KvHeads, int HeadDim, RopeSpec Rope)
{
    /// <summary>Floats per token of q and of the attention output before o_proj.</summary>
    public virtual int QueryWidth => Heads * HeadDim;
    /// <summary>Floats per cached position, each of K and V.</summary>
    public virtual int KvWidth => KvHeads * HeadDim;
    /// <summary>Width of each rotated head (before <see cref="RopeSpec.PartialRotaryFactor"/>): the RoPE table's.</summary>
    public virtual int RopeDim => HeadDim;

    /// <summary>
    /// Grouped-query attention (Mixtral, Qwen, OLMoE, PhiMoE): q, k, v = xn·Wqᵀ, xn·Wkᵀ, xn·Wvᵀ (+ biases); optional
    /// clamp to ±<see cref="ClipQkv"/> and q/k norm; RoPE; causal softmax(q·kᵀ/√D, or ·<see cref="SoftmaxScale"/>)·v with query head h reading kv
    /// head h / (NH / NKV), over the last <see cref="SlidingWindow"/> positions if set; o_proj (+ bias).
    /// </summary>
    public sealed record Gqa(int Heads, int KvHeads, int HeadDim, RopeSpec Rope) : AttentionSpec(Heads, KvHeads, HeadDim, Rope)
    {
        /// <summary>q/k normalisation, if any.</summary>
        public QkNormSpec? QkNorm { get; init; }
        /// <summary>q/k/v projections carry a bias.</summary>
        public bool QkvBias { get; init; }
        /// <summary>o projection carries a bias.</summary>
        public bool OBias { get; init; }
        /// <summary>Clamp q, k, v to ±this after projection (OLMoE clip_qkv), if set.</summary>
        public float? ClipQkv { get; init; }
        /// <summary>Attend only to the last W positions, if set.</summary>
        public int? SlidingWindow { get; init; }
        /// <summary>The scale of q·kᵀ when it is not 1/√D (Granite's attention_multiplier).</summary>
        public float? SoftmaxScale { get; init; }
        /// <summary>Attend only within aligned chunks of C positions (a query at p sees p − p mod C .. p), if set (Llama-4).</summary>
        public int? Chunk { get; init; }
        /// <summary>No RoPE in this layer (Llama-4's NoPE layers).</summary>
        public bool SkipRope { get; init; }
        /// <summary>Scale q by its position's attention temperature, if set (Llama-4's NoPE layers).</summary>
        public QueryTemperature? Temperature { get; init; }
    }
}

/// <summary>What a q/k norm normalises over.</summary>
public enum QkNormScope
{
    /// <summary>Each head's D values (Qwen3-MoE).</summary>
    PerHead,
    /// <summary>The whole q (or k) projection, before splitting into heads (OLMoE).</summary>
    Whole,
}

/// <summary>A norm of q and of k after projection: its scope and the norm.</summary>
public sealed record QkNormSpec(QkNormScope Scope, NormSpec Norm)
{
    /// <summary>
    /// The norm has no weight (Llama-4's L2 norm: x / rms(x) per head). transformers applies it after RoPE; a rotation
    /// keeps each head's rms, so before RoPE is the same map.
    /// </summary>
    public bool Weightless { get; init; }
}

/// <summary>
/// Llama-4's attention temperature: q at position p is multiplied by 1 + <paramref name="Scale"/>·ln(1 + ⌊(p + 1) /
/// <paramref name="FloorScale"/>⌋), so long-range NoPE attention sharpens with distance.
/// </summary>
public sealed record QueryTemperature(int FloorScale, float Scale)
{
    /// <summary>The factor at position <paramref name="pos"/>.</summary>
    public float At(int pos) => (float)(Math.Log(1 + Math.Floor((pos + 1.0) / FloorScale)) * Scale + 1);
}
