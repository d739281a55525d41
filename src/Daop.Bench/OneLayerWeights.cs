using Daop.Engine.Load.Config;
using Daop.Engine.Model;
using Daop.Engine.Model.Layers;

namespace Daop.Bench;

/// <summary>A model of one MoE layer around given experts (no attention weights), for the expert schedulers' checks and benchmarks.</summary>
public static class OneLayerWeights
{
    /// <summary>
    /// Weights whose only layer routes to <paramref name="experts"/> with activation <paramref name="act"/> (SwiGLU when
    /// null); everything else is empty.
    /// </summary>
    public static ModelWeights Of(ExpertWeights[] experts, Activation? act = null)
    {
        ArgumentNullException.ThrowIfNull(experts);
        var norm = new NormWeights(NormKind.RmsNorm, [1f], null, 1e-5f);
        var lin = new LinearWeights(default, null);
        var attention = new GqaAttention(new AttentionSpec.Gqa(1, 1, 2, new RopeSpec(10000, "default"))) { Q = lin, K = lin, V = lin, O = lin };
        var moe = new MoeBlock(new FfnSpec.Moe(experts.Length, 1, experts[0].Gate.Rows, new RouterSpec.SoftmaxTopK(false)) { Act = act ?? Activation.Silu }) { Router = lin, Experts = experts };
        var layer = new LayerWeights { AttnNorm = norm, FfnNorm = norm, Attention = attention, Ffn = moe };
        return new ModelWeights { Embed = default, FinalNorm = norm, LmHead = lin, Layers = [layer] };
    }
}
