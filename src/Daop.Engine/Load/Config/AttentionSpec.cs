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
    /// clamp to ±<see cref="ClipQkv"/> and q/k norm; RoPE; causal softmax(q·kᵀ/√D)·v with query head h reading kv
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
public sealed record QkNormSpec(QkNormScope Scope, NormSpec Norm);
