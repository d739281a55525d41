using System.Text.Json.Nodes;
using Daop.Engine.Device.Cpu;
using Daop.Engine.Load.Config;
using Daop.Engine.Model;
using Daop.Engine.Model.Families;
using Daop.Engine.Model.Layers;
using Daop.Tests.Load.Config;

namespace Daop.Tests.Model;

/// <summary>Families compose the layer specs their config keys call for, and the forward pass honours each spec per layer.</summary>
public class LayerSpecTests
{
    static ModelConfig Read(string fixture, Action<JsonObject>? edit = null)
    {
        using var dir = new TempModelDir(TestPaths.Fixture(fixture));
        if (edit != null) dir.EditConfig(edit);
        return ModelFamilies.ReadConfig(dir.ConfigPath).Config;
    }

    [Fact]
    public void MixtralIsGqaAndOneMoeBlockEverywhere()
    {
        var c = Read("mixtral-odd");
        var gqa = Assert.IsType<AttentionSpec.Gqa>(c.Attention);
        Assert.Equal((5, 1, 16), (gqa.Heads, gqa.KvHeads, gqa.HeadDim));
        Assert.Equal((null, false, false, null, null), (gqa.QkNorm, gqa.QkvBias, gqa.OBias, gqa.ClipQkv, gqa.SlidingWindow));
        Assert.Equal(NormSpec.Rms(1e-5f), c.Norm);
        Assert.Equal(new LmHeadSpec(), c.LmHead);
        Assert.All(c.Layers, l => Assert.Same(c.Attention, l.Attention));
        var moe = Assert.IsType<FfnSpec.Moe>(c.Layers[0].Ffn);
        Assert.Equal(new FfnSpec.Moe(6, 3, 136, new RouterSpec.SoftmaxTopK(true)), moe);
        Assert.All(c.Layers, l => Assert.Same(moe, l.Ffn));
        Assert.Equal((6, 3, 136, 3), (c.NumExperts, c.TopK, c.ExpertIntermediate, c.MoeLayerCount));
    }

    [Fact]
    public void QwenDenseLayersAreDenseSpecs()
    {
        var c = Read("qwen2moe-tiny", j =>
        {
            j["num_hidden_layers"] = 4;
            j["mlp_only_layers"] = new JsonArray(0);
            j["decoder_sparse_step"] = 2;
        });
        Assert.Equal(new[] { false, true, false, true }, Enumerable.Range(0, 4).Select(c.IsMoe));
        Assert.Equal(new FfnSpec.Dense(128), c.Layers[0].Ffn);
        var moe = Assert.IsType<FfnSpec.Moe>(c.Layers[1].Ffn);
        Assert.Equal(new SharedExpertSpec.SigmoidGated(96), moe.Shared);
        Assert.True(((AttentionSpec.Gqa)c.Attention).QkvBias);
        Assert.Equal(2, c.MoeLayerCount);
        Assert.Equal(8, c.NumExperts);                       // the conveniences read the MoE layer, not layer 0
        Assert.Null(Assert.IsType<FfnSpec.Moe>(Read("qwen2moe-tiny", j => j["shared_expert_intermediate_size"] = 0).Layers[0].Ffn).Shared);
    }

    [Fact]
    public void QkNormScopeClipAndNormKindComeFromTheFamily()
    {
        var qwen3 = (AttentionSpec.Gqa)Read("qwen3moe-tiny").Attention;
        Assert.Equal(new QkNormSpec(QkNormScope.PerHead, NormSpec.Rms(1e-5f)), qwen3.QkNorm);
        var olmoe = (AttentionSpec.Gqa)Read("olmoe-tiny", j => { j["clip_qkv"] = 8.0; j["attention_bias"] = true; }).Attention;
        Assert.Equal((QkNormScope.Whole, 8f, true, true), (olmoe.QkNorm!.Scope, olmoe.ClipQkv, olmoe.QkvBias, olmoe.OBias));
        var phi = Read("phimoe-tiny", j => j["lm_head_bias"] = true);
        Assert.Equal(NormKind.LayerNorm, phi.Norm.Kind);
        Assert.True(phi.LmHead.Bias);
        Assert.Null(phi.Rope.InvFreqDType);
        Assert.IsType<RouterSpec.SparseMixer>(phi.Router);
    }

    [Fact]
    public void TruncatedKeepsTheFirstLayers()
    {
        var c = Read("qwen2moe-tiny", j => j["mlp_only_layers"] = new JsonArray(0)).Truncated(2);
        Assert.Equal(2, c.NumLayers);
        Assert.Equal(new[] { false, true }, Enumerable.Range(0, 2).Select(c.IsMoe));
    }

    /// <summary>Each layer runs its own attention spec: a window covering every position is full attention, bit for bit; a window of 1 in one layer is not.</summary>
    [Fact]
    public void AttentionSpecsArePerLayer()
    {
        var variant = LogitBits.Find("qwen2moe-mlp-only-window") with { Name = "qwen2moe-per-layer-window", Edit = j => j["num_hidden_layers"] = 4 };
        ModelConfig Windows(ModelConfig c, params int?[] w) => c with
        {
            Layers = c.Layers.Select((l, i) => l with { Attention = ((AttentionSpec.Gqa)l.Attention) with { SlidingWindow = w[i] } }).ToArray(),
        };
        using var full = variant.Load(adjust: c => Windows(c, null, null, null, null));
        using var wide = variant.Load(adjust: c => Windows(c, null, 64, null, 64));
        using var narrow = variant.Load(adjust: c => Windows(c, null, 1, null, null));
        Assert.Equal(LogitBits.Hash(full), LogitBits.Hash(wide));
        Assert.NotEqual(LogitBits.Hash(full), LogitBits.Hash(narrow));
    }

    /// <summary>An ungated shared expert (DeepSeek) adds its output to the routed experts' as is.</summary>
    [Fact]
    public void UngatedSharedExpertIsAddedAsIs()
    {
        using var model = LogitBits.Find("qwen2moe-sparse-step-no-shared").Load(adjust: c => c with
        {
            Layers = c.Layers.Select(l => l.Ffn is FfnSpec.Moe m ? l with { Ffn = m with { Shared = new SharedExpertSpec.Ungated(40) } } : l).ToArray(),
        });
        const int T = 5;
        var c = model.Config;
        int h = c.HiddenSize;
        var block = Assert.IsType<MoeBlock>(model.Weights.Layers[1].Ffn);
        Assert.Null(block.SharedGate);
        Assert.Equal(40, block.Shared!.Value.Gate.Rows);
        var routedOnly = new MoeBlock(block.Spec with { Shared = null }) { Router = block.Router, Experts = block.Experts };

        var d = new CpuDevice();
        var s = new RunState(d, c, T);
        var x = ((CpuBuffer)s.Xn).Data;
        for (int i = 0; i < T * h; i++) x[i] = MathF.Sin(i * 0.37f);
        float[] Run(FfnLayer layer)
        {
            layer.Forward(new LayerStep(d, s, 1, T, 0), model.Experts, null);
            return ((CpuBuffer)s.Out).Data[..(T * h)];
        }
        var routed = Run(routedOnly);
        var both = Run(block);
        var shared = d.Allocate(T * h);
        d.Ffn(block.Shared.Value, s.Xn, shared, T);
        var want = routed.Zip(((CpuBuffer)shared).Data, (a, b) => a + b).ToArray();
        Assert.Equal(want, both);
    }
}
