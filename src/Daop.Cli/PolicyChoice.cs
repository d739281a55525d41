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

    /// <summary>The policy called <paramref name="name"/>; DAOP's approximate mode keeps its first <paramref name="exactLayers"/> layers exact.</summary>
    public static IPlacementPolicy Create(string name, int exactLayers = 1) => name switch
    {
        "lru-on-demand" or "lru" => new LruPolicy(prefetch: false),
        "lru-prefetch" => new LruPolicy(prefetch: true),
        "static-cpu" or "fiddler" => new StaticPolicy(),
        "daop-exact" => new DaopPolicy(approximate: false),
        "daop" or "daop-approx" => new DaopPolicy(approximate: true, exactLayers),
        "daop-checked" => new DaopPolicy(approximate: true, exactLayers, use: PredictionUse.Check),
        "daop-checked-degrade" => new DaopPolicy(approximate: true, exactLayers, use: PredictionUse.CheckDegrade),
        "daop-exact-drift" => new DaopPolicy(approximate: false, driftWindow: DaopPolicy.DefaultDriftWindow),
        "daop-drift" => new DaopPolicy(approximate: true, exactLayers, driftWindow: DaopPolicy.DefaultDriftWindow),
        "daop-checked-drift" => new DaopPolicy(approximate: true, exactLayers, driftWindow: DaopPolicy.DefaultDriftWindow, use: PredictionUse.Check),
        _ => throw new ArgumentException($"--policy '{name}' is not known (one of: {Names})"),
    };

    /// <summary>A comma-separated list of names.</summary>
    public static string[] List(string names) => OptionRules.Items(names);
}
