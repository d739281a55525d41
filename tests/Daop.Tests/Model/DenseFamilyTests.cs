using System.Text.Json.Nodes;
using Daop.Engine.Load;
using Daop.Engine.Load.Config;
using Daop.Engine.Model;
using Daop.Engine.Model.Families;
using Daop.Engine.Model.Layers;
using Daop.Tests.Load.Config;

namespace Daop.Tests.Model;

/// <summary>Dense Llama, Mistral and Qwen2: each layer's MLP is its one expert, and their configs are checked.</summary>
public class DenseFamilyTests
{
    [Theory]
    [InlineData("llama-odd", false, false, null)]
    [InlineData("qwen2-tiny", true, false, null)]   // Qwen2 always has q/k/v biases
    [InlineData("mistral-tiny", false, false, 8)]
    public void EachLayersMlpIsItsOneRouterlessExpert(string fixture, bool qkvBias, bool oBias, int? window)
    {
        var (_, c) = ModelFamilies.ReadConfig(Path.Combine(TestPaths.Fixture(fixture), "config.json"));
        Assert.All(c.Layers, l =>
        {
            var moe = Assert.IsType<FfnSpec.Moe>(l.Ffn);
            Assert.Equal((1, 1), (moe.Experts, moe.TopK));
            Assert.IsType<RouterSpec.Single>(moe.Router);
            var a = Assert.IsType<AttentionSpec.Gqa>(l.Attention);
            Assert.Equal(qkvBias, a.QkvBias);
            Assert.Equal(oBias, a.OBias);
            Assert.Equal(window, a.SlidingWindow);
        });
        using var model = MoeModel.Load(TestPaths.Fixture(fixture));
        Assert.All(model.Weights.Layers, l => Assert.Null(((MoeBlock)l.Ffn).Router));
        Assert.Equal(fixture == "llama-odd", model.Config.LmHead.TiedToEmbedding);
    }

    [Fact]
    public void LayerTypesGiveEachLayerItsWindow()
    {
        using var dir = new TempModelDir(TestPaths.Fixture("qwen2-tiny"));
        dir.EditConfig(c =>
        {
            c["layer_types"] = new JsonArray("sliding_attention", "full_attention", "sliding_attention");
            c["sliding_window"] = 5;
        });
        var (_, cfg) = ModelFamilies.ReadConfig(dir.ConfigPath);
        Assert.Equal([5, null, 5], cfg.Layers.Select(l => ((AttentionSpec.Gqa)l.Attention).SlidingWindow));
    }

    [Theory]
    [InlineData("llama-odd", "mlp_bias", "true", "field 'mlp_bias' true is not supported")]
    [InlineData("llama-odd", "pretraining_tp", "2", "field 'pretraining_tp' must be 1")]
    [InlineData("qwen2-tiny", "layer_types", "[\"full_attention\"]", "field 'layer_types' has 1 entries for 3 layers")]
    [InlineData("qwen2-tiny", "layer_types", "[\"full_attention\", \"local\", \"full_attention\"]", "field 'layer_types[1]' 'local' is not")]
    [InlineData("qwen2-tiny", "layer_types", "[\"full_attention\", \"sliding_attention\", \"full_attention\"]", "field 'sliding_window' must be a positive integer for layer_types[1]")]
    [InlineData("qwen2-tiny", "layer_types", "[1, 2, 3]", "field 'layer_types[0]' must be a string, found 1")]
    public void BadDenseConfigsAreNamed(string fixture, string field, string json, string message)
    {
        using var dir = new TempModelDir(TestPaths.Fixture(fixture));
        dir.EditConfig(c => c[field] = JsonNode.Parse(json));
        var e = Assert.Throws<ModelLoadException>(() => { using var m = MoeModel.Load(dir.Path); });
        Assert.Contains("config.json", e.Message);
        Assert.Contains(message, e.Message);
    }
}
