using Daop.Engine.Load;
using Daop.Engine.Load.Config;
using Daop.Engine.Load.Safetensors;
using Daop.Engine.Model;
using Daop.Engine.Model.Families;
using Daop.Tests.Model;

namespace Daop.Tests.Load.Gguf;

/// <summary>
/// The families llama.cpp files as <c>deepseek2</c> (DeepSeek-V2 and V3), <c>gpt-oss</c> and <c>llama4</c>, from GGUF files
/// <see cref="HfToGguf"/> writes from the safetensors fixtures: the same logits as the safetensors checkpoint through Daop
/// (with RoPE frequencies in fp32 on both sides: GGUF carries no checkpoint dtype), and transformers' logits and greedy
/// ids; and bad metadata fails naming the key or tensor.
/// </summary>
public sealed class GgufNewFamilyTests : IDisposable
{
    readonly string _tmp = Directory.CreateTempSubdirectory("daop-gguf-new-").FullName;

    public void Dispose() => Directory.Delete(_tmp, recursive: true);

    string Write(string fixture, HfToGguf.OutType type = HfToGguf.OutType.BF16, MlaLayout mla = MlaLayout.KvBAndSplit, Action<GgufWriter>? edit = null)
    {
        var w = HfToGguf.Convert(GgufFixtureFiles.Source(fixture), type, mla: mla);
        edit?.Invoke(w);
        return w.Write(Path.Combine(_tmp, $"{fixture}-{type}-{mla}-{Guid.NewGuid():N}.gguf"));
    }

    // The safetensors fixture through Daop with RoPE frequencies in fp32, as a GGUF file gives them.
    static MoeModel SafetensorsFp32Rope(string fixture)
    {
        string dir = TestPaths.Fixture(fixture);
        var (family, config) = ModelFamilies.ReadConfig(Path.Combine(dir, "config.json"));
        var store = TensorStore.OpenDirectory(dir);
        static LayerSpec Fp32(LayerSpec l) => l with { Attention = l.Attention with { Rope = l.Attention.Rope with { InvFreqDType = null } } };
        return MoeModel.FromSource(fixture, Path.Combine(dir, "config.json"), family.Tensors(store, config),
            adjust: c => c with { Layers = c.Layers.Select(Fp32).ToArray() });
    }

    public static IEnumerable<object[]> Layouts() =>
        from f in new[] { "deepseekv2-tiny", "deepseekv3-tiny" }
        from m in Enum.GetValues<MlaLayout>()
        select new object[] { f, m };

    [Theory]
    [MemberData(nameof(Layouts))]
    public void DeepseekGgufMatchesItsSafetensorsInEveryMlaLayout(string fixture, MlaLayout layout)
    {
        using var gguf = MoeModel.Load(Write(fixture, HfToGguf.OutType.BF16, layout));
        Assert.IsType<AttentionSpec.Mla>(gguf.Config.Layers[0].Attention);
        Assert.Equal(fixture == "deepseekv3-tiny" ? typeof(DeepseekV3) : typeof(DeepseekV2), gguf.Family.GetType());
        using var st = SafetensorsFp32Rope(fixture);
        AssertSameLogits(fixture, st, gguf, 1e-4);
    }

    [Theory]
    [InlineData("BF16")]
    [InlineData("F32")]
    public void Llama4GgufMatchesItsSafetensors(string type)
    {
        using var gguf = MoeModel.Load(Write("llama4-tiny", Enum.Parse<HfToGguf.OutType>(type)));
        Assert.IsType<Llama4>(gguf.Family);
        Assert.Equal([false, true, false, true], gguf.Config.Layers.Select(l => l.Ffn is FfnSpec.Moe));
        Assert.Equal([8, 8, 8, null], gguf.Config.Layers.Select(l => ((AttentionSpec.Gqa)l.Attention).Chunk));
        using var st = SafetensorsFp32Rope("llama4-tiny");
        AssertSameLogits("llama4-tiny", st, gguf, 1e-4);
    }

    [Theory]
    [InlineData("gptoss-tiny", "BF16")]
    [InlineData("gptoss-tiny", "F32")]
    [InlineData("gptoss-tiny-mxfp4", "BF16")]
    public void GptOssGgufMatchesItsSafetensors(string fixture, string type)
    {
        string path = Write(fixture, Enum.Parse<HfToGguf.OutType>(type));
        using (var c = Daop.Engine.Load.Gguf.GgufCheckpoint.Open(path))
            Assert.Equal(fixture.EndsWith("mxfp4", StringComparison.Ordinal) ? Daop.Engine.Load.Gguf.GgmlType.MXFP4 : c.Find("blk.0.attn_q.weight")!.Type,
                c.Find("blk.0.ffn_down_exps.weight")!.Type);
        using var gguf = MoeModel.Load(path);
        Assert.IsType<GptOss>(gguf.Family);
        Assert.Equal([4, null, 4], gguf.Config.Layers.Select(l => ((AttentionSpec.SinkGqa)l.Attention).SlidingWindow is { } w ? (int?)w / 2 : null));
        using var st = SafetensorsFp32Rope(fixture);
        AssertSameLogits(fixture, st, gguf, 1e-4);
    }

    /// <summary>
    /// transformers' logits and greedy ids from the GGUF file. DeepSeek within 1e-4 (its RoPE frequencies are fp32 in
    /// transformers too); GPT-OSS and Llama-4 within 1e-3, as the older GGUF families: transformers rounds their RoPE
    /// frequencies to the checkpoint's bf16, a GGUF file has none to round to (measured 2.1e-4 and 3.0e-4 of max(1, |ref|),
    /// past 1e-4; the safetensors path, which rounds as transformers does, holds 1e-4, and so does the GGUF file against it
    /// with fp32 frequencies on both sides, above).
    /// </summary>
    [Theory]
    [InlineData("deepseekv2-tiny", 1e-4)]
    [InlineData("deepseekv3-tiny", 1e-4)]
    [InlineData("gptoss-tiny", 1e-3)]
    [InlineData("llama4-tiny", 1e-3)]
    public void GgufMatchesTransformers(string fixture, double tol)
    {
        using var model = MoeModel.Load(Write(fixture, HfToGguf.OutType.F32));
        using var hf = TensorStore.OpenFile(Path.Combine(TestPaths.Fixture(fixture), "reference.safetensors"));
        var (want, shape) = hf.Floats("logits");
        var got = LlamaCppReference.DaopLogits(model, fixture);
        int rows = (int)(shape[0] * shape[1]), v = (int)shape[2];
        for (int r = 0; r < rows; r++)
            LogitsAssert.Close(want.AsSpan(r * v, v), got.AsSpan(r * v, v), $"{fixture} GGUF position {r} vs transformers", tol);
        var (greedy, gs) = hf.Int64s("greedy_new_ids");
        var daop = LlamaCppReference.DaopGreedy(model, fixture, (int)gs[1]);
        for (int b = 0; b < gs[0]; b++) Assert.Equal(greedy.Skip(b * (int)gs[1]).Take((int)gs[1]).Select(x => (int)x), daop[b]);
    }

    /// <summary>
    /// llama.cpp (c392e50, f32 KV cache; tests/tools/gguf-references.py --only-new-families) on deepseekv3-tiny-f32.gguf:
    /// its deepseek2 reads no expert_group_count and routes among all experts, so Daop is held to it on the same tensors
    /// without the group keys, which Daop then routes as llama.cpp does. What differs is only llama.cpp's eps of the q_a and
    /// kv_a norms (rms_norm_eps; transformers' 1e-6) and the summation order.
    /// </summary>
    [Fact]
    public void DeepseekV3MatchesLlamaCppOnTheSameFile()
    {
        const string file = "deepseekv3-tiny-f32.gguf", fixture = "deepseekv3-tiny";
        using var refs = new LlamaCppReference();
        string path = Write(fixture, HfToGguf.OutType.F32, MlaLayout.KvB,
            w => w.Without("deepseek2.expert_group_count").Without("deepseek2.expert_group_used_count"));
        Assert.Equal(refs.TensorHash(file), LlamaCppReference.HashTensors(path)); // the tensors llama.cpp ran on
        using var model = MoeModel.Load(path);
        var (want, shape) = refs.Logits(file);
        var got = LlamaCppReference.DaopLogits(model, fixture);
        int v = (int)shape[2];
        for (int r = 0; r < shape[0] * shape[1]; r++)
            LogitsAssert.Close(want.AsSpan(r * v, v), got.AsSpan(r * v, v), $"{file} position {r} vs llama.cpp", 1e-4);
        var (greedy, gs) = refs.Greedy(file);
        var daop = LlamaCppReference.DaopGreedy(model, fixture, (int)gs[1]);
        for (int b = 0; b < gs[0]; b++) Assert.Equal(greedy.Skip(b * (int)gs[1]).Take((int)gs[1]).Select(x => (int)x), daop[b]);
    }

    /// <summary>
    /// ik_llama.cpp (8337e4c; tests/fixtures/gguf/ik-llamacpp-reference.*, gguf-references.py --ik-anchor) on the files of
    /// <see cref="GgufFixtureFiles.IkFiles"/>: DeepSeek-V3 with kv_b and its split k_b / v_b (groups removed: it routes
    /// without them) and GPT-OSS. Its KV cache is f16 (the build has no f32-K attention path), which alone moves logits by
    /// ~1e-3: held within 5e-3·max(1, |ref|) and every arg-max (measured 8.6e-4 and 2.4e-3).
    /// </summary>
    [Theory]
    [InlineData("deepseekv3-tiny-split-nogroups-f32.gguf")]
    [InlineData("gptoss-tiny-f32.gguf")]
    public void MatchesIkLlamaCppOnTheSameFile(string file)
    {
        var (_, fixture, write) = GgufFixtureFiles.IkFiles().Single(f => f.File == file);
        string path = write(Path.Combine(_tmp, file));
        using var manifest = System.Text.Json.JsonDocument.Parse(File.ReadAllBytes(Path.Combine(GgufFixtureFiles.Dir, "ik-llamacpp-reference.json")));
        Assert.Equal(manifest.RootElement.GetProperty("files").GetProperty(file).GetProperty("tensor_sha256").GetString(),
            LlamaCppReference.HashTensors(path)); // the tensors ik_llama.cpp ran on
        using var refs = TensorStore.OpenFile(Path.Combine(GgufFixtureFiles.Dir, "ik-llamacpp-reference.safetensors"));
        var (want, shape) = refs.Floats($"{file}/logits");
        using var model = MoeModel.Load(path);
        var got = LlamaCppReference.DaopLogits(model, fixture);
        int v = (int)shape[2];
        for (int r = 0; r < shape[0] * shape[1]; r++)
        {
            LogitsAssert.Close(want.AsSpan(r * v, v), got.AsSpan(r * v, v), $"{file} position {r} vs ik_llama.cpp", 5e-3);
            Assert.Equal(System.Numerics.Tensors.TensorPrimitives.IndexOfMax(want.AsSpan(r * v, v)),
                System.Numerics.Tensors.TensorPrimitives.IndexOfMax(got.AsSpan(r * v, v)));
        }
    }

    [Theory]
    [InlineData("deepseekv2-tiny", "deepseek2.attention.kv_lora_rank")]
    [InlineData("deepseekv3-tiny", "deepseek2.expert_feed_forward_length")]
    [InlineData("deepseekv3-tiny", "deepseek2.rope.dimension_count")]
    public void MissingKeyIsNamed(string fixture, string key)
    {
        var e = Assert.Throws<ModelLoadException>(() => MoeModel.Load(Write(fixture, edit: w => w.Without(key))));
        Assert.Contains($"'{key}'", e.Message);
    }

    [Theory]
    [InlineData("deepseek2.expert_group_count", 3u)]        // does not divide 8 experts
    [InlineData("deepseek2.expert_group_used_count", 5u)]   // more than the 4 groups
    [InlineData("deepseek2.leading_dense_block_count", 3u)] // no MoE layer left
    [InlineData("deepseek2.attention.key_length", 8u)]      // no nope part left beside the 8 rope dims
    public void BadKeyIsNamed(string key, uint value)
    {
        var e = Assert.Throws<ModelLoadException>(() => MoeModel.Load(Write("deepseekv3-tiny", edit: w => w.Set(key, value))));
        Assert.Contains($"'{key}'", e.Message);
    }

    [Theory]
    [InlineData(MlaLayout.Split, "blk.1.attn_k_b.weight")]
    [InlineData(MlaLayout.Split, "blk.2.attn_v_b.weight")]
    [InlineData(MlaLayout.KvB, "blk.1.attn_kv_b.weight")]
    [InlineData(MlaLayout.KvBAndSplit, "blk.0.attn_kv_a_mqa.weight")]
    public void TensorOfAWrongShapeIsNamed(MlaLayout layout, string tensor)
    {
        var e = Assert.Throws<ModelLoadException>(() => MoeModel.Load(Write("deepseekv3-tiny", mla: layout,
            edit: w => w.Without(tensor).F32(tensor, [5, 7], new float[35])))); // a shape nothing expects
        Assert.Contains($"'{tensor}'", e.Message);
    }

    [Theory]
    [InlineData(MlaLayout.Split, "blk.1.attn_v_b.weight")]
    [InlineData(MlaLayout.KvB, "blk.1.attn_kv_b.weight")]
    [InlineData(MlaLayout.KvBAndSplit, "blk.2.exp_probs_b.bias")]
    public void MissingTensorIsNamed(MlaLayout layout, string tensor)
    {
        var e = Assert.Throws<ModelLoadException>(() => MoeModel.Load(Write("deepseekv3-tiny", mla: layout, edit: w => w.Without(tensor))));
        Assert.Contains($"'{tensor}'", e.Message);
    }

    [Theory]
    [InlineData("gpt-oss.expert_feed_forward_length")]
    [InlineData("gpt-oss.attention.sliding_window")]
    [InlineData("gpt-oss.expert_used_count")]
    public void GptOssMissingKeyIsNamed(string key)
    {
        var e = Assert.Throws<ModelLoadException>(() => MoeModel.Load(Write("gptoss-tiny", edit: w => w.Without(key))));
        Assert.Contains($"'{key}'", e.Message);
    }

    [Theory]
    [InlineData("blk.1.attn_sinks.weight")]
    [InlineData("blk.2.ffn_up_exps.bias")]
    [InlineData("blk.0.ffn_gate_inp.bias")]
    public void GptOssMissingTensorIsNamed(string tensor)
    {
        var e = Assert.Throws<ModelLoadException>(() => MoeModel.Load(Write("gptoss-tiny", edit: w => w.Without(tensor))));
        Assert.Contains($"missing tensor '{tensor}", e.Message); // an expert's bias is named as its row: 'blk.2.ffn_up_exps.bias[0]'

    }

    [Fact]
    public void GptOssBiasOfAWrongShapeIsNamed()
    {
        const string tensor = "blk.1.ffn_down_exps.bias";
        var e = Assert.Throws<ModelLoadException>(() => MoeModel.Load(Write("gptoss-tiny", edit: w => w.Without(tensor).F32(tensor, [8, 63], new float[8 * 63]))));
        Assert.Contains($"'{tensor}'", e.Message);
    }

    [Theory]
    [InlineData("llama4.interleave_moe_layer_step")]
    [InlineData("llama4.expert_feed_forward_length")]
    [InlineData("llama4.feed_forward_length")]
    public void Llama4MissingKeyIsNamed(string key)
    {
        var e = Assert.Throws<ModelLoadException>(() => MoeModel.Load(Write("llama4-tiny", edit: w => w.Without(key))));
        Assert.Contains($"'{key}'", e.Message);
    }

    [Theory]
    [InlineData("blk.3.ffn_up_shexp.weight")]
    [InlineData("blk.2.ffn_gate.weight")]
    [InlineData("blk.1.ffn_down_exps.weight")]
    public void Llama4MissingOrWrongTensorIsNamed(string tensor)
    {
        var e = Assert.Throws<ModelLoadException>(() => MoeModel.Load(Write("llama4-tiny", edit: w => w.Without(tensor))));
        Assert.Contains($"missing tensor '{tensor}", e.Message);
        e = Assert.Throws<ModelLoadException>(() => MoeModel.Load(Write("llama4-tiny", edit: w => w.Without(tensor).F32(tensor, [3, 5], new float[15]))));
        Assert.Contains($"'{tensor}'", e.Message);
    }

    [Fact]
    public void GptOssSlidingPatternIsRead()
    {
        // One bool per layer, as llama.cpp's sliding_window_pattern arrays: here only the last layer slides.
        using var model = MoeModel.Load(Write("gptoss-tiny", edit: w => w.Set("gpt-oss.attention.sliding_window_pattern", new[] { false, false, true })));
        Assert.Equal([null, null, 8], model.Config.Layers.Select(l => ((AttentionSpec.SinkGqa)l.Attention).SlidingWindow));
        var e = Assert.Throws<ModelLoadException>(() => MoeModel.Load(Write("gptoss-tiny", edit: w => w.Set("gpt-oss.attention.sliding_window_pattern", new[] { true }))));
        Assert.Contains("'gpt-oss.attention.sliding_window_pattern'", e.Message);
    }

    static void AssertSameLogits(string fixture, MoeModel want, MoeModel got, double tol)
    {
        var a = LlamaCppReference.DaopLogits(want, fixture);
        var b = LlamaCppReference.DaopLogits(got, fixture);
        int v = want.Config.VocabSize;
        for (int r = 0; r < a.Length / v; r++)
            LogitsAssert.Close(a.AsSpan(r * v, v), b.AsSpan(r * v, v), $"{fixture} GGUF vs safetensors, position {r}", tol);
    }
}
