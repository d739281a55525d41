using System.Buffers.Binary;
using System.Text.Json;
using System.Text.Json.Nodes;
using Daop.Engine.Load.Gguf;
using Daop.Engine.Load.Safetensors;
using Daop.Kernels;
using Daop.Kernels.Cpu;
using Daop.Kernels.Quant;

namespace Daop.Tests.Load.Gguf;

/// <summary>
/// A torch-free Hugging Face → GGUF converter for the test fixtures, following llama.cpp's convert_hf_to_gguf.py
/// (February 2025; Qwen3MoeModel from later upstream) for the five families: its architecture names, metadata keys and
/// tensor names; experts stacked into [E, rows, cols] <c>ffn_*_exps</c>; q/k rows permuted for the <c>llama</c> architecture
/// (LlamaModel.permute); 1-D tensors, norms and routers in f32, the rest in the output type (a q8_0 tensor whose rows are
/// not whole blocks falls back to f16, as gguf-py does). llama.cpp itself then validates these conventions: it must load
/// the files and continue greedily as transformers does (tests/tools/gguf-references.py).
/// </summary>
/// <remarks>
/// Deviations, each because the fixtures are transformers-5 checkpoints without tokenizer files: rope.freq_base comes from
/// config.rope_parameters (the converter reads only a top-level rope_theta); the vocabulary is a synthetic byte-level one
/// (256 byte tokens, then merges of two letters) unless the folder has a tokenizer.json, which is converted as
/// _set_vocab_gpt2 does (with tokenizer_config.json's special tokens and chat_template.jinja); PhiMoE files get zero
/// attention and output biases where the checkpoint has none, because llama.cpp's phimoe requires them (zeros change
/// nothing).
/// </remarks>
static partial class HfToGguf
{
    /// <summary>Output types (q8_0 is the converter's --outtype q8_0, not llama-quantize).</summary>
    public enum OutType { F32, F16, BF16, Q8_0 }

    // ExpertPrefix null: a dense model (mlp.{gate,up,down}_proj as ffn_{gate,up,down}); Granite's stacked experts are
    // split as GraniteMoeModel.modify_tensors splits them.
    sealed record Family(string Arch, string? ExpertPrefix, string[] ExpertNames, string? RouterName, string? SharedPrefix);

    static readonly Dictionary<string, Family> Families = new()
    {
        ["llama"] = new("llama", null, [], null, null),
        ["qwen2"] = new("qwen2", null, [], null, null),
        ["granitemoe"] = new("granitemoe", "block_sparse_moe", [], "block_sparse_moe.router.layer", null),
        ["granitemoeshared"] = new("granitemoe", "block_sparse_moe", [], "block_sparse_moe.router.layer", "shared_mlp"),
        ["mixtral"] = new("llama", "block_sparse_moe.experts", ["w1", "w3", "w2"], "block_sparse_moe.gate", null),
        ["phimoe"] = new("phimoe", "block_sparse_moe.experts", ["w1", "w3", "w2"], "block_sparse_moe.gate", null),
        ["qwen2_moe"] = new("qwen2moe", "mlp.experts", ["gate_proj", "up_proj", "down_proj"], "mlp.gate", "mlp.shared_expert"),
        ["qwen3_moe"] = new("qwen3moe", "mlp.experts", ["gate_proj", "up_proj", "down_proj"], "mlp.gate", null),
        ["olmoe"] = new("olmoe", "mlp.experts", ["gate_proj", "up_proj", "down_proj"], "mlp.gate", null),
    };

    /// <summary>
    /// Converts the model folder <paramref name="dir"/> into a GGUF writer. <paramref name="expandKvHeads"/> writes an
    /// equivalent model whose key/value heads are repeated up to the query heads (each kv head's rows once per query head
    /// that reads it; a whole-projection k norm repeated alike keeps its mean square): llama.cpp's February 2025 olmoe
    /// cannot load grouped-query attention, so this is the olmoe file it can check.
    /// </summary>
    /// <paramref name="mla"/>: how DeepSeek's kv_b is written (<see cref="MlaLayout"/>).
    public static GgufWriter Convert(string dir, OutType outType, bool expandKvHeads = false, MlaLayout mla = MlaLayout.KvB)
    {
        var cfg = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "config.json")))!.AsObject();
        string modelType = (string)cfg["model_type"]!;
        if (modelType is "deepseek_v2" or "deepseek_v3") return Deepseek(dir, cfg, outType, mla);
        if (modelType == "gpt_oss") return GptOss(dir, cfg, outType);
        if (modelType == "llama4_text") return Llama4(dir, cfg, outType);
        var fam = Families[modelType];
        var w = new GgufWriter();
        string arch = fam.Arch;
        int layers = Int(cfg, "num_hidden_layers"), hidden = Int(cfg, "hidden_size"), heads = Int(cfg, "num_attention_heads");
        int kvHeads = IntOr(cfg, "num_key_value_heads") ?? heads;
        int storedKvHeads = kvHeads;
        if (expandKvHeads) kvHeads = heads;
        int experts = fam.ExpertPrefix == null ? 0 : IntOr(cfg, "num_local_experts") ?? Int(cfg, "num_experts");
        int? headDim = IntOr(cfg, "head_dim");

        Header(w, arch, dir, cfg, kvHeads);
        w.Add($"{arch}.attention.layer_norm_rms_epsilon", arch == "olmoe" ? 1e-5f : (float)(double)cfg["rms_norm_eps"]!);
        if (experts > 0)
        {
            w.Add($"{arch}.expert_count", (uint)experts);
            w.Add($"{arch}.expert_used_count", (uint)Int(cfg, "num_experts_per_tok"));
        }
        if (headDim is { } hd)
        {
            w.Add($"{arch}.attention.key_length", (uint)hd);
            w.Add($"{arch}.attention.value_length", (uint)hd);
        }
        w.Add("general.file_type", outType switch { OutType.F32 => 0u, OutType.F16 => 1u, OutType.BF16 => 32u, _ => 7u });
        switch (arch)
        {
            case "granitemoe":
                foreach (var (hf, gg) in new[] { ("attention_multiplier", "attention.scale"), ("embedding_multiplier", "embedding_scale"),
                             ("residual_multiplier", "residual_scale"), ("logits_scaling", "logit_scale") })
                    if ((double?)cfg[hf] is { } m) w.Add($"{arch}.{gg}", (float)m);
                w.Add($"{arch}.vocab_size", (uint)Int(cfg, "vocab_size"));
                w.Add($"{arch}.rope.dimension_count", (uint)(hidden / heads));
                if (IntOr(cfg, "shared_intermediate_size") is > 0 and var shared)      // GraniteMoeSharedModel's one key more
                    w.Add($"{arch}.expert_shared_feed_forward_length", (uint)shared);
                break;
            case "llama":
                w.Add($"{arch}.vocab_size", (uint)Int(cfg, "vocab_size"));
                w.Add($"{arch}.rope.dimension_count", (uint)(headDim ?? hidden / heads));
                break;
            case "qwen2moe" or "qwen3moe":
                w.Add($"{arch}.expert_feed_forward_length", (uint)Int(cfg, "moe_intermediate_size"));
                if (IntOr(cfg, "shared_expert_intermediate_size") is { } sh)
                    w.Add($"{arch}.expert_shared_feed_forward_length", (uint)sh);
                break;
            case "phimoe":
                if (IntOr(cfg, "original_max_position_embeddings") is { } orig)
                    w.Add($"{arch}.rope.scaling.original_context_length", (uint)orig);
                w.Add($"{arch}.rope.dimension_count", (uint)(hidden / heads));
                w.Add($"{arch}.attention.sliding_window", (uint)(IntOr(cfg, "sliding_window") ?? 0));
                break;
        }
        Vocabulary(w, dir, Int(cfg, "vocab_size"), IntOr(cfg, "bos_token_id"), IntOr(cfg, "eos_token_id"));

        using var st = TensorStore.OpenDirectory(dir);
        void Emit(string name, float[] data, long[] hfShape) => EmitTensor(w, outType, name, data, hfShape);
        (float[], long[]) Get(string name)
        {
            var (d, shape) = st.Floats(name);
            bool kv = name.Contains(".k_proj.", StringComparison.Ordinal) || name.Contains(".v_proj.", StringComparison.Ordinal) ||
                name.Contains(".k_norm.", StringComparison.Ordinal);
            return expandKvHeads && kv && storedKvHeads != heads ? RepeatHeads(d, shape, storedKvHeads, heads / storedKvHeads) : (d, shape);
        }

        var (embed, embedShape) = Get("model.embed_tokens.weight");
        Emit("token_embd.weight", embed, embedShape);
        if (RopeFactors(cfg, headDim ?? hidden / heads) is { } factors) Emit("rope_freqs.weight", factors, [factors.Length]);
        for (int l = 0; l < layers; l++)
        {
            string p = $"model.layers.{l}.";
            string b = $"blk.{l}.";
            foreach (var (hf, gg) in new[] { ("input_layernorm", "attn_norm"), ("post_attention_layernorm", "ffn_norm") })
                foreach (string s in new[] { "weight", "bias" })
                    if (st.Contains($"{p}{hf}.{s}")) { var (d, sh) = Get($"{p}{hf}.{s}"); Emit($"{b}{gg}.{s}", d, sh); }
            foreach (var (hf, gg) in new[] { ("q_proj", "attn_q"), ("k_proj", "attn_k"), ("v_proj", "attn_v"), ("o_proj", "attn_output") })
                foreach (string s in new[] { "weight", "bias" })
                {
                    string name = $"{p}self_attn.{hf}.{s}";
                    if (!st.Contains(name))
                    {
                        // llama.cpp's phimoe requires attention biases; a checkpoint without them has zero biases.
                        if (arch == "phimoe" && s == "bias")
                        {
                            int n = hf is "q_proj" or "o_proj" ? hidden : kvHeads * (hidden / heads);
                            Emit($"{b}{gg}.bias", new float[n], [n]);
                        }
                        continue;
                    }
                    var (d, sh) = Get(name);
                    if (arch is "llama" or "granitemoe" && hf is "q_proj" or "k_proj") d = Permute(d, sh, hf == "q_proj" ? heads : kvHeads);
                    Emit($"{b}{gg}.{s}", d, sh);
                }
            foreach (var (hf, gg) in new[] { ("q_norm", "attn_q_norm"), ("k_norm", "attn_k_norm") })
                if (st.Contains($"{p}self_attn.{hf}.weight")) { var (d, sh) = Get($"{p}self_attn.{hf}.weight"); Emit($"{b}{gg}.weight", d, sh); }
            if (fam.ExpertPrefix == null)
            {
                foreach (var (hf, gg) in new[] { ("gate_proj", "ffn_gate"), ("up_proj", "ffn_up"), ("down_proj", "ffn_down") })
                { var (d, sh) = Get($"{p}mlp.{hf}.weight"); Emit($"{b}{gg}.weight", d, sh); }
                continue;
            }
            { var (d, sh) = Get($"{p}{fam.RouterName}.weight"); Emit($"{b}ffn_gate_inp.weight", d, sh); }
            if (arch == "granitemoe")
            {
                // input_linear [E, 2I, H] → gate [E, I, H] (rows :I) and up (rows I:); output_linear is ffn_down_exps.
                var (gu, gs) = Get($"{p}block_sparse_moe.input_linear.weight");
                int inter = (int)gs[1] / 2, h = (int)gs[2];
                float[] Half(int k) => Enumerable.Range(0, experts).SelectMany(e => gu.AsSpan((e * 2 * inter + k * inter) * h, inter * h).ToArray()).ToArray();
                Emit($"{b}ffn_gate_exps.weight", Half(0), [experts, inter, h]);
                Emit($"{b}ffn_up_exps.weight", Half(1), [experts, inter, h]);
                var (dn, ds) = Get($"{p}block_sparse_moe.output_linear.weight");
                Emit($"{b}ffn_down_exps.weight", dn, ds);
                if (fam.SharedPrefix is { } shp && st.Contains($"{p}{shp}.input_linear.weight"))
                {
                    // GraniteMoeSharedModel.modify_tensors: shared_mlp.input_linear [2S, H] → ffn_gate_shexp (rows :S), ffn_up_shexp.
                    var (su, ss) = Get($"{p}{shp}.input_linear.weight");
                    int s2 = (int)ss[0] / 2, sh = (int)ss[1];
                    Emit($"{b}ffn_gate_shexp.weight", su.AsSpan(0, s2 * sh).ToArray(), [s2, sh]);
                    Emit($"{b}ffn_up_shexp.weight", su.AsSpan(s2 * sh, s2 * sh).ToArray(), [s2, sh]);
                    var (sd, sds) = Get($"{p}{shp}.output_linear.weight");
                    Emit($"{b}ffn_down_shexp.weight", sd, sds);
                }
                continue;
            }
            StackExperts(st, w, outType, $"{p}{fam.ExpertPrefix}", b, experts, fam.ExpertNames);
            if (fam.SharedPrefix is { } sp && st.Contains($"{p}{sp}.gate_proj.weight"))
            {
                foreach (var (hf, gg) in new[] { ("gate_proj", "ffn_gate_shexp"), ("up_proj", "ffn_up_shexp"), ("down_proj", "ffn_down_shexp") })
                { var (d, sh) = Get($"{p}{sp}.{hf}.weight"); Emit($"{b}{gg}.weight", d, sh); }
                { var (d, sh) = Get($"{p}mlp.shared_expert_gate.weight"); Emit($"{b}ffn_gate_inp_shexp.weight", d, sh); }
            }
        }
        foreach (string s in new[] { "weight", "bias" })
            if (st.Contains($"model.norm.{s}")) { var (d, sh) = Get($"model.norm.{s}"); Emit($"output_norm.{s}", d, sh); }
        if (st.Contains("lm_head.weight")) { var (d, sh) = Get("lm_head.weight"); Emit("output.weight", d, sh); }
        if (st.Contains("lm_head.bias")) { var (d, sh) = Get("lm_head.bias"); Emit("output.bias", d, sh); }
        else if (arch == "phimoe") { int v = Int(cfg, "vocab_size"); Emit("output.bias", new float[v], [v]); }
        return w;
    }

    /// <summary>
    /// Model.set_gguf_parameters' first keys, in its order: architecture, name, block, context, embedding and FFN lengths,
    /// head counts (<paramref name="kvHeads"/> as written) and rope.freq_base (from rope_parameters in transformers 5);
    /// feed_forward_length from <paramref name="ffField"/>.
    /// </summary>
    static void Header(GgufWriter w, string arch, string dir, JsonObject cfg, int kvHeads, string ffField = "intermediate_size")
    {
        w.Add("general.architecture", arch);
        w.Add("general.name", Path.GetFileName(Path.TrimEndingDirectorySeparator(dir)));
        w.Add($"{arch}.block_count", (uint)Int(cfg, "num_hidden_layers"));
        w.Add($"{arch}.context_length", (uint)Int(cfg, "max_position_embeddings"));
        w.Add($"{arch}.embedding_length", (uint)Int(cfg, "hidden_size"));
        w.Add($"{arch}.feed_forward_length", (uint)Int(cfg, ffField));
        w.Add($"{arch}.attention.head_count", (uint)Int(cfg, "num_attention_heads"));
        w.Add($"{arch}.attention.head_count_kv", (uint)kvHeads);
        w.Add($"{arch}.rope.freq_base", (float)((double?)cfg["rope_theta"] ?? (double?)cfg["rope_parameters"]?["rope_theta"] ?? 10000));
    }

    /// <summary>
    /// One tensor, <paramref name="hfShape"/> as PyTorch gives it (GGUF's dims reversed): 1-D tensors, norms, routers and
    /// non-weights in f32, the rest in <paramref name="outType"/> (q8_0 rows that are not whole blocks in f16, as gguf-py).
    /// </summary>
    static void EmitTensor(GgufWriter w, OutType outType, string name, float[] data, long[] hfShape)
    {
        var dims = hfShape.Reverse().ToArray();
        bool f32 = hfShape.Length <= 1 || name.EndsWith("_norm.weight", StringComparison.Ordinal) ||
            name.EndsWith(".ffn_gate_inp.weight", StringComparison.Ordinal) || !name.EndsWith(".weight", StringComparison.Ordinal);
        var type = f32 ? OutType.F32 : outType;
        if (type == OutType.Q8_0 && dims[0] % 32 != 0) type = OutType.F16; // gguf-py's fallback
        w.Tensor(name, type switch { OutType.F32 => GgmlType.F32, OutType.F16 => GgmlType.F16, OutType.BF16 => GgmlType.BF16, _ => GgmlType.Q8_0 },
            dims, Encode(data, dims[0], type));
    }

    /// <summary>
    /// LlamaModel.generate_extra_tensors: llama3 RoPE scaling as one divisor per dimension pair (rope_freqs), from
    /// rope_parameters (the converter reads rope_scaling and a top-level original_max_position_embeddings); null otherwise.
    /// </summary>
    static float[]? RopeFactors(JsonObject cfg, int dim)
    {
        var r = cfg["rope_parameters"] as JsonObject ?? cfg["rope_scaling"] as JsonObject;
        if ((string?)r?["rope_type"] != "llama3") return null;
        double theta = (double)r!["rope_theta"]!, factor = (double?)r["factor"] ?? 8, low = (double?)r["low_freq_factor"] ?? 1,
            high = (double?)r["high_freq_factor"] ?? 4, old = (double?)r["original_max_position_embeddings"] ?? 8192;
        var f = new float[dim / 2];
        for (int i = 0; i < f.Length; i++)
        {
            double wave = 2 * Math.PI / (1.0 / Math.Pow(theta, 2.0 * i / dim)), smooth = (old / wave - low) / (high - low);
            f[i] = (float)(wave < old / high ? 1 : wave > old / low ? factor : 1 / ((1 - smooth) / factor + smooth));
        }
        return f;
    }

    /// <summary>Repeats each of <paramref name="kvHeads"/> row groups <paramref name="times"/> times (GQA → MHA).</summary>
    static (float[], long[]) RepeatHeads(float[] x, long[] shape, int kvHeads, int times)
    {
        int rows = (int)shape[0], cols = shape.Length > 1 ? (int)shape[1] : 1, d = rows / kvHeads;
        var r = new float[x.Length * times];
        for (int h = 0; h < kvHeads * times; h++)
            Array.Copy(x, h / times * d * cols, r, h * d * cols, d * cols);
        return (r, shape.Length > 1 ? [rows * times, cols] : [rows * times]);
    }

    /// <summary>LlamaModel.permute: within each head of D rows, row 2i + j takes row j·D/2 + i.</summary>
    public static float[] Permute(float[] x, long[] shape, int heads)
    {
        int rows = (int)shape[0], cols = shape.Length > 1 ? (int)shape[1] : 1, d = rows / heads;
        var r = new float[x.Length];
        for (int h = 0; h < heads; h++)
            for (int i = 0; i < d / 2; i++)
                for (int j = 0; j < 2; j++)
                    Array.Copy(x, (h * d + j * d / 2 + i) * cols, r, (h * d + 2 * i + j) * cols, cols);
        return r;
    }

    static byte[] Encode(float[] data, long rowWidth, OutType type)
    {
        switch (type)
        {
            case OutType.F32:
                return System.Runtime.InteropServices.MemoryMarshal.AsBytes(data.AsSpan()).ToArray();
            case OutType.F16:
            {
                var r = new byte[data.Length * 2];
                for (int i = 0; i < data.Length; i++) BinaryPrimitives.WriteHalfLittleEndian(r.AsSpan(2 * i), (Half)data[i]);
                return r;
            }
            case OutType.BF16:
            {
                var r = new byte[data.Length * 2];
                for (int i = 0; i < data.Length; i++) BinaryPrimitives.WriteUInt16LittleEndian(r.AsSpan(2 * i), Bf16.FromFloat(data[i]));
                return r;
            }
            default:
            {
                int w = (int)rowWidth, rows = data.Length / w;
                long rowBytes = DType.Q8_0.RowBytes(w);
                var r = new byte[rows * rowBytes];
                for (int i = 0; i < rows; i++)
                    BlockQuant.QuantizeRow(DType.Q8_0, data.AsSpan(i * w, w), r.AsSpan((int)(i * rowBytes), (int)rowBytes));
                return r;
            }
        }
    }

    static int Int(JsonObject c, string key) => IntOr(c, key) ?? throw new InvalidOperationException($"config lacks {key}");

    static int? IntOr(JsonObject c, string key) => c[key] is JsonValue v && v.GetValueKind() == JsonValueKind.Number ? (int)v : null;
}
