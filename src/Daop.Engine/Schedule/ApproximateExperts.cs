using Daop.Engine.Model.Layers;
using Daop.Engine.Placement;

namespace Daop.Engine.Schedule;

/// <summary>
/// DAOP's approximate mode for one decoded token, the bookkeeping half (the placement driver's): at MoE layer l the
/// next-layer predictor's prediction for layer l+1 is routed as the family routes (<see cref="NextLayerPredictor.RouteHeld"/>),
/// degraded against the residency (<see cref="GracefulDegradation"/>: at most K−1 experts of the token off the GPU) and
/// held, with its CPU-resident experts marked for pre-calculation from layer l's gate input (the executor's
/// <see cref="PreCalc"/>, or the simulator's cost model). At layer l+1 the prediction becomes the routing
/// (<see cref="ApplyOrReset"/>): GPU-resident experts run on the true input and the marked ones take their pre-calculated
/// output instead.
/// </summary>
/// <param name="experts">Experts per layer.</param>
/// <param name="topK">Experts per token.</param>
/// <param name="exactLayers">Layers below this route exactly, with their own gate (at least 1).</param>
public sealed class ApproximateExperts(int experts, int topK, int exactLayers)
{
    readonly float[] _probs = new float[experts], _scratch = new float[experts], _weights = new float[topK];
    readonly int[] _ids = new int[topK];
    readonly bool[] _cpu = new bool[experts];
    int _layer = -1, _cpuCount;

    /// <summary>Layers below this one are never approximated (layer 0 has no previous layer in any case).</summary>
    public int ExactLayers { get; } = Math.Max(1, exactLayers);

    /// <summary>The layer whose prediction is held, or -1.</summary>
    public int PendingLayer => _layer;

    /// <summary>[K] the held prediction's expert ids (after degradation).</summary>
    public ReadOnlySpan<int> Ids => _ids;

    /// <summary>[K] the held prediction's combine weights (after degradation).</summary>
    public ReadOnlySpan<float> Weights => _weights;

    /// <summary>Experts of the held prediction that are pre-calculated on the CPU (at most K−1 when its layer has a GPU expert).</summary>
    public int CpuExperts => _cpuCount;

    /// <summary>Predictions made.</summary>
    public long Predictions { get; private set; }

    /// <summary>Predictions that graceful degradation changed (all K predicted experts were off the GPU).</summary>
    public long Substitutions { get; private set; }

    /// <summary>Experts marked for pre-calculation.</summary>
    public long Precalculated { get; private set; }

    /// <summary>
    /// Takes <paramref name="predictor"/>'s held prediction for <paramref name="layer"/> (one token), routes it, degrades it
    /// against <paramref name="residency"/> and marks its non-resident experts for pre-calculation. Drops any prediction
    /// still held. Returns true if degradation substituted an expert.
    /// </summary>
    public bool Predict(int layer, NextLayerPredictor predictor, Residency residency)
    {
        ArgumentNullException.ThrowIfNull(predictor);
        ArgumentNullException.ThrowIfNull(residency);
        Reset();
        predictor.RouteHeld(_ids, _weights, _probs, _scratch);
        bool substituted = GracefulDegradation.Apply(layer, _ids, _weights, _probs, residency);
        Predictions++;
        if (substituted) Substitutions++;
        Array.Clear(_cpu);
        _cpuCount = 0;
        foreach (int e in _ids)
            if (!residency.IsResident(layer, e) && !_cpu[e])
            {
                _cpu[e] = true;
                _cpuCount++;
            }
        _layer = layer;
        Precalculated += _cpuCount;
        return substituted;
    }

    /// <summary>
    /// If the held prediction is for <paramref name="layer"/> and <paramref name="routing"/> holds one token, overwrites
    /// its routing with the prediction and returns true (the executor then runs resident experts on the true input and
    /// takes the pre-calculated ones); otherwise leaves it and returns false.
    /// </summary>
    public bool TryApply(int layer, RoutingBatch routing)
    {
        ArgumentNullException.ThrowIfNull(routing);
        if (_layer != layer || layer < ExactLayers || routing.Tokens != 1 || routing.TopK != _ids.Length) return false;
        _ids.CopyTo(routing.Experts, 0);
        _weights.CopyTo(routing.Weights, 0);
        return true;
    }

    /// <summary>
    /// At the start of <paramref name="layer"/>'s call: a decoded token's routing becomes the held prediction (true) when
    /// it is for this layer (<see cref="TryApply"/>); otherwise any held prediction is stale and dropped (false).
    /// </summary>
    public bool ApplyOrReset(int layer, RoutingBatch routing, int tokens)
    {
        if (tokens == 1 && TryApply(layer, routing)) return true;
        Reset();
        return false;
    }

    /// <summary>True if <paramref name="expert"/> of the held prediction is pre-calculated.</summary>
    public bool IsPrecalculated(int expert) => _layer >= 0 && _cpu[expert];

    /// <summary>Drops the held prediction (a prefill chunk, a new sequence); the layer that took it calls this once it ran.</summary>
    public void Reset()
    {
        _layer = -1;
        _cpuCount = 0;
    }
}
