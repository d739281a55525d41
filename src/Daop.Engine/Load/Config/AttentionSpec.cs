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
    /// <summary>Floats per token of the run state's k and v: for GQA those of each cached position's K and of its V.</summary>
    public virtual int KvWidth => KvHeads * HeadDim;
    /// <summary>Width of each rotated head (before <see cref="RopeSpec.PartialRotaryFactor"/>): the RoPE table's.</summary>
    public virtual int RopeDim => HeadDim;
    /// <summary>Floats the KV cache holds per position, all streams together: K and V (2·<see cref="KvWidth"/>) unless the kind caches less.</summary>
    public virtual int CacheWidth => 2 * KvWidth;

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

    /// <summary>
    /// Multi-head latent attention (DeepSeek-V2/V3; transformers' DeepseekV2Attention): q = xn·Wqᵀ, or with a q LoRA
    /// q = norm(xn·Wqaᵀ)·Wqbᵀ, per head [dn nope | dr rope]; xn·Wkvaᵀ = [c (r) | k_pe (dr)], c normalised (kv_a_layernorm)
    /// and k_pe roped, one k_pe shared by all heads; per head k = [W_uk,h·c | k_pe], v = W_uv,h·c from kv_b_proj
    /// [NH·(dn + dv), r]; softmax(q·k·<see cref="Scale"/>)·v; o_proj [H, NH·dv]. Only c and the roped k_pe are cached
    /// (r + dr floats per position, <see cref="CacheWidth"/>): W_uk is absorbed into q and W_uv applied after the weighted sum.
    /// <see cref="AttentionSpec.HeadDim"/> is dn + dr (the score's width), <see cref="AttentionSpec.KvHeads"/> 1 (one latent).
    /// </summary>
    /// <param name="Heads">NH.</param>
    /// <param name="Rope">RoPE of the dr rotated dims (YaRN for the released models).</param>
    /// <param name="KvRank">r: kv_lora_rank.</param>
    /// <param name="NopeDim">dn: qk_nope_head_dim.</param>
    /// <param name="RopeHeadDim">dr: qk_rope_head_dim.</param>
    /// <param name="ValueDim">dv: v_head_dim.</param>
    public sealed record Mla(int Heads, RopeSpec Rope, int KvRank, int NopeDim, int RopeHeadDim, int ValueDim)
        : AttentionSpec(Heads, 1, NopeDim + RopeHeadDim, Rope)
    {
        /// <summary>rq: q_lora_rank, or null for a plain q_proj (V2-Lite).</summary>
        public int? QRank { get; init; }
        /// <summary>q_a_proj, kv_a_proj_with_mqa and o_proj carry biases (attention_bias).</summary>
        public bool Bias { get; init; }
        /// <summary>RoPE pairs dims (2i, 2i+1) (V2, V3's rope_interleave) rather than (i, i + dr/2).</summary>
        public bool RopeInterleaved { get; init; } = true;

        /// <summary>
        /// The score scale: (dn + dr)^−½, times mscale(factor, mscale_all_dim)² for scaled RoPE with mscale_all_dim
        /// (transformers' yarn_apply_mscale).
        /// </summary>
        public float Scale
        {
            get
            {
                double s = 1 / Math.Sqrt(NopeDim + RopeHeadDim);
                if (Rope.Type != "default" && Rope.MscaleAllDim is { } all && all != 0)
                {
                    double m = RopeSpec.YarnMscale(Rope.Factor, all);
                    s *= m * m;
                }
                return (float)s;
            }
        }

        /// <summary>
        /// The widest per-token buffer the layer uses from the run state's q and ctx: q [NH·(dn+dr)], the absorbed query
        /// [NH·(r+dr)], the q LoRA's [rq] and the output before o_proj [NH·dv].
        /// </summary>
        public override int QueryWidth => Math.Max(Heads * Math.Max(NopeDim + RopeHeadDim, Math.Max(KvRank + RopeHeadDim, ValueDim)), QRank ?? 0);
        /// <summary>The run state's k and v rows: c [r] and k_pe [dr].</summary>
        public override int KvWidth => KvRank + RopeHeadDim;
        /// <inheritdoc />
        public override int RopeDim => RopeHeadDim;
        /// <summary>c and the roped k_pe: r + dr floats per position, one stream.</summary>
        public override int CacheWidth => KvRank + RopeHeadDim;
    }

    /// <summary>
    /// Grouped-query attention with attention sinks (GPT-OSS): as <see cref="Gqa"/> with q/k/v/o biases, but each head
    /// h has a learned logit s_h that joins every query's softmax denominator and adds nothing to the output:
    /// o = Σ_j exp(a_j − m)·v_j / (Σ_j exp(a_j − m) + exp(s_h − m)), m the max over the a_j and s_h. A separate record
    /// because the sinks are weights ([NH]) the layer loads and a term every device's attention kernel must add.
    /// </summary>
    public sealed record SinkGqa(int Heads, int KvHeads, int HeadDim, RopeSpec Rope) : AttentionSpec(Heads, KvHeads, HeadDim, Rope)
    {
        /// <summary>Attend only to the last W positions, if set (GPT-OSS's sliding_attention layers).</summary>
        public int? SlidingWindow { get; init; }
        /// <summary>q/k/v/o projections carry biases (attention_bias).</summary>
        public bool Bias { get; init; }
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
