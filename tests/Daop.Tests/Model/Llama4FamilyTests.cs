using System.Text.Json.Nodes;
using Daop.Engine.Device.Cpu;
using Daop.Engine.Load;
using Daop.Engine.Load.Config;
using Daop.Engine.Model;
using Daop.Engine.Model.Families;
using Daop.Engine.Model.Layers;
using Daop.Engine.Placement;
using Daop.Engine.Schedule;
using Daop.Tests.Load.Config;

namespace Daop.Tests.Model;

/// <summary>Llama-4's layer plan, router, attention temperature and config checks (its logits: GoldenTests).</summary>
public class Llama4FamilyTests
{
    static string Fixture => TestPaths.Fixture("llama4-tiny");

    [Fact]
    public void LayersFollowMoeLayersNoRopeLayersAndLayerTypes()
    {
        var (_, c) = ModelFamilies.ReadConfig(Path.Combine(Fixture, "config.json"));
        Assert.Equal([false, true, false, true], c.MoeMask());                  // moe_layers [1, 3]
        Assert.Equal(96, ((FfnSpec.Dense)c.Layers[0].Ffn).Intermediate);        // intermediate_size_mlp
        var moe = (FfnSpec.Moe)c.Layers[1].Ffn;
        Assert.Equal((4, 1, 48), (moe.Experts, moe.TopK, moe.ExpertIntermediate));
        Assert.Equal(new SharedExpertSpec.Ungated(48), moe.Shared);
        var rope = (AttentionSpec.Gqa)c.Layers[0].Attention;
        Assert.Equal((false, 8, null), (rope.SkipRope, rope.Chunk, rope.Temperature));
        Assert.True(rope.QkNorm!.Weightless);
        var nope = (AttentionSpec.Gqa)c.Layers[3].Attention;                    // no_rope_layers[3] = 0, full attention
        Assert.Equal((true, (int?)null, new QueryTemperature(4, 0.1f), (QkNormSpec?)null), (nope.SkipRope, nope.Chunk, nope.Temperature, nope.QkNorm));
    }

    [Fact]
    public void TemperatureGrowsWithEachFloorScaleOfPositions()
    {
        var t = new QueryTemperature(4, 0.1f);
        Assert.Equal(1f, t.At(0));
        Assert.Equal(1f, t.At(2));                                               // ⌊3/4⌋ = 0
        Assert.Equal((float)(1 + 0.1 * Math.Log(2)), t.At(3));                  // ⌊4/4⌋ = 1
        Assert.Equal((float)(1 + 0.1 * Math.Log(3)), t.At(8));                  // ⌊9/4⌋ = 2
    }

    [Fact]
    public void RouterWeighsTheTopLogitBySigmoid()
    {
        int[] ids = new int[1];
        float[] w = new float[1];
        Router.Route(new RouterSpec.SigmoidScalesInput(), [0.5f, 2f, -1f, 2f], ids, w, new float[4]);
        Assert.Equal(1, ids[0]);                                                 // the lower id wins the tie
        Assert.Equal(1 / (1 + MathF.Exp(-2f)), w[0], 1e-7f);
    }

    [Fact]
    public void CpuScaleRowsScalesEachRowByItsFactor()
    {
        using var d = new CpuDevice();
        var x = (CpuBuffer)d.Allocate(12);
        for (int i = 0; i < 12; i++) x.Data[i] = i + 1;
        d.ScaleRows(x, [2f, -1f], 4, row: 1);                                    // rows 1 and 2 of width 4
        Assert.Equal([1, 2, 3, 4, 10, 12, 14, 16, -9, -10, -11, -12], x.Data);
    }

    [Fact]
    public void ApproximateDaopIsRefusedWhereTheWeightScalesTheInput()
    {
        var e = Assert.Throws<NotSupportedException>(() =>
        {
            using var m = MoeModel.Load(Fixture, new ModelOptions { Experts = (model, _) => CpuStandInScheduler.FromRatio(model, new DaopPolicy(approximate: true), 0.5) });
        });
        Assert.Contains("use the exact mode", e.Message);
    }

    [Theory]
    [InlineData("num_experts_per_tok", "2", "field 'num_experts_per_tok' must be 1")]
    [InlineData("moe_layers", "[1, 4]", "field 'moe_layers' names layer 4 of a model of 4 layers")]
    [InlineData("no_rope_layers", "[1, 1]", "field 'no_rope_layers' has 2 entries for 4 layers")]
    [InlineData("layer_types", "[\"chunked_attention\", \"sliding_attention\", \"full_attention\", \"full_attention\"]", "field 'layer_types[1]' 'sliding_attention' is not")]
    [InlineData("attention_chunk_size", "0", "field 'attention_chunk_size' must be positive, found 0")]
    [InlineData("floor_scale", "-1", "field 'floor_scale' must be positive, found -1")]
    [InlineData("attn_scale", "1e308", "field 'attn_scale' must be in [0, 100], found 1E+308")]
    public void BadLlama4ConfigsAreNamed(string field, string json, string message)
    {
        using var dir = new TempModelDir(Fixture);
        dir.EditConfig(c => c[field] = JsonNode.Parse(json));
        var e = Assert.Throws<ModelLoadException>(() => { using var m = MoeModel.Load(dir.Path); });
        Assert.Contains(message, e.Message);
    }
}

/// <summary>llama4-tiny rewritten as the hub's multimodal Llama-4 checkpoint (text_config, language_model.* tensors, a vision tensor): the same logits.</summary>
public unsafe class Llama4MultimodalLayoutTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("daop-llama4mm-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void MultimodalLayoutGivesTheTextModelsLogits()
    {
        string src = TestPaths.Fixture("llama4-tiny");
        var text = JsonNode.Parse(File.ReadAllText(Path.Combine(src, "config.json")))!.AsObject();
        var config = new JsonObject
        {
            ["architectures"] = new JsonArray("Llama4ForConditionalGeneration"),
            ["model_type"] = "llama4",
            ["text_config"] = text,
            ["vision_config"] = new JsonObject { ["model_type"] = "llama4_vision_model", ["hidden_size"] = 8 },
        };
        File.WriteAllText(Path.Combine(_dir, "config.json"), config.ToJsonString());
        using (var st = Daop.Engine.Load.Safetensors.TensorStore.OpenDirectory(src))
        {
            var tensors = st.Names.Select(n =>
            {
                var e = st.Entry(n);
                return new Daop.Engine.Load.Safetensors.SafetensorsTensor("language_model." + n, e.DType, e.Shape, e.ByteLength,
                    Daop.Engine.Load.Safetensors.SafetensorsWriter.FromMemory(st.DataPointer(n), e.ByteLength));
            }).ToList();
            byte[] vision = new byte[16];
            tensors.Add(new("vision_model.patch_embedding.weight", Daop.Engine.Load.Safetensors.TensorDType.F32, [2, 2], 16, s => s.Write(vision)));
            Daop.Engine.Load.Safetensors.SafetensorsWriter.Write(Path.Combine(_dir, "model.safetensors"), tensors, new Dictionary<string, string> { ["format"] = "pt" });
        }
        int[] tokens = [3, 90, 17, 400, 2, 55, 8, 301, 12, 77];
        float[] Logits(string dir)
        {
            using var m = MoeModel.Load(dir);
            var logits = new float[tokens.Length * m.Config.VocabSize];
            m.Forward(tokens, 0, m.NewCache(), logits, allLogits: true);
            return logits;
        }
        Assert.Equal(Logits(src), Logits(_dir));
    }

    [Fact]
    public void AMultimodalConfigWithoutTextConfigIsNamed()
    {
        File.WriteAllText(Path.Combine(_dir, "config.json"), "{\"model_type\": \"llama4\"}");
        var e = Assert.Throws<ModelLoadException>(() => { using var m = MoeModel.Load(_dir); });
        Assert.Contains("field 'text_config' is missing", e.Message);
    }
}
