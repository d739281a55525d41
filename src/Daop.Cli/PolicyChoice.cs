using Daop.Engine.Placement;

namespace Daop.Cli;

/// <summary>Maps <c>--policy</c> names to placement policies.</summary>
static class PolicyChoice
{
    public const string Names = "lru-on-demand, lru-prefetch, static-cpu, daop-exact";

    public static IPlacementPolicy Create(string name) => name switch
    {
        "lru-on-demand" or "lru" => new LruPolicy(prefetch: false),
        "lru-prefetch" => new LruPolicy(prefetch: true),
        "static-cpu" or "fiddler" => new StaticPolicy(),
        "daop-exact" => new DaopPolicy(approximate: false),
        _ => throw new ArgumentException($"--policy '{name}' is not known (one of: {Names})"),
    };
}
