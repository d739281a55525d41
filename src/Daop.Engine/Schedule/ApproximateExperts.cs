using System.Numerics.Tensors;
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
/// output instead. Checked (<see cref="PredictionUse.Check"/>, <see cref="PredictionUse.CheckDegrade"/>): the prediction
/// is not degraded (every predicted expert off the GPU is pre-calculated) and does not replace the routing; layer l+1 keeps
/// its true routing and takes a pre-calculated output only where the true gate chose that expert.
/// </summary>
/// <param name="experts">Experts per layer.</param>
/// <param name="topK">Experts per token.</param>
/// <param name="exactLayers">Layers below this route exactly, with their own gate (at least 1).</param>
/// <param name="use">Route by the prediction (the paper) or check it against the true routing.</param>
/// <param name="maxDrift">Checked: the largest relative distance between a layer's true input and the stale one its
/// pre-calculation used at which the pre-calculated outputs are still taken (<see cref="IPlacementPolicy.PrecalcMaxDrift"/>).</param>
public sealed class ApproximateExperts(int experts, int topK, int exactLayers, PredictionUse use = PredictionUse.Route,
    float maxDrift = float.PositiveInfinity)
{
    readonly float[] _probs = new float[experts], _scratch = new float[experts], _weights = new float[topK];
    readonly int[] _ids = new int[topK];
    readonly bool[] _cpu = new bool[experts];
    int _layer = -1, _cpuCount;

    /// <summary>Layers below this one are never approximated (layer 0 has no previous layer in any case).</summary>
    public int ExactLayers { get; } = Math.Max(1, exactLayers);

    /// <summary>How the predicted layer uses the prediction.</summary>
    public PredictionUse Use => use;

    /// <summary>See <see cref="IPlacementPolicy.PrecalcMaxDrift"/>; infinite: never checked.</summary>
    public float MaxDrift => maxDrift;

    bool Checked => use != PredictionUse.Route;

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
    /// against <paramref name="residency"/> (not when checked) and marks its non-resident experts for pre-calculation. Drops
    /// any prediction still held. Returns true if degradation substituted an expert.
    /// </summary>
    public bool Predict(int layer, NextLayerPredictor predictor, Residency residency)
    {
        ArgumentNullException.ThrowIfNull(predictor);
        ArgumentNullException.ThrowIfNull(residency);
        Reset();
        predictor.RouteHeld(_ids, _weights, _probs, _scratch);
        bool substituted = !Checked && GracefulDegradation.Apply(layer, _ids, _weights, _probs, residency);
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
    /// If the held prediction is for <paramref name="layer"/> and <paramref name="routing"/> holds one token, returns true:
    /// the executor runs resident experts on the true input and takes the pre-calculated ones. Routing by the prediction,
    /// it overwrites the routing first; checked, the routing stays the true one, except that
    /// <see cref="PredictionUse.CheckDegrade"/> replaces each expert off the GPU that was not pre-calculated (counted in
    /// <see cref="MissSubstitutions"/>). Otherwise leaves it and returns false.
    /// </summary>
    public bool TryApply(int layer, RoutingBatch routing, Residency residency)
    {
        ArgumentNullException.ThrowIfNull(routing);
        ArgumentNullException.ThrowIfNull(residency);
        MissSubstitutions = 0;
        if (_layer != layer || layer < ExactLayers || routing.Tokens != 1 || routing.TopK != _ids.Length) return false;
        if (use == PredictionUse.CheckDegrade) DegradeMisses(layer, routing.Experts.AsSpan(0, _ids.Length), residency);
        if (Checked) return true;
        _ids.CopyTo(routing.Experts, 0);
        _weights.CopyTo(routing.Weights, 0);
        return true;
    }

    /// <summary>Experts the latest <see cref="TryApply"/> replaced (<see cref="PredictionUse.CheckDegrade"/>).</summary>
    public int MissSubstitutions { get; private set; }

    // Each routed expert off the GPU and not pre-calculated → the resident expert with the highest predicted probability
    // that is not routed (the slot keeps its true weight).
    void DegradeMisses(int layer, Span<int> ids, Residency residency)
    {
        for (int k = 0; k < ids.Length; k++)
        {
            if (residency.IsResident(layer, ids[k]) || _cpu[ids[k]]) continue;
            int best = -1;
            for (int e = 0; e < _probs.Length; e++)
                if (residency.IsResident(layer, e) && !ids.Contains(e) && (best < 0 || _probs[e] > _probs[best])) best = e;
            if (best < 0) continue; // nothing resident left to stand in: the expert runs on the CPU
            ids[k] = best;
            MissSubstitutions++;
        }
    }

    /// <summary>
    /// At the start of <paramref name="layer"/>'s call: a decoded token takes the held prediction (true) when it is for this
    /// layer (<see cref="TryApply"/>); otherwise any held prediction is stale and dropped (false).
    /// </summary>
    public bool ApplyOrReset(int layer, RoutingBatch routing, int tokens, Residency residency)
    {
        if (tokens == 1 && TryApply(layer, routing, residency)) return true;
        Reset();
        return false;
    }

    /// <summary>
    /// Checked, after <see cref="TryApply"/>: drops the held prediction (its experts then run exactly) when the layer's
    /// true gate input <paramref name="x"/> [H] lies farther than <see cref="MaxDrift"/> from <paramref name="stale"/> [H],
    /// the input its pre-calculation ran on, as ‖x − stale‖ / ‖x‖. Returns the pre-calculated experts dropped (0: kept).
    /// </summary>
    public int RejectIfDrifted(ReadOnlySpan<float> x, ReadOnlySpan<float> stale) =>
        MayReject && !float.IsPositiveInfinity(maxDrift) ? RejectIfDrifted(RelativeDistance(x, stale)) : 0;

    /// <summary>
    /// <see cref="RejectIfDrifted(ReadOnlySpan{float}, ReadOnlySpan{float})"/> for a drift measured elsewhere (the trace
    /// simulator's recorded <see cref="RoutingTrace.InputDrift"/>).
    /// </summary>
    public int RejectIfDrifted(float drift)
    {
        if (!MayReject || !(drift > maxDrift)) return 0;
        int dropped = _cpuCount;
        Reset();
        return dropped;
    }

    // A checked prediction is held and has pre-calculated experts to drop.
    bool MayReject => _layer >= 0 && _cpuCount > 0 && Checked;

    /// <summary>‖x − stale‖ / ‖x‖ (0 when both are zero, infinity when only x is).</summary>
    public static float RelativeDistance(ReadOnlySpan<float> x, ReadOnlySpan<float> stale)
    {
        if (stale.Length != x.Length) throw new ArgumentException($"stale input has {stale.Length} values, the true one {x.Length}", nameof(stale));
        float d = TensorPrimitives.Distance(x, stale), norm = TensorPrimitives.Norm(x);
        return d == 0 ? 0 : d / norm;
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
