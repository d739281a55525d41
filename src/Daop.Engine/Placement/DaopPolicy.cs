namespace Daop.Engine.Placement;

/// <summary>
/// DAOP's data-aware placement: slots start from a popularity profile; after a prompt's prefill, a
/// CPU-resident expert that this sequence used more than <see cref="SwapMargin"/> times as often as the
/// coldest GPU-resident one swaps in (up to <see cref="MaxSwapsPerLayer"/> pairs per layer), and the
/// placement then holds for the sequence's decode. Misses run on the CPU. Whether CPU experts are
/// pre-calculated from the previous layer's state (approximate) or computed from their true input (exact)
/// is the scheduler's mode, carried here so one policy object describes one benchmark row.
/// </summary>
public sealed class DaopPolicy(bool approximate, int exactLayers = 1, double swapMargin = 1.05, int maxSwapsPerLayer = int.MaxValue)
    : IPlacementPolicy
{
    /// <inheritdoc />
    public string Name => approximate ? "daop" : "daop-exact";
    /// <summary>Pre-calculate predicted CPU experts from the previous layer's gate input (changes the output).</summary>
    public bool Approximate => approximate;
    /// <summary>The first layers route exactly with their own gate, even in approximate mode.</summary>
    public int ExactLayers => exactLayers;
    /// <summary>A CPU expert must be used this many times as often as the coldest GPU expert to swap in.</summary>
    public double SwapMargin => swapMargin;
    /// <summary>Bound on swaps per layer after each prefill.</summary>
    public int MaxSwapsPerLayer => maxSwapsPerLayer;

    /// <inheritdoc />
    public void Initialize(Residency r, long[,]? popularity) => InitialPlacement.ByPopularity(r, popularity);

    /// <inheritdoc />
    public void OnPrefillCounts(int layer, ReadOnlySpan<int> counts, Residency r)
    {
        if (r.Capacity(layer) == 0 || r.Capacity(layer) == r.Experts) return;
        var c = counts.ToArray();
        var cpu = Enumerable.Range(0, r.Experts).Where(e => !r.IsResident(layer, e)).OrderByDescending(e => c[e]).ThenBy(e => e).ToList();
        var gpu = Enumerable.Range(0, r.Experts).Where(e => r.IsResident(layer, e)).OrderBy(e => c[e]).ThenBy(e => e).ToList();
        for (int i = 0; i < Math.Min(Math.Min(cpu.Count, gpu.Count), maxSwapsPerLayer); i++)
        {
            if (!(c[cpu[i]] > swapMargin * c[gpu[i]])) break;
            r.Swap(layer, gpu[i], cpu[i]);
        }
    }

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
