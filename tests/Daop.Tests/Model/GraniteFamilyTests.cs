using System.Text.Json.Nodes;
using Daop.Engine.Load;
using Daop.Engine.Load.Config;
using Daop.Engine.Load.Safetensors;
using Daop.Engine.Model;
using Daop.Engine.Model.Families;
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
