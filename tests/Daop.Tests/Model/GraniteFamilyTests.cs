using System.Text.Json.Nodes;
using Daop.Engine.Load;
using Daop.Engine.Load.Config;
using Daop.Engine.Load.Safetensors;
using Daop.Engine.Model;
using Daop.Engine.Model.Families;
using Daop.Kernels;
using Daop.Tests.Load.Config;

namespace Daop.Tests.Model;

/// <summary>Granite-MoE's multipliers and stacked experts.</summary>
public class GraniteFamilyTests
{
    static string Fixture => TestPaths.Fixture("granitemoe-odd");

    [Fact]
    public void MultipliersLandInTheSpecs()
    {
        var (_, c) = ModelFamilies.ReadConfig(Path.Combine(Fixture, "config.json"));
        Assert.Equal((12f, 0.22f, 1 / 6f), (c.EmbeddingScale, c.ResidualScale, c.LmHead.Scale));
        Assert.All(c.Layers, l => Assert.Equal(0.0625f, ((AttentionSpec.Gqa)l.Attention).SoftmaxScale));
        Assert.IsType<RouterSpec.TopKSoftmax>(c.Router);
    }

    [Fact]
    public void ExpertsAreRowViewsOfTheStackedTensors()
    {
        using var st = TensorStore.OpenDirectory(Fixture);
        using var model = MoeModel.Load(Fixture);
        int inter = model.Config.ExpertIntermediate, hidden = model.Config.HiddenSize;
        var e3 = model.Weights.Layers[1].Experts[3];
        unsafe
        {
            byte* stack = st.DataPointer("model.layers.1.block_sparse_moe.input_linear.weight");
            long expert = 2L * inter * hidden * 2;                              // [2I, H] bf16 per expert
            // The model's own store maps the same file: compare bytes, not pointers.
            Assert.True(new ReadOnlySpan<byte>(stack + 3 * expert, inter * hidden * 2).SequenceEqual(new ReadOnlySpan<byte>(e3.Gate.Data, inter * hidden * 2)));
            Assert.True(new ReadOnlySpan<byte>(stack + 3 * expert + inter * hidden * 2, inter * hidden * 2).SequenceEqual(new ReadOnlySpan<byte>(e3.Up.Data, inter * hidden * 2)));
        }
        Assert.Equal((hidden, inter), (e3.Down.Rows, e3.Down.Cols));
    }

    [Fact]
    public void AStackSliceOutsideItsTensorIsNamed()
    {
        using var st = TensorStore.OpenDirectory(Fixture);
        var e = Assert.Throws<ModelLoadException>(() => st.Matrix("model.layers.0.block_sparse_moe.output_linear.weight[6]", 80, 72));
        Assert.Contains("'model.layers.0.block_sparse_moe.output_linear.weight' has shape [6, 80, 72], expected [E, 80, 72] with matrix 6 in it", e.Message);
        e = Assert.Throws<ModelLoadException>(() => st.Matrix("model.layers.0.block_sparse_moe.output_linear.weight[0]", 72, 80));
        Assert.Contains("expected [E, 72, 80]", e.Message);
        Assert.True(st.Contains("model.layers.0.block_sparse_moe.output_linear.weight[5]"));
        Assert.False(st.Contains("model.layers.0.block_sparse_moe.missing.weight[0]"));
    }

    [Fact]
    public void GraniteMoeSharedReadsItsSharedExpertWidth()
    {
        using var dir = new TempModelDir(Fixture);
        dir.EditConfig(c => { c["model_type"] = "granitemoeshared"; c["shared_intermediate_size"] = 56; });
        var (_, c) = ModelFamilies.ReadConfig(Path.Combine(dir.Path, "config.json"));
        Assert.All(c.Layers, l => Assert.Equal(new SharedExpertSpec.Ungated(56), ((FfnSpec.Moe)l.Ffn).Shared));
        dir.EditConfig(c => c["shared_intermediate_size"] = 0);                  // transformers' default: no shared expert
        (_, c) = ModelFamilies.ReadConfig(Path.Combine(dir.Path, "config.json"));
        Assert.All(c.Layers, l => Assert.Null(((FfnSpec.Moe)l.Ffn).Shared));
        dir.EditConfig(c => c["shared_intermediate_size"] = -1);
        Assert.Contains("field 'shared_intermediate_size' must be 0 (no shared expert) or positive, found -1",
            Assert.Throws<ModelLoadException>(() => ModelFamilies.ReadConfig(Path.Combine(dir.Path, "config.json"))).Message);
        // with a shared expert declared, its tensors must be there: the missing one is named
        dir.EditConfig(c => c["shared_intermediate_size"] = 56);
        Assert.Contains("model.layers.0.shared_mlp.input_linear.weight",
            Assert.Throws<ModelLoadException>(() => { using var m = MoeModel.Load(dir.Path); }).Message);
    }

    [Theory]
    [InlineData("residual_multiplier", "0", "field 'residual_multiplier' must be in (0, 1e6], found 0")]
    [InlineData("logits_scaling", "-2", "field 'logits_scaling' must be in (0, 1e6], found -2")]
    [InlineData("embedding_multiplier", "\"big\"", "field 'embedding_multiplier' must be a number")]
    public void BadMultipliersAreNamed(string field, string json, string message)
    {
        using var dir = new TempModelDir(Fixture);
        dir.EditConfig(c => c[field] = JsonNode.Parse(json));
        var e = Assert.Throws<ModelLoadException>(() => { using var m = MoeModel.Load(dir.Path); });
        Assert.Contains(message, e.Message);
    }
}

/// <summary>
/// mixtral-tiny rewritten in Granite-MoE's layout (stacked experts, unit multipliers): the same model, so the same logits;
/// and its stacks quantized by <c>daop quantize</c> map the bytes that quantizing at load makes.
/// </summary>
public unsafe class GraniteLayoutTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("daop-granite-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    // Writes mixtral-tiny as granitemoe (other multipliers 1): w1/w3 stacked as input_linear [E, 2I, H], w2 as output_linear [E, H, I].
    string WriteAsGranite()
    {
        string src = TestPaths.Fixture("mixtral-tiny"), dst = Path.Combine(_dir, "granite");
        Directory.CreateDirectory(dst);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(src, "config.json")))!.AsObject();
        config["model_type"] = "granitemoe";
        config["attention_multiplier"] = 0.25;                                  // Mixtral's 1/√D (D = 16); Granite's default is 1
        File.WriteAllText(Path.Combine(dst, "config.json"), config.ToJsonString());
        using var st = TensorStore.OpenDirectory(src);
        var tensors = new List<SafetensorsTensor>();
        var buffers = new List<byte[]>();
        foreach (string name in st.Names)
        {
            if (name.Contains(".experts.", StringComparison.Ordinal)) continue;
            var e = st.Entry(name);
            byte* p = st.DataPointer(name);
            string to = name.Replace("block_sparse_moe.gate.weight", "block_sparse_moe.router.layer.weight", StringComparison.Ordinal);
            tensors.Add(new SafetensorsTensor(to, e.DType, e.Shape, e.ByteLength, SafetensorsWriter.FromMemory(p, e.ByteLength)));
        }
        for (int l = 0; l < 3; l++)
        {
            byte[] Stack(params string[] parts) => Enumerable.Range(0, 8).SelectMany(x => parts.SelectMany(w =>
            {
                string n = $"model.layers.{l}.block_sparse_moe.experts.{x}.{w}.weight";
                return new ReadOnlySpan<byte>(st.DataPointer(n), (int)st.Entry(n).ByteLength).ToArray();
            })).ToArray();
            byte[] gateUp = Stack("w1", "w3"), down = Stack("w2");
            buffers.Add(gateUp);
            buffers.Add(down);
            tensors.Add(new SafetensorsTensor($"model.layers.{l}.block_sparse_moe.input_linear.weight", TensorDType.BF16, [8, 192, 64], gateUp.Length, s => s.Write(gateUp)));
            tensors.Add(new SafetensorsTensor($"model.layers.{l}.block_sparse_moe.output_linear.weight", TensorDType.BF16, [8, 64, 96], down.Length, s => s.Write(down)));
        }
        SafetensorsWriter.Write(Path.Combine(dst, "model.safetensors"), tensors, new Dictionary<string, string> { ["format"] = "pt" });
        return dst;
    }

    static float[] Logits(MoeModel m, int[] tokens)
    {
        var logits = new float[tokens.Length * m.Config.VocabSize];
        m.Forward(tokens, 0, m.NewCache(), logits, allLogits: true);
        return logits;
    }

    [Fact]
    public void GraniteLayoutOfMixtralGivesMixtralsLogits()
    {
        string granite = WriteAsGranite();
        int[] tokens = [5, 17, 300, 2, 99, 41, 7, 250, 13];
        using var mixtral = MoeModel.Load(TestPaths.Fixture("mixtral-tiny"));
        using var g = MoeModel.Load(granite);
        Assert.Equal("granitemoe", g.Config.ModelType);
        LogitsAssert.Close(Logits(mixtral, tokens), Logits(g, tokens), "granite layout of mixtral-tiny");
    }

    [Fact]
    public void QuantizedStacksMapTheBytesQuantizingAtLoadMakes()
    {
        string granite = WriteAsGranite(), q8 = Path.Combine(_dir, "q8");
        var report = QuantizedCheckpoint.Write(granite, q8, DType.Q8_0, null);
        Assert.Equal(6, report.Converted);                                      // 3 layers x (input_linear, output_linear)
        using var st = TensorStore.OpenDirectory(q8);
        var e = st.Entry("model.layers.1.block_sparse_moe.input_linear.weight");
        Assert.Equal(TensorDType.U8, e.DType);
        Assert.Equal([8, 192, DType.Q8_0.RowBytes(64)], e.Shape);
        int[] tokens = [5, 17, 300, 2, 99, 41];
        using var mapped = MoeModel.Load(q8);
        using var onLoad = MoeModel.Load(granite, new ModelOptions { ExpertDType = DType.Q8_0 });
        Assert.Null(mapped.Conversion);
        Assert.Equal(DType.Q8_0, mapped.Weights.Layers[2].Experts[7].Up.Type);
        Assert.Equal(Logits(onLoad, tokens), Logits(mapped, tokens));
    }
}
