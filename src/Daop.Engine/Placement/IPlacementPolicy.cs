namespace Daop.Engine.Placement;

/// <summary>What to do with an activation whose expert is not on the GPU.</summary>
public enum MissAction
{
    /// <summary>Copy the expert to the GPU (evicting <c>evict</c> when the layer is full), then run it there.</summary>
    Transfer,
    /// <summary>Run the expert on CPU threads from its host copy.</summary>
    RunOnCpu,
}

/// <summary>
/// One placement strategy: where experts live and what happens on a miss. The scheduler (real or simulated)
/// asks it at fixed points; policies only change <see cref="Residency"/>, never move bytes themselves.
/// </summary>
public interface IPlacementPolicy
{
    /// <summary>Name in tables ("lru-on-demand", "daop", ...).</summary>
    string Name { get; }

    /// <summary>
    /// DAOP's approximate mode: a decoded token's layer l takes as its routing the prediction made at layer l−1, degraded
    /// against the residency, and its CPU experts' outputs pre-calculated from layer l−1's gate input (this changes what
    /// is computed). False for exact policies: placement then never changes the output.
    /// </summary>
    bool Approximate => false;

    /// <summary>With <see cref="Approximate"/>: how the layer a prediction was made for uses it.</summary>
    PredictionUse PredictionUse => PredictionUse.Route;

    /// <summary>
    /// With <see cref="Approximate"/>: layers below this one route exactly, with their own gate (at least 1: layer 0 has no
    /// previous layer to predict from).
    /// </summary>
    int ExactLayers => int.MaxValue;

    /// <summary>
    /// Checked approximate modes: a layer takes its pre-calculated outputs only while its true gate input x is within
    /// this relative distance ‖x − x′‖ / ‖x‖ of the previous layer's input x′ they were computed from; past it, those
    /// experts run exactly from x on the CPU (a stale input is what is left of the checked modes' loss). Infinity: always take them.
    /// </summary>
    float PrecalcMaxDrift => float.PositiveInfinity;

    /// <summary>A checked approximate mode (<see cref="Approximate"/>, prediction not used as the routing): the modes a <see cref="PrecalcMaxDrift"/> bound applies to.</summary>
    bool ChecksPrediction => Approximate && PredictionUse != PredictionUse.Route;

    /// <summary>Fills the initial residency (dense weights are always on the GPU; only experts are placed here).</summary>
    /// <param name="r">Empty residency with its slot capacities.</param>
    /// <param name="popularity">[layers, experts] activation counts from a calibration run, or null.</param>
    void Initialize(Residency r, long[,]? popularity);

    /// <summary>After a prompt's prefill: this sequence's per-expert token counts for one layer.</summary>
    void OnPrefillCounts(int layer, ReadOnlySpan<int> counts, Residency r);

    /// <summary>During decode, before <paramref name="layer"/> runs: the experts predicted for it (from the previous layer).</summary>
    void OnPredicted(int layer, ReadOnlySpan<int> predicted, Residency r);

    /// <summary>An activation of a non-resident expert: transfer it (naming the victim, or -1 if a slot is free) or run it on the CPU.</summary>
    MissAction OnMiss(int layer, int expert, Residency r, out int evict);

    /// <summary>Every activation, hit or miss, after it is served (LRU bookkeeping).</summary>
    void OnUse(int layer, int expert);

    /// <summary>
    /// During decode, after <paramref name="layer"/> has run a token: a chance to re-place that layer's experts. Loads
    /// made here become copies that overlap the rest of the token (the layer's next use is a whole token away).
    /// </summary>
    void AfterDecodeLayer(int layer, Residency r) { }
}

/// <summary>How DAOP's approximate mode uses the prediction made at layer l−1 when layer l comes.</summary>
public enum PredictionUse
{
    /// <summary>The prediction, degraded against the residency, replaces the routing (DAOP's paper).</summary>
    Route,
    /// <summary>
    /// Checked against the true routing, which stays: a pre-calculated output counts only for an expert the true gate also
    /// chose, with the true weight; a true expert off the GPU that was not pre-calculated runs on the CPU from its true
    /// input; a pre-calculated one the gate did not choose is dropped. Only the pre-calculated experts' inputs stay
    /// approximate (layer l−1's).
    /// </summary>
    Check,
    /// <summary>
    /// As <see cref="Check"/>, but a true expert off the GPU that was not pre-calculated is replaced by the GPU-resident
    /// expert the prediction ranked highest among those not routed, with the missed expert's true weight: no CPU expert
    /// waits on the token's path (graceful degradation applied to the misses only).
    /// </summary>
    CheckDegrade,
}
