using System.Text.Json.Nodes;
using Daop.Engine.Load;
using Daop.Engine.Load.Config;
using Daop.Engine.Load.Safetensors;
using Daop.Engine.Model;
using Daop.Engine.Model.Families;
using Daop.Engine.Model.Layers;
using Daop.Kernels;
using Daop.Kernels.Cpu;
using Daop.Kernels.Quant;
using Daop.Tests.Load.Config;

namespace Daop.Tests.Model;

/// <summary>
/// GPT-OSS beyond the goldens: its config keys (per-layer sink attention, YaRN without truncation, the clamped experts)
/// and their errors, and the MXFP4 fixture, whose references come from a different numeric regime (see TestPaths).
/// </summary>
public class GptOssTests
{
    static string LoadFails(TempModelDir dir) => Assert.Throws<ModelLoadException>(() => MoeModel.Load(dir.Path)).Message;

    [Fact]
    public void ConfigGivesPerLayerSinkAttentionAndClampedExperts()
    {
        var (_, c) = ModelFamilies.ReadConfig(Path.Combine(TestPaths.Fixture("gptoss-tiny"), "config.json"));
        var windows = c.Layers.Select(l => ((AttentionSpec.SinkGqa)l.Attention).SlidingWindow).ToArray();
        Assert.Equal([8, null, 8], windows);                                    // sliding, full, sliding
        Assert.All(c.Layers, l => Assert.True(((AttentionSpec.SinkGqa)l.Attention).Bias));
        Assert.Equal(new Activation.ClampedSwiGlu(1.702f, 7f), c.Moe!.Act);
        Assert.IsType<RouterSpec.TopKSoftmax>(c.Router);
        Assert.False(c.Rope.Truncate);
        Assert.Equal("yarn", c.Rope.Type);
    }

    [Fact]
    public void YarnWithoutTruncationKeepsTheFractionalRamp()
    {
        // dim 16, θ 150000, original 4096: the correction range is (2.02, 4.35) untruncated and [2, 5] truncated, so
        // pair 3's ramp is 0.42 or 0.33 (different blends of interpolation and extrapolation), while pair 0 (ramp 0:
        // extrapolation) and pair 7 (ramp 1: interpolation) are the same either way.
        var spec = new RopeSpec(150000, "yarn", 32, OriginalMaxPositions: 4096, Truncate: false);
        var exact = new RopeTable(spec, 16, 2, 512);
        var truncated = new RopeTable(spec with { Truncate = true }, 16, 2, 512);
        Assert.NotEqual(exact.Sin[exact.Half + 3], truncated.Sin[truncated.Half + 3]);
        Assert.Equal(exact.Sin[exact.Half + 0], truncated.Sin[truncated.Half + 0]);
        Assert.Equal(exact.Sin[exact.Half + 7], truncated.Sin[truncated.Half + 7]);
    }

    [Theory]
    [InlineData("layer_types", "[\"sliding_attention\", \"chunked_attention\", \"full_attention\"]", "'layer_types[1]' is 'chunked_attention'")]
    [InlineData("layer_types", "[\"full_attention\"]", "'layer_types' has 1 entries, expected num_hidden_layers (3)")]
    [InlineData("layer_types", "\"full_attention\"", "'layer_types' must be a list of strings")]
    [InlineData("swiglu_limit", "0", "'swiglu_limit' must be positive, found 0")]
    [InlineData("swiglu_limit", "-7.0", "'swiglu_limit' must be positive")]
    [InlineData("sliding_window", "0", "'sliding_window' must be a positive integer when layer_types has 'sliding_attention' layers")]
    [InlineData("sliding_window", "null", "'sliding_window' must be a positive integer")]
    public void BadGptOssValueIsNamed(string field, string json, string message)
    {
        using var dir = new TempModelDir(TestPaths.Fixture("gptoss-tiny"));
        dir.EditConfig(c => c[field] = JsonNode.Parse(json));
        string m = LoadFails(dir);
        Assert.Contains(message, m);
        Assert.Contains("config.json", m);
    }

    [Fact]
    public void MissingStackedExpertsAreNamed()
    {
        // The layout comes from the tensors (the hub's _blocks, else the float stack): a layer with neither names the
        // float tensor it looked for.
        using var dir = new TempModelDir(TestPaths.Fixture("gptoss-tiny"));
        dir.EditWeightsHeader(h =>
        {
            h["renamed"] = h["model.layers.1.mlp.experts.gate_up_proj"]!.DeepClone();
            h.Remove("model.layers.1.mlp.experts.gate_up_proj");
        });
        Assert.Contains("missing tensor 'model.layers.1.mlp.experts.gate_up_proj'", LoadFails(dir));
    }

    [Fact]
    public void QuantizeRefusesStackedExperts()
    {
        // 'daop quantize' writes one tensor per expert matrix; GPT-OSS converts at load instead (and that works).
        string outDir = Path.Combine(Path.GetTempPath(), "daop-gptoss-q-" + Guid.NewGuid().ToString("N"));
        var e = Assert.Throws<ModelLoadException>(() => QuantizedCheckpoint.Write(TestPaths.Fixture("gptoss-tiny"), outDir, DType.Q4_0, null));
        Assert.Contains("--expert-dtype", e.Message);
        Assert.False(Directory.Exists(outDir));
        using var converted = MoeModel.Load(TestPaths.Fixture("gptoss-tiny"), new ModelOptions { ExpertDType = DType.Q4_0 });
        Assert.Equal(DType.Q4_0, converted.Weights.Layers[0].Experts[0].Down.Type);
        var logits = new float[converted.Config.VocabSize];
        converted.Forward([5, 6, 7], 0, converted.NewCache(), logits);
        Assert.All(logits, x => Assert.True(float.IsFinite(x)));
    }

    [Fact]
    public unsafe void Mxfp4ExpertsWidenToTheHubDequantization()
    {
        // Every expert matrix as loaded (repacked into Daop's MXFP4) widens to exactly what the hub's blocks and scales
        // decode to, in transformers' layout: gate = even rows of gate_up, up = odd rows, down as stored.
        string dir = TestPaths.Fixture("gptoss-tiny-mxfp4");
        using var model = MoeModel.Load(dir);
        using var store = TensorStore.OpenDirectory(dir);
        int h = model.Config.HiddenSize, inter = model.Config.ExpertIntermediate;
        var row = new float[Math.Max(h, inter)];
        var hub = new float[Math.Max(h, inter)];
        for (int l = 0; l < model.Config.NumLayers; l++)
        {
            string p = $"model.layers.{l}.mlp.experts.";
            byte* guc = store.DataPointer(p + "gate_up_proj_blocks"), gus = store.DataPointer(p + "gate_up_proj_scales");
            byte* dc = store.DataPointer(p + "down_proj_blocks"), ds = store.DataPointer(p + "down_proj_scales");
            for (int e = 0; e < model.Config.NumExperts; e++)
            {
                var ew = model.Weights.Layers[l].Experts[e];
                Assert.Equal(DType.MXFP4, ew.Gate.Type);
                for (int r = 0; r < 2 * inter; r++)
                {
                    long hubRow = (long)e * 2 * inter + r;
                    Decode(guc + hubRow * h / 2, gus + hubRow * h / 32, h, hub);
                    MatMul.WidenRow((r & 1) == 0 ? ew.Gate : ew.Up, r / 2, row);
                    Assert.Equal(hub.AsSpan(0, h).ToArray(), row.AsSpan(0, h).ToArray());
                }
                for (int r = 0; r < h; r++)
                {
                    long hubRow = (long)e * h + r;
                    Decode(dc + hubRow * inter / 2, ds + hubRow * inter / 32, inter, hub);
                    MatMul.WidenRow(ew.Down, r, row);
                    Assert.Equal(hub.AsSpan(0, inter).ToArray(), row.AsSpan(0, inter).ToArray());
                }
            }
        }
    }

    static unsafe void Decode(byte* codes, byte* scales, int cols, float[] dst)
    {
        for (int b = 0; b < cols / 32; b++)
            HubMxfp4.Dequantize(new ReadOnlySpan<byte>(codes + 16 * b, 16), scales[b], dst.AsSpan(32 * b, 32));
    }

    [Fact]
    public void Mxfp4FixtureWidenedExactlyMatchesTransformers()
    {
        // The hub's MXFP4 experts, repacked at load and widened exactly to f32 (E2M1 x 2^e is exact): the model transformers
        // ran (its dequantized experts in fp32, tests/tools/hf-family-fixtures.py), so logits and routers within 1e-4.
        string dir = TestPaths.Fixture("gptoss-tiny-mxfp4");
        using var reference = TensorStore.OpenFile(Path.Combine(dir, "reference.safetensors"));
        using var model = MoeModel.Load(dir, new ModelOptions { ExpertDType = Daop.Kernels.DType.F32 });
        var (ids, shape) = reference.Int64s("input_ids");
        var (want, _) = reference.Floats("logits");
        int len = (int)shape[1], v = model.Config.VocabSize, e = model.Config.NumExperts;
        for (int b = 0; b < shape[0]; b++)
        {
            var rec = new RoutingRecorder(model.Config.NumLayers, e, model.Config.TopK, keepLogits: true);
            model.Observer = rec;
            var logits = new float[len * v];
            model.Forward(ids.Skip(b * len).Take(len).Select(x => (int)x).ToArray(), 0, model.NewCache(), logits, allLogits: true);
            for (int l = 0; l < model.Config.NumLayers; l++)
            {
                var (router, _) = reference.Floats($"router_logits.{l}");
                LogitsAssert.Close(router.AsSpan(b * len * e, len * e), Enumerable.Range(0, len).SelectMany(p => rec.Logits(l, p).ToArray()).ToArray(), $"mxfp4 row {b} router_logits.{l}");
            }
            LogitsAssert.Close(want.AsSpan(b * len * v, len * v), logits, $"mxfp4 row {b} logits");
        }
    }
}
