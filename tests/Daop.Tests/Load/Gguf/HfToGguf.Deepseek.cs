using System.Text.Json.Nodes;
using Daop.Engine.Load.Safetensors;

namespace Daop.Tests.Load.Gguf;

/// <summary>How a DeepSeek GGUF holds MLA's kv_b_proj [NH·(dn+dv), r].</summary>
public enum MlaLayout
{
    /// <summary>attn_kv_b only (llama.cpp's converter, February 2025).</summary>
    KvB,
    /// <summary>attn_kv_b, plus attn_k_b [NH·r, dn] (W_uk per head, transposed) and attn_v_b [NH·dv, r] (ik_llama.cpp's converter).</summary>
    KvBAndSplit,
    /// <summary>
    /// attn_k_b [NH][r, dn] and attn_v_b [NH][dv, r] as 3-D stacks and no attn_kv_b, with one kv head, key_length r + dr,
    /// value_length r and the per-head widths as key_length_mla / value_length_mla (llama.cpp's converter since April 2025).
    /// </summary>
    Split,
}

static partial class HfToGguf
{
    /// <summary>
    /// DeepseekV2Model of convert_hf_to_gguf.py (DeepSeek-V2 and V3, both as <c>deepseek2</c>): leading dense layers, MLA
    /// tensors under their own names (no q/k permutation: llama.cpp's deepseek2 ropes adjacent pairs, as the checkpoint),
    /// stacked experts, shared experts as <c>*_shexp</c>, V3's e_score_correction_bias as <c>exp_probs_b.bias</c>; MTP
    /// layers past num_hidden_layers are skipped. Group-limited routing as expert_group_count / expert_group_used_count
    /// (the keys later llama.cpp reads; its February 2025 deepseek2 routes without groups).
    /// </summary>
    static GgufWriter Deepseek(string dir, JsonObject cfg, OutType outType, MlaLayout layout)
    {
        const string arch = "deepseek2";
        bool v3 = (string)cfg["model_type"]! == "deepseek_v3";
        var w = new GgufWriter();
        int layers = Int(cfg, "num_hidden_layers"), heads = Int(cfg, "num_attention_heads"), experts = Int(cfg, "n_routed_experts");
        int r = Int(cfg, "kv_lora_rank"), dn = Int(cfg, "qk_nope_head_dim"), dr = Int(cfg, "qk_rope_head_dim"), dv = Int(cfg, "v_head_dim");
        int firstDense = IntOr(cfg, "first_k_dense_replace") ?? (v3 ? 3 : 0);
        if (v3 && cfg["rope_interleave"] is JsonValue ri && !(bool)ri)
            throw new InvalidOperationException("deepseek2 GGUF ropes adjacent pairs: rope_interleave false has no GGUF form");
        bool split = layout == MlaLayout.Split;

        Header(w, arch, dir, cfg, split ? 1 : IntOr(cfg, "num_key_value_heads") ?? heads);
        w.Add($"{arch}.attention.layer_norm_rms_epsilon", (float)(double)cfg["rms_norm_eps"]!);
        w.Add($"{arch}.expert_count", (uint)experts);
        w.Add($"{arch}.expert_used_count", (uint)Int(cfg, "num_experts_per_tok"));
        w.Add("general.file_type", FileType(outType));
        w.Add($"{arch}.leading_dense_block_count", (uint)firstDense);
        w.Add($"{arch}.vocab_size", (uint)Int(cfg, "vocab_size"));
        if (IntOr(cfg, "q_lora_rank") is { } rq) w.Add($"{arch}.attention.q_lora_rank", (uint)rq);
        w.Add($"{arch}.attention.kv_lora_rank", (uint)r);
        w.Add($"{arch}.attention.key_length", (uint)(split ? r + dr : dn + dr));
        w.Add($"{arch}.attention.value_length", (uint)(split ? r : dv));
        if (split)
        {
            w.Add($"{arch}.attention.key_length_mla", (uint)(dn + dr));
            w.Add($"{arch}.attention.value_length_mla", (uint)dv);
        }
        w.Add($"{arch}.expert_feed_forward_length", (uint)Int(cfg, "moe_intermediate_size"));
        w.Add($"{arch}.expert_shared_count", (uint)(IntOr(cfg, "n_shared_experts") ?? 0));
        w.Add($"{arch}.expert_weights_scale", (float)((double?)cfg["routed_scaling_factor"] ?? 1));
        w.Add($"{arch}.expert_weights_norm", (bool?)cfg["norm_topk_prob"] ?? v3);
        w.Add($"{arch}.expert_gating_func", v3 ? 2u : 1u); // sigmoid : softmax
        if (v3 || (string?)cfg["topk_method"] == "group_limited_greedy")
        {
            w.Add($"{arch}.expert_group_count", (uint)(IntOr(cfg, "n_group") ?? 8));
            w.Add($"{arch}.expert_group_used_count", (uint)(IntOr(cfg, "topk_group") ?? 4));
        }
        w.Add($"{arch}.rope.dimension_count", (uint)dr);
        if ((cfg["rope_parameters"] ?? cfg["rope_scaling"]) is JsonObject rope && (string?)(rope["rope_type"] ?? rope["type"]) == "yarn")
        {
            w.Add($"{arch}.rope.scaling.type", "yarn");
            w.Add($"{arch}.rope.scaling.factor", (float)(double)rope["factor"]!);
            w.Add($"{arch}.rope.scaling.original_context_length", (uint)(int)rope["original_max_position_embeddings"]!);
            w.Add($"{arch}.rope.scaling.yarn_log_multiplier", (float)(0.1 * (double)rope["mscale_all_dim"]!));
        }
        Vocabulary(w, dir, Int(cfg, "vocab_size"), IntOr(cfg, "bos_token_id"), IntOr(cfg, "eos_token_id"));

        using var st = TensorStore.OpenDirectory(dir);
        void Emit(string name, float[] data, long[] hfShape) => EmitTensor(w, outType, name, data, hfShape);
        void Copy(string hf, string gguf) { var (d, sh) = st.Floats(hf); Emit(gguf, d, sh); }
        Copy("model.embed_tokens.weight", "token_embd.weight");
        for (int l = 0; l < layers; l++)
        {
            string p = $"model.layers.{l}.", b = $"blk.{l}.";
            Copy($"{p}input_layernorm.weight", $"{b}attn_norm.weight");
            Copy($"{p}post_attention_layernorm.weight", $"{b}ffn_norm.weight");
            foreach (var (hf, gg) in new[] { ("q_proj", "attn_q"), ("q_a_proj", "attn_q_a"), ("q_a_layernorm", "attn_q_a_norm"), ("q_b_proj", "attn_q_b"),
                         ("kv_a_proj_with_mqa", "attn_kv_a_mqa"), ("kv_a_layernorm", "attn_kv_a_norm"), ("o_proj", "attn_output") })
                foreach (string s in new[] { "weight", "bias" })
                    if (st.Contains($"{p}self_attn.{hf}.{s}")) Copy($"{p}self_attn.{hf}.{s}", $"{b}{gg}.{s}");
            var (kvb, kvShape) = st.Floats($"{p}self_attn.kv_b_proj.weight");
            if (!split) Emit($"{b}attn_kv_b.weight", kvb, kvShape);
            if (layout != MlaLayout.KvB)
            {
                // kv_b per head: dn key rows then dv value rows of r. k_b: each head's key rows transposed to [r, dn].
                var kb = new float[heads * r * dn];
                var vb = new float[heads * dv * r];
                for (int h = 0; h < heads; h++)
                    for (int i = 0; i < dn + dv; i++)
                        for (int j = 0; j < r; j++)
                        {
                            float x = kvb[(h * (dn + dv) + i) * r + j];
                            if (i < dn) kb[(h * r + j) * dn + i] = x;
                            else vb[(h * dv + i - dn) * r + j] = x;
                        }
                Emit($"{b}attn_k_b.weight", kb, split ? [heads, r, dn] : [heads * r, dn]);
                Emit($"{b}attn_v_b.weight", vb, split ? [heads, dv, r] : [heads * dv, r]);
            }
            if (l < firstDense)
            {
                foreach (var (hf, gg) in new[] { ("gate_proj", "ffn_gate"), ("up_proj", "ffn_up"), ("down_proj", "ffn_down") })
                    Copy($"{p}mlp.{hf}.weight", $"{b}{gg}.weight");
                continue;
            }
            Copy($"{p}mlp.gate.weight", $"{b}ffn_gate_inp.weight");
            if (st.Contains($"{p}mlp.gate.e_score_correction_bias")) Copy($"{p}mlp.gate.e_score_correction_bias", $"{b}exp_probs_b.bias");
            StackExperts(st, w, outType, p + "mlp.experts", b, experts, ["gate_proj", "up_proj", "down_proj"]);
            if (st.Contains($"{p}mlp.shared_experts.gate_proj.weight"))
                foreach (var (hf, gg) in new[] { ("gate_proj", "ffn_gate_shexp"), ("up_proj", "ffn_up_shexp"), ("down_proj", "ffn_down_shexp") })
                    Copy($"{p}mlp.shared_experts.{hf}.weight", $"{b}{gg}.weight");
        }
        Copy("model.norm.weight", "output_norm.weight");
        Copy("lm_head.weight", "output.weight");
        return w;
    }

    /// <summary>general.file_type of an output type (llama_ftype).</summary>
    static uint FileType(OutType t) => t switch { OutType.F32 => 0u, OutType.F16 => 1u, OutType.BF16 => 32u, _ => 7u };

    /// <summary>Per-expert <c>{prefix}.{e}.{names[k]}.weight</c> stacked into <c>{b}ffn_{gate,up,down}_exps.weight</c> [E, rows, cols].</summary>
    static void StackExperts(TensorStore st, GgufWriter w, OutType outType, string prefix, string b, int experts, string[] names)
    {
        string[] gg = ["ffn_gate_exps", "ffn_up_exps", "ffn_down_exps"];
        for (int k = 0; k < 3; k++)
        {
            var parts = Enumerable.Range(0, experts).Select(e => st.Floats($"{prefix}.{e}.{names[k]}.weight")).ToArray();
            var shape = parts[0].Item2;
            EmitTensor(w, outType, $"{b}{gg[k]}.weight", parts.SelectMany(x => x.Item1).ToArray(), [experts, shape[0], shape[1]]);
        }
    }
}
