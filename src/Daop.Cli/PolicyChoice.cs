using Daop.Engine.Placement;

namespace Daop.Cli;

/// <summary>Maps <c>--policy</c> names to placement policies.</summary>
static class PolicyChoice
{
    public const string Names = "lru-on-demand, lru-prefetch, static-cpu, daop-exact, daop (approximate), daop-checked (approximate, " +
        "prediction checked against the true routing), daop-checked-degrade (checked, missed CPU experts replaced by GPU ones), " +
        "daop-exact-drift, daop-drift, daop-checked-drift";

    /// <summary>Every policy name <see cref="Create"/> knows.</summary>
    public static readonly string[] All = ["lru-on-demand", "lru-prefetch", "static-cpu", "daop-exact", "daop", "daop-checked", "daop-checked-degrade", "daop-exact-drift", "daop-drift",
        "daop-checked-drift"];

    /// <summary>Other names <see cref="Create"/> accepts: lru (lru-on-demand), fiddler (static-cpu), daop-approx (daop).</summary>
    public static readonly string[] Aliases = ["lru", "fiddler", "daop-approx"];

    /// <summary>
    /// The policy called <paramref name="name"/>; DAOP's approximate mode keeps its first <paramref name="exactLayers"/>
    /// layers exact, and the checked ones take pre-calculated outputs within <paramref name="maxDrift"/> (<see cref="IPlacementPolicy.PrecalcMaxDrift"/>).
    /// </summary>
    public static IPlacementPolicy Create(string name, int exactLayers = 1, float maxDrift = float.PositiveInfinity) => name switch
    {
        "lru-on-demand" or "lru" => new LruPolicy(prefetch: false),
        "lru-prefetch" => new LruPolicy(prefetch: true),
        "static-cpu" or "fiddler" => new StaticPolicy(),
        "daop-exact" => new DaopPolicy(approximate: false),
        "daop" or "daop-approx" => new DaopPolicy(approximate: true, exactLayers),
        "daop-checked" => new DaopPolicy(approximate: true, exactLayers, use: PredictionUse.Check, precalcMaxDrift: maxDrift),
        "daop-checked-degrade" => new DaopPolicy(approximate: true, exactLayers, use: PredictionUse.CheckDegrade, precalcMaxDrift: maxDrift),
        "daop-exact-drift" => new DaopPolicy(approximate: false, driftWindow: DaopPolicy.DefaultDriftWindow),
        "daop-drift" => new DaopPolicy(approximate: true, exactLayers, driftWindow: DaopPolicy.DefaultDriftWindow),
        "daop-checked-drift" => new DaopPolicy(approximate: true, exactLayers, driftWindow: DaopPolicy.DefaultDriftWindow, use: PredictionUse.Check,
            precalcMaxDrift: maxDrift),
        _ => throw new ArgumentException($"--policy '{name}' is not known (one of: {Names})"),
    };

    /// <summary>
    /// The policies of <paramref name="names"/>, each checked approximate one (daop-checked, daop-checked-degrade,
    /// daop-checked-drift) once per bound in <paramref name="maxDrifts"/> (<c>--precalc-max-drift</c>; none: unbounded), as
    /// (row name, factory) pairs.
    /// </summary>
    public static List<(string Name, Func<IPlacementPolicy> Create)> Expand(IEnumerable<string> names, int exactLayers, IReadOnlyList<float> maxDrifts)
    {
        var list = new List<(string, Func<IPlacementPolicy>)>();
        foreach (var n in names)
        {
            var p = Create(n, exactLayers);
            if (maxDrifts.Count == 0 || !p.ChecksPrediction)
            {
                list.Add((p.Name, () => Create(n, exactLayers)));
                continue;
            }
            foreach (float d in maxDrifts)
                list.Add((Create(n, exactLayers, d).Name, () => Create(n, exactLayers, d)));
        }
        return list;
    }

    /// <summary>The values of a <c>--precalc-max-drift</c> list (already range-checked while parsing), or none.</summary>
    public static float[] Drifts(string? list) =>
        list == null ? [] : OptionRules.Items(list).Select(x => float.Parse(x, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture)).ToArray();

    /// <summary>A comma-separated list of names.</summary>
    public static string[] List(string names) => OptionRules.Items(names);
}
