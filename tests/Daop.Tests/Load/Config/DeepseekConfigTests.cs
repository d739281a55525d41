using System.Text.Json.Nodes;
using Daop.Engine.Load;
using Daop.Engine.Load.Config;
using Daop.Engine.Model;
using Daop.Engine.Model.Families;

namespace Daop.Tests.Load.Config;

/// <summary>DeepSeek-V2/V3 configs: the specs they compose and the errors of their own keys.</summary>
public class DeepseekConfigTests
{
    static ModelConfig Read(string fixture, Action<JsonObject>? edit = null)
    {
        using var dir = new TempModelDir(TestPaths.Fixture(fixture));
        if (edit != null) dir.EditConfig(edit);
        return ModelFamilies.ReadConfig(dir.ConfigPath).Config;
    }

    [Fact]
    public void V2LiteShapeComposesMlaDenseFirstAndGroupLimitedSoftmax()
    {
        var c = Read("deepseekv2-tiny");
        var mla = Assert.IsType<AttentionSpec.Mla>(c.Attention);
        Assert.Equal((4, 24, 16, 8, 12, (int?)null, true), (mla.Heads, mla.KvRank, mla.NopeDim, mla.RopeHeadDim, mla.ValueDim, mla.QRank, mla.RopeInterleaved));
        Assert.Equal(24 + 8, c.KvCacheWidth);                 // c and k_pe: not 2·NH·(dn + dr) = 192
        Assert.Equal([false, true, true], c.MoeMask());
        Assert.Equal(new FfnSpec.Dense(96), c.Layers[0].Ffn);
        Assert.Equal(new SharedExpertSpec.Ungated(2 * 32), c.Moe!.Shared);
        Assert.Equal(new RouterSpec.GroupLimitedSoftmax(4, 2, 1.5f, false), c.Router);
        // (dn + dr)^-1/2 · mscale(40, 0.707)²; the RoPE attention factor mscale(40, 0.707) / mscale(40, 0.707) = 1.
        double m = 0.1 * 0.707 * Math.Log(40) + 1;
        Assert.Equal(m * m / Math.Sqrt(24), mla.Scale, 6);
        Assert.Equal((double?)0.707, mla.Rope.Mscale);
        Assert.Equal((double?)0.707, mla.Rope.MscaleAllDim);
    }

    [Fact]
    public void V3ComposesTheQLoraAndTheBiasedSigmoidRouter()
    {
        var c = Read("deepseekv3-tiny");
        var mla = Assert.IsType<AttentionSpec.Mla>(c.Attention);
        Assert.Equal(40, mla.QRank);
        Assert.Equal(new RouterSpec.GroupLimitedSigmoid(4, 2, 2.5f, true), c.Router);
        Assert.True(c.Router.HasScoreBias);
        Assert.False(Read("deepseekv3-tiny", j => j["rope_interleave"] = false).Attention is AttentionSpec.Mla { RopeInterleaved: true });
        // moe_layer_freq (DeepSeek's own code; 1 in the released configs) makes every other layer from the first dense.
        Assert.Equal([false, false, true], Read("deepseekv3-tiny", j => j["moe_layer_freq"] = 2).MoeMask());
    }

    [Theory]
    [InlineData("deepseekv2-tiny", "n_group", 3, "must be a positive divisor of n_routed_experts (8), found 3")]
    [InlineData("deepseekv2-tiny", "topk_group", 5, "must be between 1 and n_group (4), found 5")]
    [InlineData("deepseekv2-tiny", "topk_group", 1, "(1) keeps 1 x 2 experts, fewer than num_experts_per_tok (3)")]
    [InlineData("deepseekv3-tiny", "n_group", 0, "must be a positive divisor of n_routed_experts (8), found 0")]
    [InlineData("deepseekv3-tiny", "n_group", 8, "must leave at least 2 experts per group")]
    [InlineData("deepseekv2-tiny", "qk_rope_head_dim", 7, "must be even (RoPE rotates pairs), found 7")]
    [InlineData("deepseekv2-tiny", "kv_lora_rank", 0, "must be a positive integer, found 0")]
    [InlineData("deepseekv3-tiny", "q_lora_rank", -4, "must be a positive integer, found -4")]
    [InlineData("deepseekv2-tiny", "first_k_dense_replace", 4, "must be between 0 and num_hidden_layers (3), found 4")]
    [InlineData("deepseekv2-tiny", "moe_layer_freq", 0, "must be positive, found 0")]
    [InlineData("deepseekv3-tiny", "first_k_dense_replace", 3, "(3) with moe_layer_freq 1 leaves no MoE layer among the 3 layers")]
    [InlineData("deepseekv3-tiny", "routed_scaling_factor", 0, "must be positive, found 0")]
    [InlineData("deepseekv2-tiny", "n_shared_experts", -1, "must not be negative, found -1")]
    public void BadValueIsNamed(string fixture, string field, int value, string message)
    {
        var e = Assert.Throws<ModelLoadException>(() => Read(fixture, j => j[field] = value));
        Assert.Contains($"'{field}'", e.Message);
        Assert.Contains(message, e.Message);
    }

    [Theory]
    [InlineData("topk_method", "noaux_tc", "'noaux_tc' is not supported (greedy, group_limited_greedy)")]
    [InlineData("n_group", null, "field 'n_group' is missing")]
    [InlineData("kv_lora_rank", null, "field 'kv_lora_rank' is missing")]
    public void V2KeysAreChecked(string field, string? value, string message)
    {
        var e = Assert.Throws<ModelLoadException>(() => Read("deepseekv2-tiny", j => { if (value == null) j.Remove(field); else j[field] = value; }));
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void DenseLayersNeedIntermediateSize()
    {
        var e = Assert.Throws<ModelLoadException>(() => Read("deepseekv2-tiny", j => j.Remove("intermediate_size")));
        Assert.Contains("'intermediate_size' is needed for the dense layers", e.Message);
        Assert.True(Read("deepseekv2-tiny", j => { j.Remove("intermediate_size"); j["first_k_dense_replace"] = 0; }).MoeMask().All(x => x));
    }

    [Fact]
    public void MscaleAllDimThatZeroesOrOverflowsTheScaleIsRejected()
    {
        var e = Assert.Throws<ModelLoadException>(() => Read("deepseekv2-tiny", j => j["rope_parameters"]!["mscale_all_dim"] = -10.0));
        Assert.Contains("'mscale_all_dim'", e.Message);
        e = Assert.Throws<ModelLoadException>(() => Read("deepseekv3-tiny", j => j["rope_parameters"]!["mscale_all_dim"] = 1e308));
        Assert.Contains("rope_parameters: field 'mscale_all_dim'", e.Message);
        Assert.Contains("gives the attention a score scale of", e.Message);
    }

    [Fact]
    public void V2LiteReleasedConfigReads()
    {
        var c = ModelFamilies.ReadConfig(Path.Combine(TestPaths.Root, "models", "configs", "DeepSeek-V2-Lite.json")).Config;
        var mla = Assert.IsType<AttentionSpec.Mla>(c.Attention);
        Assert.Equal((16, 512, 128, 64, 128), (mla.Heads, mla.KvRank, mla.NopeDim, mla.RopeHeadDim, mla.ValueDim));
        Assert.Equal(512 + 64, c.KvCacheWidth);               // 576 floats per position and layer, not 2·16·192 = 6144
        Assert.Equal(new RouterSpec.GroupLimitedSoftmax(1, 1, 1f, false), c.Router);
        Assert.Equal(26, c.MoeLayerCount);
        Assert.Equal(new SharedExpertSpec.Ungated(2816), c.Moe!.Shared);
        Assert.Equal(("yarn", 40.0, 4096), (c.Rope.Type, c.Rope.Factor, c.Rope.OriginalMaxPositions));
    }

    [Fact]
    public void KvCacheBytesAreTheCompressedLatents()
    {
        using var model = MoeModel.Load(TestPaths.Fixture("deepseekv2-tiny"), new ModelOptions { ContextLength = 32 });
        // 3 layers × 32 positions × (r 24 + dr 8) floats: what inspect's VRAM plan reports as the KV cache.
        Assert.Equal(3L * 32 * 32 * 4, ContextLimit.KvCacheBytes(model.Config, 32));
        var cache = Assert.IsType<Daop.Engine.Device.Cpu.CpuLatentCache>(model.NewCache());
        Assert.Equal(32 * 32, cache.Latent[0].Length);
    }
}
