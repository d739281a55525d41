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
    /// <summary>Router [E, H]; null for a family without one (a dense model's FFN as a single expert).</summary>
    public required string? Router { get; init; }
    /// <summary>The router's selection bias [E] (DeepSeek-V3's e_score_correction_bias), for routers that read one.</summary>
    public string? RouterScoreBias { get; init; }
    /// <summary>The router carries a bias [E] (<see cref="Router"/>'s <see cref="Bias"/> name; GPT-OSS).</summary>
    public bool RouterBias { get; init; }
    /// <summary>Expert gate projection [I, H]; null when <see cref="ExpertGateUp"/> holds it.</summary>
    public string? ExpertGate { get; init; }
    /// <summary>Expert up projection [I, H]; null when <see cref="ExpertGateUp"/> holds it.</summary>
    public string? ExpertUp { get; init; }
    /// <summary>An expert's gate and up projections in one [2I, H] matrix, gate rows first (Granite-MoE's input_linear), or null.</summary>
    public string? ExpertGateUp { get; init; }
    /// <summary>Expert down projection [H, I].</summary>
    public required string ExpertDown { get; init; }
    /// <summary>Shared expert gate projection, if any.</summary>
    public string? SharedGate { get; init; }
    /// <summary>Shared expert up projection, if any.</summary>
    public string? SharedUp { get; init; }
    /// <summary>The shared expert's gate and up projections in one [2S, H] matrix, gate rows first (Granite-MoE-Shared's shared_mlp.input_linear), or null.</summary>
    public string? SharedGateUp { get; init; }
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
    /// <remarks>
    /// Matrix e of a GGUF stack, <c>x.weight[e]</c>, has its bias as row e of the stacked biases, <c>x.bias[e]</c>; a name of
    /// alternatives (<c>a|b</c>) has the alternatives' biases.
    /// </remarks>
    public static string Bias(string weightName) =>
        weightName.Contains('|', StringComparison.Ordinal) ? string.Join('|', weightName.Split('|').Select(Bias))
        : weightName.EndsWith(".weight", StringComparison.Ordinal) ? weightName[..^".weight".Length] + ".bias"
        : weightName.EndsWith(']') && weightName.LastIndexOf(".weight[", StringComparison.Ordinal) is var at and > 0
            && weightName.IndexOf(']', at) == weightName.Length - 1
            ? weightName[..at] + ".bias" + weightName[(at + ".weight".Length)..]
            : weightName + ".bias";
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

/// <summary>Multi-head latent attention's tensors (<see cref="Layers.MlaAttention"/>; DeepSeek's hub layout).</summary>
public sealed record MlaNames : AttentionNames
{
    /// <summary>Query projection [NH·(dn+dr), H], without a q LoRA.</summary>
    public string Q { get; init; } = "model.layers.{l}.self_attn.q_proj.weight";
    /// <summary>q LoRA down-projection [rq, H].</summary>
    public string QA { get; init; } = "model.layers.{l}.self_attn.q_a_proj.weight";
    /// <summary>q LoRA norm [rq].</summary>
    public string QANorm { get; init; } = "model.layers.{l}.self_attn.q_a_layernorm.weight";
    /// <summary>q LoRA up-projection [NH·(dn+dr), rq].</summary>
    public string QB { get; init; } = "model.layers.{l}.self_attn.q_b_proj.weight";
    /// <summary>Latent and shared rope key [r + dr, H].</summary>
    public string KvA { get; init; } = "model.layers.{l}.self_attn.kv_a_proj_with_mqa.weight";
    /// <summary>Latent norm [r].</summary>
    public string KvANorm { get; init; } = "model.layers.{l}.self_attn.kv_a_layernorm.weight";
    /// <summary>Key-nope and value up-projection [NH·(dn+dv), r].</summary>
    public string KvB { get; init; } = "model.layers.{l}.self_attn.kv_b_proj.weight";
    /// <summary>
    /// W_uk per head, transposed, [NH·r, dn] (or a stack [NH][r, dn]): read where the file has no <see cref="KvB"/>
    /// (GGUF files from llama.cpp's converters since April 2025 split kv_b into attn_k_b and attn_v_b); null: none.
    /// </summary>
    public string? KB { get; init; }
    /// <summary>W_uv per head [NH·dv, r] (or a stack [NH][dv, r]), with <see cref="KB"/>.</summary>
    public string? VB { get; init; }
    /// <summary>Output projection [H, NH·dv].</summary>
    public string O { get; init; } = "model.layers.{l}.self_attn.o_proj.weight";
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
