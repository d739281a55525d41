using System.Numerics.Tensors;
using Daop.Engine.Device;
using Daop.Engine.Device.Cpu;
using Daop.Engine.Device.Gpu;
using Daop.Engine.Model;
using Daop.Engine.Model.Layers;
using Daop.Engine.Placement;
using Daop.Kernels;
using Daop.Kernels.Generated;

namespace Daop.Engine.Schedule;

/// <summary>
/// The GPU scheduler's stand-in on the CPU device, for accuracy studies without a GPU: the <see cref="PlacementDriver"/>
/// places experts with any policy exactly as it drives <see cref="OffloadedExpertScheduler"/> (initial placement, misses,
/// predictions, re-placements) and counts <see cref="Stats"/> the same way, but nothing moves: a <see cref="Residency"/>
/// only says which experts count as "on the GPU".
/// </summary>
/// <remarks>
/// Exact policies compute what <see cref="LocalExpertScheduler"/> computes, bit for bit (they run it). In DAOP's
/// approximate mode (<see cref="IPlacementPolicy.Approximate"/>) decoded tokens (chunks of one) take the driver's
/// prediction as their routing: at layer l+1 (≥ <see cref="IPlacementPolicy.ExactLayers"/>) "GPU" experts run on the
/// true input and "CPU" ones contribute their outputs pre-calculated (inline, <see cref="PreCalc"/>) from layer l's gate
/// input: the numerics of the GPU scheduler's approximate mode (checked: the true routing, pre-calculated outputs only
/// where it chose that expert, other CPU experts from the true input). Prefill chunks stay exact.
/// </remarks>
public sealed class CpuStandInScheduler : IExpertScheduler
{
    readonly LocalExpertScheduler _local;
    readonly ModelWeights _w;
    readonly PlacementDriver _driver;
    readonly PreCalc? _precalc;
    readonly IExpertKernel _kernel;
    readonly float[] _out, _scratch;
    readonly int[] _taken; // [K] slots of the decoded token taken pre-calculated, in order
    readonly bool[] _low;  // [T·K] activations run from their low-precision copy (MissPrecision)
    readonly MissPrecisionCopies? _copies;
    readonly int _hidden, _topK;

    /// <summary>
    /// Places <paramref name="model"/>'s experts with <paramref name="policy"/> (its Initialize, with
    /// <paramref name="popularity"/>) into <paramref name="slotsPerLayer"/> notional GPU slots.
    /// </summary>
    /// <param name="model">The model (its weights and config; the device must be the CPU one when it runs).</param>
    /// <param name="policy">Placement policy (initialised here).</param>
    /// <param name="slotsPerLayer">"GPU" expert slots per layer (0 for dense layers), e.g. from <see cref="OffloadBudget.SlotsFromRatio"/>.</param>
    /// <param name="popularity">[layers, experts] calibration counts for the initial placement, or null.</param>
    /// <param name="routingOverride">Benchmark-only routing replacement, or null.</param>
    /// <param name="missPrecision">Mixed precision on a miss (<see cref="PlacementDriver.MissPrecision"/>), or null.</param>
    /// <param name="copies">
    /// The low-precision copies <paramref name="missPrecision"/> reads, made for its type (shared by several schedulers of
    /// one model); null: made here.
    /// </param>
    public CpuStandInScheduler(MoeModel model, IPlacementPolicy policy, int[] slotsPerLayer, long[,]? popularity,
        IRoutingOverride? routingOverride = null, MissPrecision? missPrecision = null, MissPrecisionCopies? copies = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(policy);
        var c = model.Config;
        _w = model.Weights;
        _hidden = c.HiddenSize;
        _topK = c.TopK;
        _local = new LocalExpertScheduler(_w, _hidden, c.NumExperts, _topK, c.ExpertIntermediate, model.MaxChunkTokens);
        _kernel = _local.Kernel;
        _out = new float[_hidden];
        _scratch = new float[2 * c.ExpertIntermediate];
        _taken = new int[_topK];
        _low = new bool[model.MaxChunkTokens * _topK];
        if (missPrecision != null)
        {
            _copies = copies ?? new MissPrecisionCopies(_w, missPrecision.Type);
            if (_copies.Type != missPrecision.Type)
                throw new ArgumentException($"the copies are {_copies.Type.Name()}, the miss precision asks for {missPrecision.Type.Name()}", nameof(copies));
        }
        // What OffloadedExpertScheduler's transfers move: one expert in its stored format, rows padded as a GPU slot holds them.
        long expertBytes = c.MoeLayerCount == 0 ? 0 : ExpertLayout.Of(_w).ExpertBytes;
        if (policy.Approximate) _precalc = new PreCalc(model, background: false);
        _driver = new PlacementDriver(model, policy, slotsPerLayer, popularity, expertBytes, routingOverride)
        {
            Measure = s => { if (_precalc != null) s.PrecalcSeconds = _precalc.Seconds; },
            MissPrecision = missPrecision,
            MissCopySavedBytes = _copies?.SavedBytesPerRun ?? 0,
        };
    }

    /// <summary>A scheduler with an expert cache ratio (fraction of routed experts counted as on the GPU).</summary>
    public static CpuStandInScheduler FromRatio(MoeModel model, IPlacementPolicy policy, double ratio, long[,]? popularity = null,
        IRoutingOverride? routingOverride = null, MissPrecision? missPrecision = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        return new(model, policy, OffloadBudget.SlotsFromRatio(model.Config, ratio, popularity), popularity, routingOverride, missPrecision);
    }

    /// <summary>Which experts count as on the GPU.</summary>
    public Residency Residency => _driver.Residency;
    /// <summary>The placement policy.</summary>
    public IPlacementPolicy Policy => _driver.Policy;
    /// <summary>True when the policy asks for DAOP's approximate mode.</summary>
    public bool Approximate => _driver.Approximate;
    /// <summary>The placement driver.</summary>
    public PlacementDriver Driver => _driver;

    /// <summary>The low-precision copies misses may read (<see cref="PlacementDriver.MissPrecision"/>), or null.</summary>
    public MissPrecisionCopies? MissCopies => _copies;

    /// <summary>Cumulative counters, as <see cref="OffloadedExpertScheduler.Stats"/> would count them (no launches, no copy waits).</summary>
    public OffloadStats Stats => _driver.Stats;

    /// <summary>Counters of the latest forward chunk.</summary>
    public OffloadStats LastStep => _driver.LastStep;

    /// <inheritdoc />
    public string Description => $"experts on cpu ({_kernel.Name}), placement {Policy.Name}";

    /// <inheritdoc />
    public bool BatchesSequences => _driver.BatchesSequences;

    /// <inheritdoc />
    public void BeginBatch(int tokens, bool prompt)
    {
        _driver.BeginBatch(tokens, prompt);
        _precalc?.Reset();
    }

    /// <inheritdoc />
    public void BeginChunk(int startPos, int tokens)
    {
        _driver.BeginChunk(startPos, tokens);
        if (tokens != 1) _precalc?.Reset();
    }

    /// <inheritdoc />
    public void RunExperts(int layer, DeviceBuffer x, RoutingBatch r, DeviceBuffer y, int tokens)
    {
        ArgumentNullException.ThrowIfNull(r);
        if (tokens <= 0) return;
        var call = _driver.BeginLayer(layer, r, tokens);
        if (!call.Precalculated) _precalc?.Reset();
        int taken = 0;
        var xs = ((CpuBuffer)x).Data;
        _driver.BeforeActivations(layer, r, tokens, xs.AsSpan(0, tokens * _hidden));
        if (call.Precalculated && _driver.ChecksDrift) _driver.CheckPrecalculatedInput(xs.AsSpan(0, _hidden), _precalc!.Input);
        var low = _low.AsSpan(0, tokens * _topK);
        low.Clear();
        bool anyLow = false;
        foreach (var d in _driver.DecideActivations(layer, r, tokens))
            if (d.Action == PlacementAction.TakePrecalculated) _taken[taken++] = d.Index;
            else if (d.LowPrecision) anyLow = low[d.Index] = true;

        if (call.Precalculated) RunApproximate(layer, xs, r, ((CpuBuffer)y).Data, _taken.AsSpan(0, taken));
        else _local.RunExperts(layer, x, r, y, tokens, anyLow ? low : default, _copies);

        if (call.Next >= 0)
            foreach (var d in _driver.PredictNext(call.Next, xs.AsSpan(0, _hidden)))
                if (d.Action == PlacementAction.StartPrecalculation) _precalc!.Start(d.Layer, xs.AsSpan(0, _hidden), _driver.Approximation!);
        _driver.AfterLayer(layer, tokens);
    }

    // One token: "GPU" experts (and any expert not pre-calculated) on the true input, then the pre-calculated sum.
    void RunApproximate(int layer, float[] x, RoutingBatch r, float[] y, ReadOnlySpan<int> taken)
    {
        var xs = x.AsSpan(0, _hidden);
        var ys = y.AsSpan(0, _hidden);
        ys.Clear();
        var experts = _w.Layers[layer].Experts;
        for (int k = 0; k < _topK; k++)
        {
            if (taken.Contains(k)) continue;
            bool low = _low[k];
            var ew = low ? _copies!.Weights(layer, r.Experts[k]) : experts[r.Experts[k]];
            CpuExpert.Forward(low ? _local.LowKernel(_copies!) : _kernel, _w.Layers[layer].Ffn.Spec.Act, ew, xs, _out, 1, _scratch);
            TensorPrimitives.MultiplyAdd(_out, r.Weights[k], ys, ys);
        }
        TensorPrimitives.Add(ys, _precalc!.Join(r, taken), ys);
    }
}
