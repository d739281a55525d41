using System.Text.Json.Nodes;
using Daop.Engine.Load.Gguf;
using Daop.Engine.Load.Safetensors;
using Daop.Kernels.Quant;

namespace Daop.Tests.Load.Gguf;

static partial class HfToGguf
{
    /// <summary>
    /// GptOssModel of llama.cpp's convert_hf_to_gguf.py (August 2025, <c>gpt-oss</c>): the hub's MXFP4 experts repacked into
    /// GGUF MXFP4 (scale byte, then codes j and j+16 per byte: <see cref="HubMxfp4"/>), gate from the even rows of
    /// gate_up_proj and up from the odd ones; float experts transposed to [E, out, in] and split alike; biases split as
    /// <c>ffn_{gate,up,down}_exps.bias</c>; sinks as <c>attn_sinks.weight</c>; the pre-FFN norm as <c>post_attention_norm</c>.
    /// llama.cpp fixes the sliding layers (the even ones) and the SwiGLU limit (7): a config that differs has no GGUF form.
    /// </summary>
    static GgufWriter GptOss(string dir, JsonObject cfg, OutType outType)
    {
        const string arch = "gpt-oss";
        int layers = Int(cfg, "num_hidden_layers"), hidden = Int(cfg, "hidden_size"), experts = Int(cfg, "num_local_experts");
        int inter = Int(cfg, "intermediate_size");
        if (cfg["layer_types"] is JsonArray types && types.Select((t, l) => ((string)t! == "sliding_attention") != (l % 2 == 0)).Any(x => x))
            throw new InvalidOperationException("llama.cpp's gpt-oss slides the even layers only: this layer_types has no GGUF form");
        if ((double?)cfg["swiglu_limit"] is { } limit && limit != 7.0)
            throw new InvalidOperationException($"llama.cpp's gpt-oss fixes swiglu_limit at 7: {limit} has no GGUF form");
        var w = new GgufWriter();
        Header(w, arch, dir, cfg, IntOr(cfg, "num_key_value_heads") ?? Int(cfg, "num_attention_heads"));
        w.Add($"{arch}.attention.layer_norm_rms_epsilon", (float)(double)cfg["rms_norm_eps"]!);
        w.Add($"{arch}.expert_count", (uint)experts);
        w.Add($"{arch}.expert_used_count", (uint)Int(cfg, "num_experts_per_tok"));
        if (IntOr(cfg, "head_dim") is { } hd)
        {
            w.Add($"{arch}.attention.key_length", (uint)hd);
            w.Add($"{arch}.attention.value_length", (uint)hd);
        }
        w.Add("general.file_type", FileType(outType));
        w.Add($"{arch}.attention.sliding_window", (uint)Int(cfg, "sliding_window"));
        w.Add($"{arch}.expert_feed_forward_length", (uint)inter);
        var rope = (cfg["rope_parameters"] ?? cfg["rope_scaling"]) as JsonObject ?? throw new InvalidOperationException("GPT-OSS needs yarn RoPE scaling");
        w.Add($"{arch}.rope.scaling.type", "yarn");
        w.Add($"{arch}.rope.scaling.factor", (float)(double)rope["factor"]!);
        w.Add($"{arch}.rope.scaling.original_context_length", (uint)((int?)rope["original_max_position_embeddings"] ?? 4096));
        Vocabulary(w, dir, Int(cfg, "vocab_size"), IntOr(cfg, "bos_token_id"), IntOr(cfg, "eos_token_id"));

        using var st = TensorStore.OpenDirectory(dir);
        void Emit(string name, float[] data, long[] hfShape) => EmitTensor(w, outType, name, data, hfShape);
        void Copy(string hf, string gguf) { var (d, sh) = st.Floats(hf); Emit(gguf, d, sh); }
        Copy("model.embed_tokens.weight", "token_embd.weight");
        for (int l = 0; l < layers; l++)
        {
            string p = $"model.layers.{l}.", b = $"blk.{l}.";
            Copy($"{p}input_layernorm.weight", $"{b}attn_norm.weight");
            Copy($"{p}post_attention_layernorm.weight", $"{b}post_attention_norm.weight");
            foreach (var (hf, gg) in new[] { ("q_proj", "attn_q"), ("k_proj", "attn_k"), ("v_proj", "attn_v"), ("o_proj", "attn_output") })
                foreach (string s in new[] { "weight", "bias" })
                    if (st.Contains($"{p}self_attn.{hf}.{s}")) Copy($"{p}self_attn.{hf}.{s}", $"{b}{gg}.{s}");
            Copy($"{p}self_attn.sinks", $"{b}attn_sinks.weight");
            Copy($"{p}mlp.router.weight", $"{b}ffn_gate_inp.weight");
            Copy($"{p}mlp.router.bias", $"{b}ffn_gate_inp.bias");
            string x = $"{p}mlp.experts.";
            var (gub, _) = st.Floats(x + "gate_up_proj_bias");           // [E, 2I], gate and up interleaved
            Emit($"{b}ffn_gate_exps.bias", Every(gub, 0), [experts, inter]);
            Emit($"{b}ffn_up_exps.bias", Every(gub, 1), [experts, inter]);
            Copy(x + "down_proj_bias", $"{b}ffn_down_exps.bias");
            if (st.Contains(x + "gate_up_proj_blocks"))
            {
                Mxfp4(w, st, x + "gate_up_proj", $"{b}ffn_gate_exps.weight", experts, 2 * inter, hidden, 0, 2);
                Mxfp4(w, st, x + "gate_up_proj", $"{b}ffn_up_exps.weight", experts, 2 * inter, hidden, 1, 2);
                Mxfp4(w, st, x + "down_proj", $"{b}ffn_down_exps.weight", experts, hidden, inter, 0, 1);
                continue;
            }
            var (gu, _) = st.Floats(x + "gate_up_proj");                 // [E, H, 2I]: [in, out], gate and up interleaved
            var (dn, _) = st.Floats(x + "down_proj");                    // [E, I, H]: [in, out]
            var gate = new float[experts * inter * hidden];
            var up = new float[gate.Length];
            var down = new float[gate.Length];
            for (int e = 0; e < experts; e++)
                for (int i = 0; i < inter; i++)
                    for (int h = 0; h < hidden; h++)
                    {
                        gate[(e * inter + i) * hidden + h] = gu[(e * hidden + h) * 2 * inter + 2 * i];
                        up[(e * inter + i) * hidden + h] = gu[(e * hidden + h) * 2 * inter + 2 * i + 1];
                        down[(e * hidden + h) * inter + i] = dn[(e * inter + i) * hidden + h];
                    }
            Emit($"{b}ffn_gate_exps.weight", gate, [experts, inter, hidden]);
            Emit($"{b}ffn_up_exps.weight", up, [experts, inter, hidden]);
            Emit($"{b}ffn_down_exps.weight", down, [experts, hidden, inter]);
        }
        Copy("model.norm.weight", "output_norm.weight");
        Copy("lm_head.weight", "output.weight");
        return w;
    }

    // Every other value of each row of 2 × n from start: the gate (0) or up (1) half of interleaved [E, 2n].
    static float[] Every(float[] v, int start) => v.Where((_, i) => i % 2 == start).ToArray();

    /// <summary>
    /// Rows start, start + step, … of the hub's <c>{name}_blocks</c> [E, rows, cols/32, 16] and <c>_scales</c> [E, rows, cols/32]
    /// as one GGUF MXFP4 stack [E, rows/step, cols].
    /// </summary>
    static unsafe void Mxfp4(GgufWriter w, TensorStore st, string name, string gguf, int experts, int rows, int cols, int start, int step)
    {
        int blocks = cols / 32, outRows = rows / step, rowBytes = blocks * 17;
        var data = new byte[(long)experts * outRows * rowBytes];
        byte* codes = st.DataPointer(name + "_blocks"), scales = st.DataPointer(name + "_scales");
        fixed (byte* dst = data)
            for (int e = 0; e < experts; e++)
                for (int r = 0; r < outRows; r++)
                {
                    long src = (long)e * rows + start + r * step;
                    HubMxfp4.Row(codes + src * blocks * HubMxfp4.CodeBytes, scales + src * blocks, dst + ((long)e * outRows + r) * rowBytes, blocks);
                }
        w.Tensor(gguf, GgmlType.MXFP4, [cols, outRows, experts], data);
    }
}
