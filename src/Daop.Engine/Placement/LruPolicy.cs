namespace Daop.Engine.Placement;

/// <summary>
/// Expert buffering with transfer on miss and least-recently-used eviction per layer ("Towards MoE
/// Deployment"); with <c>prefetch</c>, the next layer's predicted experts are copied ahead
/// (mixtral-offloading). Every expert runs on the GPU.
/// </summary>
public sealed class LruPolicy(bool prefetch) : IPlacementPolicy
{
    long[,] _lastUse = new long[0, 0];
    long _clock;

    /// <inheritdoc />
    public string Name => prefetch ? "lru-prefetch" : "lru-on-demand";

    /// <inheritdoc />
    public void Initialize(Residency r, long[,]? popularity)
    {
        _lastUse = new long[r.Layers, r.Experts];
        InitialPlacement.ByPopularity(r, popularity);
    }

    /// <inheritdoc />
    public void OnPrefillCounts(int layer, ReadOnlySpan<int> counts, Residency r) { }

    /// <inheritdoc />
    public void OnPredicted(int layer, ReadOnlySpan<int> predicted, Residency r)
    {
        if (!prefetch || r.Capacity(layer) == 0) return;
        foreach (int e in predicted)
        {
            if (r.IsResident(layer, e)) continue;
            int victim = Victim(layer, r, predicted);
            if (victim >= 0) r.Evict(layer, victim);
            else if (r.Count(layer) >= r.Capacity(layer)) continue;
            r.Load(layer, e);
            _lastUse[layer, e] = ++_clock; // a prefetched expert counts as just used, so it survives until its turn
        }
    }

    /// <inheritdoc />
    public MissAction OnMiss(int layer, int expert, Residency r, out int evict)
    {
        evict = r.Count(layer) < r.Capacity(layer) ? -1 : Victim(layer, r, ReadOnlySpan<int>.Empty);
        return r.Capacity(layer) == 0 ? MissAction.RunOnCpu : MissAction.Transfer;
    }

    /// <inheritdoc />
    public void OnUse(int layer, int expert) => _lastUse[layer, expert] = ++_clock;

    // Least recently used resident expert, not one of `keep`; -1 if a slot is free or none qualifies.
    int Victim(int layer, Residency r, ReadOnlySpan<int> keep)
    {
        if (r.Count(layer) < r.Capacity(layer)) return -1;
        int best = -1;
        for (int e = 0; e < r.Experts; e++)
            if (r.IsResident(layer, e) && !keep.Contains(e) && (best < 0 || _lastUse[layer, e] < _lastUse[layer, best])) best = e;
        return best;
    }
}
