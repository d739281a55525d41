using Daop.Engine.Load.Config;
using Daop.Engine.Model.Families;

namespace Daop.Engine.Model;

/// <summary>
/// Which <see cref="WeightClass"/> each weight matrix of a model belongs to, from its config and its family's tensor
/// names: routed experts, the kept ones (token embedding, LM head, routers, shared-expert gates), and every other matrix
/// the model reads (attention projections, shared experts, dense MLPs) dense.
/// </summary>
public sealed class WeightClasses
{
    readonly HashSet<string> _experts = new(StringComparer.Ordinal), _kept = new(StringComparer.Ordinal);

    /// <summary>The classes of <paramref name="config"/>'s matrices named by <paramref name="names"/>.</summary>
    public WeightClasses(ModelConfig config, TensorNames names)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(names);
        _kept.Add(names.Embed);
        _kept.Add(names.LmHead);
        for (int l = 0; l < config.NumLayers; l++)
        {
            if (config.Layers[l].Ffn is not FfnSpec.Moe moe) continue;
            if (names.Router != null) _kept.Add(TensorNames.Format(names.Router, l));
            if (names.SharedExpertGate is { } g) _kept.Add(TensorNames.Format(g, l));
            for (int e = 0; e < moe.Experts; e++)
                foreach (string? p in (ReadOnlySpan<string?>)[names.ExpertGate, names.ExpertUp, names.ExpertGateUp, names.ExpertDown])
                    if (p != null)
                    {
                        string name = TensorNames.Format(p, l, e);
                        _experts.Add(name);
                        if (p.EndsWith("[{e}]", StringComparison.Ordinal) || p.EndsWith("[{e}].T", StringComparison.Ordinal))
                            _experts.Add(name[..name.LastIndexOf('[')]);                // the stack itself
                    }
        }
    }

    /// <summary>The class of matrix <paramref name="name"/> (any name the model does not call an expert or kept matrix is dense).</summary>
    public WeightClass Of(string name) => _experts.Contains(name) ? WeightClass.Experts : _kept.Contains(name) ? WeightClass.Kept : WeightClass.Dense;
}
