namespace Daop.Engine.Placement;

/// <summary>
/// DAOP's data-aware placement: slots start from a popularity profile; after a prompt's prefill, a
/// CPU-resident expert that this sequence used more than <see cref="SwapMargin"/> times as often as the
/// coldest GPU-resident one swaps in (up to <see cref="MaxSwapsPerLayer"/> pairs per layer), and the
/// placement then holds for the sequence's decode. Misses run on the CPU. Whether CPU experts are
/// pre-calculated from the previous layer's state (approximate) or computed from their true input (exact)
/// is the scheduler's mode, carried here so one policy object describes one benchmark row; so is whether an approximate
/// prediction replaces the true routing (DAOP's paper) or is checked against it (<see cref="IPlacementPolicy.PredictionUse"/>).
/// </summary>
/// <remarks>
/// With <c>driftWindow</c> &gt; 0 (beyond the paper) the placement follows the sequence during decode too: each layer
/// keeps p_e, an estimate of expert e's activations per token, started from the prefill counts and updated after
/// every decoded token as an exponential average over about <c>driftWindow</c> tokens (p is a share: each token adds
/// 1/K per activation, K its activations). After a layer has run, its hottest CPU expert swaps with its coldest GPU
/// expert when p_hot &gt; margin · p_cold + 1 / (window · K): the last term is hysteresis worth one activation, so a
/// single token cannot move an expert back and forth. At most one swap per layer per token; the copy overlaps the rest of the token.
/// </remarks>
public sealed class DaopPolicy(bool approximate, int exactLayers = 1, double swapMargin = 1.05, int maxSwapsPerLayer = int.MaxValue,
    int driftWindow = 0, PredictionUse use = PredictionUse.Route, float precalcMaxDrift = float.PositiveInfinity) : IPlacementPolicy
{
    /// <summary>The drift window of the "-drift" benchmark rows (tokens).</summary>
    public const int DefaultDriftWindow = 32;

    double[,] _p = new double[0, 0];      // [layer, expert] activations per token (drift mode)
    int[,] _uses = new int[0, 0];         // [layer, expert] activations of the token being decoded

    /// <inheritdoc />
    public string Name => (!approximate ? "daop-exact" : use switch
    {
        PredictionUse.Check => "daop-checked",
        PredictionUse.CheckDegrade => "daop-checked-degrade",
        _ => "daop",
    }) + (driftWindow > 0 ? "-drift" : "") +
        (float.IsFinite(precalcMaxDrift) ? string.Create(System.Globalization.CultureInfo.InvariantCulture, $"-within{precalcMaxDrift:0.###}") : "");
    /// <inheritdoc />
    public bool Approximate => approximate;
    /// <inheritdoc />
    public PredictionUse PredictionUse => use;
    /// <inheritdoc />
    public int ExactLayers => Math.Max(1, exactLayers);
    /// <inheritdoc />
    public float PrecalcMaxDrift { get; } = CheckDrift(precalcMaxDrift, approximate, use);
    /// <summary>A CPU expert must be used this many times as often as the coldest GPU expert to swap in.</summary>
    public double SwapMargin => swapMargin;
    /// <summary>Bound on swaps per layer after each prefill.</summary>
    public int MaxSwapsPerLayer => maxSwapsPerLayer;
    /// <summary>Tokens the decode-time activation estimate averages over; 0: the placement holds after prefill.</summary>
    public int DriftWindow => driftWindow;

    static float CheckDrift(float maxDrift, bool approximate, PredictionUse use)
    {
        if (!(maxDrift >= 0))
            throw new ArgumentOutOfRangeException(nameof(maxDrift), $"the pre-calculation drift bound must be >= 0, got {maxDrift}");
        if (float.IsFinite(maxDrift) && (!approximate || use == PredictionUse.Route))
            throw new ArgumentException("a pre-calculation drift bound needs a checked approximate mode (daop-checked, daop-checked-degrade): " +
                "exact modes pre-calculate nothing, and routing by the prediction has no true routing to fall back to", nameof(maxDrift));
        return maxDrift;
    }

    /// <inheritdoc />
    public void Initialize(Residency r, long[,]? popularity)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(driftWindow);
        InitialPlacement.ByPopularity(r, popularity);
        _p = new double[r.Layers, r.Experts];
        _uses = new int[r.Layers, r.Experts];
    }

    /// <inheritdoc />
    public void OnPrefillCounts(int layer, ReadOnlySpan<int> counts, Residency r)
    {
        if (driftWindow > 0)
        {
            // Activations per token from this chunk's counts (they sum to top-k per token).
            long total = 0;
            foreach (int c0 in counts) total += c0;
            for (int e = 0; e < r.Experts; e++)
            {
                _p[layer, e] = total == 0 ? 0 : (double)counts[e] / total;
                _uses[layer, e] = 0;
            }
        }
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
    public void OnUse(int layer, int expert)
    {
        if (driftWindow > 0) _uses[layer, expert]++;
    }

    /// <inheritdoc />
    public void AfterDecodeLayer(int layer, Residency r)
    {
        if (driftWindow <= 0) return;
        // The token's activations normalised to sum 1 (like the prefill estimate), then averaged in.
        int used = 0;
        for (int e = 0; e < r.Experts; e++) used += _uses[layer, e];
        double a = 1.0 / driftWindow;
        for (int e = 0; e < r.Experts; e++)
        {
            double u = used == 0 ? 0 : (double)_uses[layer, e] / used;
            _p[layer, e] = (1 - a) * _p[layer, e] + a * u;
            _uses[layer, e] = 0;
        }
        if (r.Capacity(layer) == 0 || r.Capacity(layer) == r.Experts) return;
        int hot = -1, cold = -1;
        for (int e = 0; e < r.Experts; e++)
        {
            if (r.IsResident(layer, e)) { if (cold < 0 || _p[layer, e] < _p[layer, cold]) cold = e; }
            else if (hot < 0 || _p[layer, e] > _p[layer, hot]) hot = e;
        }
        // Hysteresis: one activation's weight in the average (a / activations of the token).
        if (hot >= 0 && cold >= 0 && _p[layer, hot] > swapMargin * _p[layer, cold] + a / Math.Max(1, used)) r.Swap(layer, cold, hot);
    }
}
