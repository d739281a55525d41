using System.Text.Json.Nodes;
using Daop.Engine.Load.Safetensors;

namespace Daop.Tests.Load.Gguf;

static partial class HfToGguf
{
    /// <summary>
    /// Llama4Model of llama.cpp's convert_hf_to_gguf.py (<c>llama4</c>, text model): LlamaModel's keys without its q/k
    /// permutation (the checkpoint already pairs RoPE dimensions adjacently), feed_forward_length from intermediate_size_mlp
    /// (dense layers) and expert_feed_forward_length from intermediate_size, interleave_moe_layer_step; gate_up_proj
    /// [E, H, 2I] transposed and cut into gate (first I rows) and up; down_proj transposed. llama.cpp fixes the NoPE layers
    /// (every fourth), the chunk (8192) and the temperature (floor 8192, scale 0.1): the fixture's own chunk and
    /// temperature go to attention.sliding_window, attention.temperature_length and attention.temperature_scale (keys
    /// llama.cpp's llama4 does not read), and a layout llama.cpp cannot express fails.
    /// </summary>
    static GgufWriter Llama4(string dir, JsonObject cfg, OutType outType)
    {
        const string arch = "llama4";
        int layers = Int(cfg, "num_hidden_layers"), hidden = Int(cfg, "hidden_size"), heads = Int(cfg, "num_attention_heads");
        int experts = Int(cfg, "num_local_experts"), inter = Int(cfg, "intermediate_size"), step = IntOr(cfg, "interleave_moe_layer_step") ?? 1;
        int headDim = IntOr(cfg, "head_dim") ?? hidden / heads;
        bool Moe(int l) => (l + 1) % step == 0;
        if (cfg["moe_layers"] is JsonArray moe && !moe.Select(x => (int)x!).Order().SequenceEqual(Enumerable.Range(0, layers).Where(Moe)))
            throw new InvalidOperationException("llama.cpp's llama4 puts MoE in every interleave_moe_layer_step-th layer: this moe_layers has no GGUF form");
        if (cfg["no_rope_layers"] is JsonArray rope && rope.Select((x, l) => ((int)x! != 0) != ((l + 1) % 4 != 0)).Any(x => x))
            throw new InvalidOperationException("llama.cpp's llama4 leaves RoPE out of every fourth layer: this no_rope_layers has no GGUF form");
        if ((bool?)cfg["attn_temperature_tuning"] == false || ((bool?)cfg["use_qk_norm"] ?? true) != (experts != 128))
            throw new InvalidOperationException("llama.cpp's llama4 tunes the NoPE layers' temperature and norms q/k except with 128 experts");
        var w = new GgufWriter();
        Header(w, arch, dir, cfg, IntOr(cfg, "num_key_value_heads") ?? heads, ffField: "intermediate_size_mlp");
        w.Add($"{arch}.attention.layer_norm_rms_epsilon", (float)(double)cfg["rms_norm_eps"]!);
        w.Add($"{arch}.expert_count", (uint)experts);
        w.Add($"{arch}.expert_used_count", (uint)Int(cfg, "num_experts_per_tok"));
        w.Add($"{arch}.attention.key_length", (uint)headDim);
        w.Add($"{arch}.attention.value_length", (uint)headDim);
        w.Add("general.file_type", FileType(outType));
        w.Add($"{arch}.vocab_size", (uint)Int(cfg, "vocab_size"));
        w.Add($"{arch}.rope.dimension_count", (uint)headDim);
        w.Add($"{arch}.interleave_moe_layer_step", (uint)step);
        w.Add($"{arch}.expert_feed_forward_length", (uint)inter);
        w.Add($"{arch}.attention.sliding_window", (uint)(IntOr(cfg, "attention_chunk_size") ?? 8192));
        w.Add($"{arch}.attention.temperature_length", (uint)(IntOr(cfg, "floor_scale") ?? 8192));
        w.Add($"{arch}.attention.temperature_scale", (float)((double?)cfg["attn_scale"] ?? 0.1));
        Vocabulary(w, dir, Int(cfg, "vocab_size"), IntOr(cfg, "bos_token_id"), IntOr(cfg, "eos_token_id"));

        using var st = TensorStore.OpenDirectory(dir);
        void Emit(string name, float[] data, long[] hfShape) => EmitTensor(w, outType, name, data, hfShape);
        void Copy(string hf, string gguf) { var (d, sh) = st.Floats(hf); Emit(gguf, d, sh); }
        Copy("model.embed_tokens.weight", "token_embd.weight");
        if (RopeFactors(cfg, headDim) is { } factors) Emit("rope_freqs.weight", factors, [factors.Length]);
        for (int l = 0; l < layers; l++)
        {
            string p = $"model.layers.{l}.", b = $"blk.{l}.", f = $"{p}feed_forward.";
            Copy($"{p}input_layernorm.weight", $"{b}attn_norm.weight");
            Copy($"{p}post_attention_layernorm.weight", $"{b}ffn_norm.weight");
            foreach (var (hf, gg) in new[] { ("q_proj", "attn_q"), ("k_proj", "attn_k"), ("v_proj", "attn_v"), ("o_proj", "attn_output") })
                Copy($"{p}self_attn.{hf}.weight", $"{b}{gg}.weight");
            if (!Moe(l))
            {
                foreach (var (hf, gg) in new[] { ("gate_proj", "ffn_gate"), ("up_proj", "ffn_up"), ("down_proj", "ffn_down") })
                    Copy($"{f}{hf}.weight", $"{b}{gg}.weight");
                continue;
            }
            Copy($"{f}router.weight", $"{b}ffn_gate_inp.weight");
            var (gu, _) = st.Floats(f + "experts.gate_up_proj");  // [E, H, 2I]: [in, out], gate then up
            var (dn, _) = st.Floats(f + "experts.down_proj");     // [E, I, H]: [in, out]
            var gate = new float[experts * inter * hidden];
            var up = new float[gate.Length];
            var down = new float[gate.Length];
            for (int e = 0; e < experts; e++)
                for (int i = 0; i < inter; i++)
                    for (int h = 0; h < hidden; h++)
                    {
                        gate[(e * inter + i) * hidden + h] = gu[(e * hidden + h) * 2 * inter + i];
                        up[(e * inter + i) * hidden + h] = gu[(e * hidden + h) * 2 * inter + inter + i];
                        down[(e * hidden + h) * inter + i] = dn[(e * inter + i) * hidden + h];
                    }
            Emit($"{b}ffn_gate_exps.weight", gate, [experts, inter, hidden]);
            Emit($"{b}ffn_up_exps.weight", up, [experts, inter, hidden]);
            Emit($"{b}ffn_down_exps.weight", down, [experts, hidden, inter]);
            foreach (var (hf, gg) in new[] { ("gate_proj", "ffn_gate_shexp"), ("up_proj", "ffn_up_shexp"), ("down_proj", "ffn_down_shexp") })
                Copy($"{f}shared_expert.{hf}.weight", $"{b}{gg}.weight");
        }
        Copy("model.norm.weight", "output_norm.weight");
        Copy("lm_head.weight", "output.weight");
        return w;
    }
}
