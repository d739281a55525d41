using Daop.Engine.Placement;

namespace Daop.Cli;

/// <summary>Maps <c>--policy</c> names to placement policies.</summary>
static class PolicyChoice
{
    public const string Names = "lru-on-demand, lru-prefetch, static-cpu, daop-exact, daop (approximate), daop-exact-drift, daop-drift";

    /// <summary>Every policy name <see cref="Create"/> knows.</summary>
    public static readonly string[] All = ["lru-on-demand", "lru-prefetch", "static-cpu", "daop-exact", "daop", "daop-exact-drift", "daop-drift"];

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
        "daop-exact-drift" => new DaopPolicy(approximate: false, driftWindow: DaopPolicy.DefaultDriftWindow),
        "daop-drift" => new DaopPolicy(approximate: true, exactLayers, driftWindow: DaopPolicy.DefaultDriftWindow),
        _ => throw new ArgumentException($"--policy '{name}' is not known (one of: {Names})"),
    };

    /// <summary>A comma-separated list of names.</summary>
    public static string[] List(string names) => OptionRules.Items(names);
}
