namespace Daop.Engine.Model.Families;

/// <summary>
/// A family's Hugging Face tensor names, with <c>{l}</c> for the layer and <c>{e}</c> for the expert.
/// Null entries are tensors the family does not have.
/// </summary>
public sealed record TensorNames
{
    /// <summary>Token embedding [V, H].</summary>
    public string Embed { get; init; } = "model.embed_tokens.weight";
    /// <summary>Final norm weight [H].</summary>
    public string FinalNorm { get; init; } = "model.norm.weight";
    /// <summary>LM head [V, H].</summary>
    public string LmHead { get; init; } = "lm_head.weight";
    /// <summary>Pre-attention norm [H].</summary>
    public string AttnNorm { get; init; } = "model.layers.{l}.input_layernorm.weight";
    /// <summary>Pre-FFN norm [H].</summary>
    public string FfnNorm { get; init; } = "model.layers.{l}.post_attention_layernorm.weight";
    /// <summary>The attention's tensors: the table of the attention layer the family's <c>AttentionSpec</c> picks.</summary>
    public AttentionNames Attention { get; init; } = new GqaNames();
    /// <summary>Router [E, H].</summary>
    public required string Router { get; init; }
    /// <summary>The router carries a bias [E] (<see cref="Router"/>'s <see cref="Bias"/> name; GPT-OSS).</summary>
    public bool RouterBias { get; init; }
    /// <summary>Expert gate projection [I, H].</summary>
    public required string ExpertGate { get; init; }
    /// <summary>Expert up projection [I, H].</summary>
    public required string ExpertUp { get; init; }
    /// <summary>Expert down projection [H, I].</summary>
    public required string ExpertDown { get; init; }
    /// <summary>Shared expert gate projection, if any.</summary>
    public string? SharedGate { get; init; }
    /// <summary>Shared expert up projection, if any.</summary>
    public string? SharedUp { get; init; }
    /// <summary>Shared expert down projection, if any.</summary>
    public string? SharedDown { get; init; }
    /// <summary>Sigmoid gate of a sigmoid-gated shared expert [1, H], if any.</summary>
    public string? SharedExpertGate { get; init; }
    /// <summary>Dense MLP of non-MoE layers.</summary>
    public string DenseGate { get; init; } = "model.layers.{l}.mlp.gate_proj.weight";
    /// <summary>Dense MLP up.</summary>
    public string DenseUp { get; init; } = "model.layers.{l}.mlp.up_proj.weight";
    /// <summary>Dense MLP down.</summary>
    public string DenseDown { get; init; } = "model.layers.{l}.mlp.down_proj.weight";

    /// <summary>Fills in the layer and expert placeholders.</summary>
    public static string Format(string pattern, int layer, int expert = -1) =>
        pattern.Replace("{l}", layer.ToString(System.Globalization.CultureInfo.InvariantCulture))
               .Replace("{e}", expert.ToString(System.Globalization.CultureInfo.InvariantCulture));

    /// <summary>The bias tensor that goes with a weight name.</summary>
    public static string Bias(string weightName) =>
        weightName.EndsWith(".weight", StringComparison.Ordinal) ? weightName[..^".weight".Length] + ".bias" : weightName + ".bias";
}

/// <summary>Tensor names of one kind of attention layer; each attention layer declares the record it reads.</summary>
public abstract record AttentionNames;

/// <summary>Grouped-query attention's tensors (<see cref="Layers.GqaAttention"/>).</summary>
public sealed record GqaNames : AttentionNames
{
    /// <summary>Query projection [NH·D, H].</summary>
    public string Q { get; init; } = "model.layers.{l}.self_attn.q_proj.weight";
    /// <summary>Key projection [NKV·D, H].</summary>
    public string K { get; init; } = "model.layers.{l}.self_attn.k_proj.weight";
    /// <summary>Value projection [NKV·D, H].</summary>
    public string V { get; init; } = "model.layers.{l}.self_attn.v_proj.weight";
    /// <summary>Output projection [H, NH·D].</summary>
    public string O { get; init; } = "model.layers.{l}.self_attn.o_proj.weight";
    /// <summary>q norm weight.</summary>
    public string QNorm { get; init; } = "model.layers.{l}.self_attn.q_norm.weight";
    /// <summary>k norm weight.</summary>
    public string KNorm { get; init; } = "model.layers.{l}.self_attn.k_norm.weight";
}

/// <summary>Sink attention's tensors (<see cref="Layers.SinkAttention"/>): GQA's projections plus the per-head sinks.</summary>
public sealed record SinkGqaNames : AttentionNames
{
    /// <summary>Query projection [NH·D, H].</summary>
    public string Q { get; init; } = "model.layers.{l}.self_attn.q_proj.weight";
    /// <summary>Key projection [NKV·D, H].</summary>
    public string K { get; init; } = "model.layers.{l}.self_attn.k_proj.weight";
    /// <summary>Value projection [NKV·D, H].</summary>
    public string V { get; init; } = "model.layers.{l}.self_attn.v_proj.weight";
    /// <summary>Output projection [H, NH·D].</summary>
    public string O { get; init; } = "model.layers.{l}.self_attn.o_proj.weight";
    /// <summary>Sink logits [NH].</summary>
    public string Sinks { get; init; } = "model.layers.{l}.self_attn.sinks";
}
