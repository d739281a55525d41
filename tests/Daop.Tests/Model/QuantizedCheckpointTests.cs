using System.Text.Json.Nodes;
using Daop.Engine.Load;
using Daop.Engine.Load.Config;
using Daop.Engine.Load.Safetensors;
using Daop.Engine.Model;
using Daop.Engine.Model.Families;
using Daop.Kernels;
using Daop.Kernels.Quant;

namespace Daop.Tests.Model;

/// <summary>
/// <c>daop quantize</c>'s folders and quantizing at load: the bytes a checkpoint maps are the bytes quantizing at load makes
/// (ggml's reference quantizers over the bf16 weights), everything unconverted is copied bit for bit, the folder loads with
/// nothing converted at start-up, and a quantized model widened to f32 computes what the quantized weights say.
/// </summary>
public unsafe class QuantizedCheckpointTests
{
    static byte[] Bytes(in WeightMatrix m) => new ReadOnlySpan<byte>(m.Data, checked((int)m.ByteLength)).ToArray();

    // Every matrix of the model by role: (name, matrix) in a fixed order.
    static List<(string What, WeightMatrix M)> Matrices(MoeModel model)
    {
        var w = model.Weights;
        var all = new List<(string, WeightMatrix)> { ("embed", w.Embed), ("lm_head", w.LmHead.W) };
        for (int l = 0; l < w.Layers.Length; l++)
        {
            var layer = w.Layers[l];
            int i = 0;
            layer.Attention.Visit((in WeightMatrix m, bool _) => all.Add(($"layer {l} attention {i++}", m)), _ => { });
            if (layer.Router is { } r) all.Add(($"layer {l} router", r.W));
            for (int e = 0; e < layer.Experts.Length; e++)
            {
                all.Add(($"layer {l} expert {e} gate", layer.Experts[e].Gate));
                all.Add(($"layer {l} expert {e} up", layer.Experts[e].Up));
                all.Add(($"layer {l} expert {e} down", layer.Experts[e].Down));
            }
        }
        return all;
    }

    static bool IsExpert(string what) => what.Contains("expert", StringComparison.Ordinal);

    [Fact]
    public void CheckpointMapsTheBytesQuantizingAtLoadMakes()
    {
        using var source = MoeModel.Load(TestPaths.DefaultModel, new ModelOptions { ContextLength = 8 });
        using var onLoad = MoeModel.Load(TestPaths.DefaultModel, new ModelOptions { ContextLength = 8, ExpertDType = DType.Q4_0 });
        using var mapped = MoeModel.Load(QuantizedModels.EmbeddedQ4, new ModelOptions { ContextLength = 8 });
        Assert.Null(mapped.Conversion);
        Assert.Equal(new QuantizationConfig(DType.Q4_0, null), mapped.Config.Quantization);
        var conversion = Assert.IsType<WeightConversion>(onLoad.Conversion);
        Assert.Equal(6 * 8 * 3, conversion.Matrices);
        Assert.Equal(6 * 8 * 3 * 256L * 256 * 2, conversion.SourceBytes);
        Assert.Equal(6 * 8 * 3 * 256L * 144, conversion.Bytes);

        var (src, load, map) = (Matrices(source), Matrices(onLoad), Matrices(mapped));
        var row = new float[256];
        var quantized = new byte[DType.Q4_0.RowBytes(256)];
        for (int i = 0; i < src.Count; i++)
        {
            string what = src[i].What;
            Assert.Equal(Bytes(load[i].M), Bytes(map[i].M));
            if (!IsExpert(what))
            {
                Assert.Equal(src[i].M.Type, map[i].M.Type);
                Assert.Equal(Bytes(src[i].M), Bytes(map[i].M));
                continue;
            }
            Assert.Equal(DType.Q4_0, map[i].M.Type);
            // Each row is ggml's Q4_0 of the bf16 row.
            foreach (int r in new[] { 0, 77, 255 })
            {
                Daop.Kernels.Cpu.MatMul.WidenRow(src[i].M, r, row);
                BlockQuant.QuantizeRow(DType.Q4_0, row, quantized);
                Assert.True(quantized.AsSpan().SequenceEqual(map[i].M.RowBytesSpan(r)), $"{what} row {r}");
            }
        }
    }

    [Fact]
    public void FolderHoldsU8BlocksTheQuantizationConfigAndTheTokenizerFiles()
    {
        string dir = QuantizedModels.EmbeddedQ4;
        using (var store = TensorStore.OpenDirectory(dir))
        {
            var expert = store.Entry("model.layers.3.block_sparse_moe.experts.5.w2.weight");
            Assert.Equal(TensorDType.U8, expert.DType);
            Assert.Equal([256L, 144], expert.Shape);
            Assert.Equal(TensorDType.BF16, store.Entry("model.layers.3.block_sparse_moe.gate.weight").DType);
            Assert.Equal(TensorDType.BF16, store.Entry("model.layers.3.self_attn.q_proj.weight").DType);
        }
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "config.json")))!.AsObject();
        var q = config["quantization_config"]!.AsObject();
        Assert.Equal("daop", (string?)q["quant_method"]);
        Assert.Equal(1, (int?)q["version"]);
        Assert.Equal("q4_0", (string?)q["format"]!["experts"]);
        Assert.Null(q["format"]!["dense"]);
        Assert.Equal("mixtral", (string?)config["model_type"]);
        foreach (string f in new[] { "tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json" })
            Assert.Equal(File.ReadAllBytes(Path.Combine(TestPaths.DefaultModel, f)), File.ReadAllBytes(Path.Combine(dir, f)));
        Assert.False(File.Exists(Path.Combine(dir, "reference.safetensors")));
        Assert.Empty(Directory.GetFiles(dir, "*.partial"));
    }

    [Fact]
    public void ShardsWithAnIndexLoadTheSameWeights()
    {
        string dir = QuantizedModels.Write(TestPaths.DefaultModel, DType.Q4_0, DType.Q8_0, shardBytes: 3_000_000);
        var shards = Directory.GetFiles(dir, "model-*-of-*.safetensors");
        Assert.True(shards.Length >= 3, $"{shards.Length} shards");
        Assert.True(File.Exists(Path.Combine(dir, "model.safetensors.index.json")));
        Assert.False(File.Exists(Path.Combine(dir, "model.safetensors")));
        using var sharded = MoeModel.Load(dir, new ModelOptions { ContextLength = 8 });
        using var onLoad = MoeModel.Load(TestPaths.DefaultModel, new ModelOptions { ContextLength = 8, ExpertDType = DType.Q4_0, DenseDType = DType.Q8_0 });
        Assert.Equal(new QuantizationConfig(DType.Q4_0, DType.Q8_0), sharded.Config.Quantization);
        var (a, b) = (Matrices(sharded), Matrices(onLoad));
        for (int i = 0; i < a.Count; i++)
        {
            Assert.Equal(b[i].M.Type, a[i].M.Type);
            Assert.Equal(Bytes(b[i].M), Bytes(a[i].M));
        }
        // Dense means attention (and shared/dense MLPs): the embedding, LM head and routers stay bf16.
        Assert.Equal(DType.Q8_0, First(sharded.Weights.Layers[0].Attention));
        Assert.Equal(DType.BF16, sharded.Weights.Embed.Type);
        Assert.Equal(DType.BF16, sharded.Weights.LmHead.W.Type);
        Assert.Equal(DType.BF16, sharded.Weights.Layers[0].Router!.W.Type);
    }

    static DType First(Daop.Engine.Model.Layers.AttentionLayer a)
    {
        DType? t = null;
        a.Visit((in WeightMatrix m, bool _) => t ??= m.Type, _ => { });
        return t!.Value;
    }

    [Fact]
    public void DenseClassesFollowTheFamilyTables()
    {
        // Qwen2-MoE: a sigmoid-gated shared expert; its gate is kept like a router, its FFN converts with the dense class.
        using var m = MoeModel.Load(TestPaths.Fixture("qwen2moe-tiny"), new ModelOptions { ContextLength = 8, DenseDType = DType.Q8_0 });
        var l = m.Weights.Layers.First(x => x.Shared != null);
        Assert.Equal(DType.Q8_0, l.Shared!.Value.Gate.Type);
        Assert.Equal(DType.Q8_0, l.Shared!.Value.Down.Type);
        Assert.Equal(DType.BF16, l.SharedGate!.W.Type);
        Assert.Equal(DType.BF16, l.Router!.W.Type);
        Assert.NotEqual(DType.Q8_0, l.Experts[0].Gate.Type);
        var dense = m.Weights.Layers.FirstOrDefault(x => x.Dense != null);
        if (dense != null) Assert.Equal(DType.Q8_0, dense.Dense!.Value.Up.Type);
    }

    [Fact]
    public void QuantizedFolderWidenedToF32ComputesItsQuantizedWeights()
    {
        // The checkpoint's q4_0 experts widened at load, against quantize-then-widen of the bf16 model in memory: the same
        // f32 weights, so the same logits bit for bit (both run the CPU's f32 kernels, which exist today).
        var options = LogitBits.Options(new ModelOptions { ExpertDType = DType.F32 });
        using var mapped = MoeModel.Load(QuantizedModels.EmbeddedQ4, options);
        var (family, config) = ModelFamilies.ReadConfig(Path.Combine(TestPaths.DefaultModel, "config.json"));
        var quantizing = new ConvertingTensorSource(TensorStore.OpenDirectory(TestPaths.DefaultModel),
            new WeightClasses(config, family.Names).Of, DType.Q4_0, null);
        using var inMemory = MoeModel.FromSource("q4 in memory", Path.Combine(TestPaths.DefaultModel, "config.json"), quantizing, options);
        Assert.Equal(DType.F32, mapped.Weights.Layers[0].Experts[0].Gate.Type);
        Assert.Equal(LogitBits.Hash(inMemory), LogitBits.Hash(mapped));
        Assert.Equal(6 * 8 * 3, mapped.Conversion!.Matrices);
    }

    [Fact]
    public void ABlockFormatIsNotQuantizedAgain()
    {
        var e = Assert.Throws<ModelLoadException>(() => MoeModel.Load(QuantizedModels.EmbeddedQ4, new ModelOptions { ContextLength = 8, ExpertDType = DType.Q8_0 }));
        Assert.Contains("model.layers.0.block_sparse_moe.experts.0.w1.weight", e.Message);
        Assert.Contains("--expert-dtype q8_0", e.Message);
        // Asking for what is stored converts nothing.
        using var same = MoeModel.Load(QuantizedModels.EmbeddedQ4, new ModelOptions { ContextLength = 8, ExpertDType = DType.Q4_0 });
        Assert.Null(same.Conversion);
        var w = Assert.Throws<ModelLoadException>(() => QuantizedCheckpoint.Write(QuantizedModels.EmbeddedQ4, QuantizedModels.NewDir(), DType.MXFP4, null));
        Assert.Contains("experts.0.w1.weight", w.Message);
    }

    [Fact]
    public void OutputFolderMustBeNew()
    {
        var e = Assert.Throws<ArgumentException>(() => QuantizedCheckpoint.Write(TestPaths.DefaultModel, TestPaths.DefaultModel, DType.Q4_0, null));
        Assert.Contains("the model folder", e.Message);
        e = Assert.Throws<ArgumentException>(() => QuantizedCheckpoint.Write(TestPaths.DefaultModel, QuantizedModels.EmbeddedQ4, DType.Q4_0, null));
        Assert.Contains("already holds a model", e.Message);
        e = Assert.Throws<ArgumentException>(() => QuantizedCheckpoint.Write(TestPaths.DefaultModel, QuantizedModels.NewDir(), null, null));
        Assert.Contains("dtype", e.Message);
    }

    [Fact]
    public void ConvertingToTheStoredTypeIsACopy()
    {
        string dir = QuantizedModels.Write(TestPaths.Fixture("mixtral-tiny"), DType.BF16, null);
        Assert.False(File.Exists(Path.Combine(dir, "model.safetensors.index.json")));
        Assert.Null(JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "config.json")))!["quantization_config"]);
        using var a = MoeModel.Load(dir, new ModelOptions { ContextLength = 8 });
        using var b = MoeModel.Load(TestPaths.Fixture("mixtral-tiny"), new ModelOptions { ContextLength = 8 });
        var (x, y) = (Matrices(a), Matrices(b));
        for (int i = 0; i < x.Count; i++) Assert.Equal(Bytes(y[i].M), Bytes(x[i].M));
    }

    [Fact]
    public void CheckReadsBlockScales()
    {
        // A q4_0 copy with the fp16 scale of block 3 of one expert matrix set to NaN.
        using var dir = new Daop.Tests.Load.Config.TempModelDir(QuantizedModels.EmbeddedQ4);
        const string name = "model.layers.2.block_sparse_moe.experts.4.w3.weight";
        string file = Path.Combine(dir.Path, "model.safetensors");
        long offset;
        using (var st = TensorStore.OpenFile(file))
            offset = 8 + System.Buffers.Binary.BinaryPrimitives.ReadInt64LittleEndian(File.ReadAllBytes(file).AsSpan(0, 8)) + st.Entry(name).Offset + 3 * 18;
        using (var fs = new FileStream(file, FileMode.Open, FileAccess.Write))
        {
            fs.Position = offset;
            fs.Write([0x00, 0x7E]);
        }
        var report = ModelCheck.Run(dir.Path, [1, 2, 3]);
        Assert.Equal([$"{name}: the scale of block 3 (q4_0)"], report.NonFiniteTensors);
        Assert.False(report.Ok);
        Assert.Empty(ModelCheck.Run(QuantizedModels.EmbeddedQ4, [1, 2, 3]).NonFiniteTensors);
    }
}
