namespace Daop.Engine.Placement;

/// <summary>
/// A fixed placement (by popularity profile, an explicit list, or layer-round-robin) that never changes;
/// misses run on the CPU (Fiddler). The all-on-GPU baseline is this policy at ratio 1.
/// </summary>
public sealed class StaticPolicy(IReadOnlyList<IReadOnlyList<int>>? list = null, string name = "static-cpu") : IPlacementPolicy
{
    /// <inheritdoc />
    public string Name => name;

    /// <inheritdoc />
    public void Initialize(Residency r, long[,]? popularity)
    {
        if (list != null) InitialPlacement.FromList(r, list);
        else InitialPlacement.ByPopularity(r, popularity);
    }

    /// <inheritdoc />
    public void OnPrefillCounts(int layer, ReadOnlySpan<int> counts, Residency r) { }

    /// <inheritdoc />
    public void OnPredicted(int layer, ReadOnlySpan<int> predicted, Residency r) { }

    /// <inheritdoc />
    public MissAction OnMiss(int layer, int expert, Residency r, out int evict)
    {
        evict = -1;
        return MissAction.RunOnCpu;
    }

    /// <inheritdoc />
    public void OnUse(int layer, int expert) { }
}
