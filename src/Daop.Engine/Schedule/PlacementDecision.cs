namespace Daop.Engine.Schedule;

/// <summary>What the placement driver decided; its executors (GPU, CPU stand-in, trace simulator) carry it out.</summary>
public enum PlacementAction : byte
{
    /// <summary>Activation <see cref="PlacementDecision.Index"/> runs its expert in the expert's GPU slot.</summary>
    RunOnGpu,
    /// <summary>Activation <see cref="PlacementDecision.Index"/> runs its expert on host threads.</summary>
    RunOnCpu,
    /// <summary>
    /// Prefill: activation <see cref="PlacementDecision.Index"/> runs its expert on the GPU from a staging slot, copied
    /// there for this layer call alone (its chunk routes enough tokens to it that the copy costs less than the CPU
    /// would); the residency does not change. The first such activation of an expert in a call carries the copy
    /// (<see cref="PlacementDecision.Reason"/> = <see cref="LoadReason.Stream"/>).
    /// </summary>
    RunStreamed,
    /// <summary>
    /// Activation <see cref="PlacementDecision.Index"/> takes its expert's output pre-calculated at the previous layer
    /// (DAOP's approximate mode).
    /// </summary>
    TakePrecalculated,
    /// <summary>
    /// The expert leaves the GPU and frees its slot. With <see cref="PlacementDecision.SplitsWave"/>, GPU work gathered
    /// earlier in this layer call still reads that slot and must be launched first (the load that follows overwrites it).
    /// </summary>
    Evict,
    /// <summary>The expert is copied host→device into a free slot of its layer (<see cref="PlacementDecision.Reason"/> says why).</summary>
    Load,
    /// <summary>
    /// DAOP's approximate mode: pre-calculate the held prediction's CPU experts of the layer
    /// (<see cref="PlacementDriver.Approximation"/>) from the current layer's gate input.
    /// </summary>
    StartPrecalculation,
}

/// <summary>Why an expert is copied to the GPU.</summary>
public enum LoadReason : byte
{
    /// <summary>An activation missed and the policy said transfer (after the eviction, if any, just before).</summary>
    Miss,
    /// <summary>The policy acted on the next layer's prediction.</summary>
    Prefetch,
    /// <summary>The policy re-placed a layer after a decoded token (DAOP's drift mode).</summary>
    Rebalance,
    /// <summary>The policy re-placed a layer after a prefill chunk.</summary>
    PostPrefill,
    /// <summary>A prefill chunk's CPU-resident expert is copied to a staging slot for that chunk (<see cref="PlacementAction.RunStreamed"/>).</summary>
    Stream,
}

/// <summary>One decision of the placement driver.</summary>
/// <param name="Action">What to do.</param>
/// <param name="Layer">The layer.</param>
/// <param name="Expert">The expert (for <see cref="PlacementAction.StartPrecalculation"/>: -1).</param>
/// <param name="Index">The activation (token·K + k) for the Run/Take actions, else -1.</param>
/// <param name="Reason">
/// Why, for <see cref="PlacementAction.Load"/>; for <see cref="PlacementAction.RunStreamed"/>, <see cref="LoadReason.Stream"/>
/// on the activation that carries the expert's copy.
/// </param>
/// <param name="SplitsWave">For <see cref="PlacementAction.Evict"/>: GPU work gathered earlier in the call reads the slot.</param>
/// <param name="LowPrecision">
/// For <see cref="PlacementAction.RunOnCpu"/>: the expert runs from its low-precision host copy
/// (<see cref="PlacementDriver.MissPrecision"/>: a decode miss with a small router weight).
/// </param>
public readonly record struct PlacementDecision(PlacementAction Action, int Layer, int Expert, int Index = -1,
    LoadReason Reason = LoadReason.Miss, bool SplitsWave = false, bool LowPrecision = false);

/// <summary>What <see cref="PlacementDriver.BeginLayer"/> settled for one layer call.</summary>
/// <param name="Precalculated">
/// Approximate mode: this layer takes outputs pre-calculated at the previous layer (the routing is now that layer's
/// prediction, or, checked, the true routing); join the pre-calculation.
/// </param>
/// <param name="Next">Decode: the next MoE layer, to predict from this layer's gate input (<see cref="PlacementDriver.PredictNext"/>); else -1.</param>
/// <param name="CountsNext">
/// Prefill, approximate mode: the next MoE layer is placed by the predictor's counts, made from this layer's gate input
/// (hand it to <see cref="PlacementDriver.BeforeActivations"/>).
/// </param>
public readonly record struct LayerCall(bool Precalculated, int Next, bool CountsNext);
