using System.Numerics.Tensors;
using Daop.Engine.Device;
using Daop.Engine.Device.Cpu;
using Daop.Engine.Model;
using Daop.Engine.Model.Layers;
using Daop.Engine.Placement;
using Daop.Kernels.Generated;

namespace Daop.Engine.Schedule;

/// <summary>
/// The placement policies' numerics on the CPU device, for accuracy studies without a GPU. A <see cref="Residency"/> says
/// which experts count as "on the GPU"; the policy fills and changes it exactly as it would drive
/// <see cref="OffloadedExpertScheduler"/> (initial placement, misses, predictions, post-prefill swaps), and
/// <see cref="Stats"/> counts hits, CPU runs and transfers the same way, but nothing moves.
/// </summary>
/// <remarks>
/// Exact policies compute what <see cref="LocalExpertScheduler"/> computes, bit for bit (they run it). With
/// <see cref="DaopPolicy"/> <c>{ Approximate: true }</c>, decoded tokens (chunks of one) follow DAOP's approximate mode
/// through <see cref="ApproximateExperts"/>: at MoE layer l, layer l+1's router is applied to layer l's gate input, the
/// routing is degraded against the residency and the predicted "CPU" experts are computed from layer l's gate input; at
/// layer l+1 (≥ <see cref="DaopPolicy.ExactLayers"/>) the prediction is the routing, "GPU" experts run on the true input
/// and the "CPU" ones contribute their pre-calculated outputs: the numerics of the GPU scheduler's approximate mode.
/// Prefill chunks stay exact.
/// </remarks>
public sealed class DaopApproxCpuScheduler : IExpertScheduler
{
    readonly LocalExpertScheduler _local;
    readonly ModelWeights _w;
    readonly IPlacementPolicy _policy;
    readonly ApproximateExperts? _approx;
    readonly IRoutingOverride? _override;
    readonly IExpertKernel _kernel;
    readonly OffloadStats _stats = new();
    OffloadStats _stepStart = new();
    readonly int[] _prefill;
    readonly float[] _out, _scratch;
    readonly NextLayerPredictor _predictor;
    readonly int _hidden, _experts, _topK, _firstMoe;
    readonly long _expertBytes;
    int _pos;

    /// <summary>
    /// Places <paramref name="model"/>'s experts with <paramref name="policy"/> (its Initialize, with
    /// <paramref name="popularity"/>) into <paramref name="slotsPerLayer"/> notional GPU slots.
    /// </summary>
    /// <param name="model">The model (its weights and config; the device must be the CPU one when it runs).</param>
    /// <param name="policy">Placement policy (initialised here).</param>
    /// <param name="slotsPerLayer">"GPU" expert slots per layer (0 for dense layers), e.g. from <see cref="OffloadBudget.SlotsFromRatio"/>.</param>
    /// <param name="popularity">[layers, experts] calibration counts for the initial placement, or null.</param>
    /// <param name="routingOverride">Benchmark-only routing replacement, or null.</param>
    public DaopApproxCpuScheduler(MoeModel model, IPlacementPolicy policy, int[] slotsPerLayer, long[,]? popularity,
        IRoutingOverride? routingOverride = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentNullException.ThrowIfNull(slotsPerLayer);
        var c = model.Config;
        if (slotsPerLayer.Length != c.NumLayers)
            throw new ArgumentException($"{slotsPerLayer.Length} slot counts for a model of {c.NumLayers} layers", nameof(slotsPerLayer));
        if (popularity != null && (popularity.GetLength(0) != c.NumLayers || popularity.GetLength(1) != c.NumExperts))
            throw new ArgumentException($"popularity is [{popularity.GetLength(0)}, {popularity.GetLength(1)}], the model [{c.NumLayers}, {c.NumExperts}]", nameof(popularity));
        _w = model.Weights;
        _policy = policy;
        _override = routingOverride;
        _hidden = c.HiddenSize;
        _experts = c.NumExperts;
        _topK = c.TopK;
        _local = new LocalExpertScheduler(_w, _hidden, _experts, _topK, c.ExpertIntermediate, model.MaxChunkTokens);
        _kernel = _local.Kernel;
        _firstMoe = Enumerable.Range(0, c.NumLayers).FirstOrDefault(c.IsMoe, -1);
        if (_firstMoe < 0) throw new ArgumentException("the model has no MoE layer", nameof(model));
        _expertBytes = _w.Layers[_firstMoe].Experts[0].ByteLength;
        _prefill = new int[_experts];
        _predictor = new NextLayerPredictor(model, routingOverride);
        _out = new float[_hidden];
        _scratch = new float[2 * c.ExpertIntermediate];
        Residency = new Residency(c.NumLayers, _experts, slotsPerLayer);
        _policy.Initialize(Residency, popularity);
        Residency.PendingLoads.Clear();
        if (policy is DaopPolicy { Approximate: true } daop) _approx = new ApproximateExperts(model, daop.ExactLayers, background: false);
    }

    /// <summary>A scheduler with an expert cache ratio (fraction of routed experts counted as on the GPU).</summary>
    public static DaopApproxCpuScheduler FromRatio(MoeModel model, IPlacementPolicy policy, double ratio, long[,]? popularity = null,
        IRoutingOverride? routingOverride = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        return new(model, policy, OffloadBudget.SlotsFromRatio(model.Config, ratio, popularity), popularity, routingOverride);
    }

    /// <summary>Which experts count as on the GPU.</summary>
    public Residency Residency { get; }
    /// <summary>The placement policy.</summary>
    public IPlacementPolicy Policy => _policy;
    /// <summary>True when the policy asks for DAOP's approximate mode.</summary>
    public bool Approximate => _approx != null;
    /// <summary>The approximate mode's state (null for exact policies).</summary>
    public ApproximateExperts? Approximation => _approx;

    /// <summary>Cumulative counters, as <see cref="OffloadedExpertScheduler.Stats"/> would count them (no copy waits).</summary>
    public OffloadStats Stats => Snapshot();

    /// <summary>Counters of the latest forward chunk.</summary>
    public OffloadStats LastStep => Snapshot().Since(_stepStart);

    OffloadStats Snapshot()
    {
        if (_approx != null) _stats.PrecalcSeconds = _approx.PrecalcSeconds;
        return _stats.Snapshot();
    }

    /// <inheritdoc />
    public string Description => $"experts on cpu ({_kernel.Name}), placement {_policy.Name}";

    /// <inheritdoc />
    public void BeginChunk(int startPos, int tokens)
    {
        _pos = startPos;
        _predictor.Reset();
        if (tokens != 1) _approx?.Reset();
    }

    /// <inheritdoc />
    public void RunExperts(int layer, DeviceBuffer x, RoutingBatch r, DeviceBuffer y, int tokens)
    {
        ArgumentNullException.ThrowIfNull(r);
        if (tokens <= 0) return;
        if (r.TopK != _topK) throw new ArgumentException($"routing has top-{r.TopK}, the model top-{_topK}", nameof(r));
        if (layer == _firstMoe)
        {
            _stepStart = Snapshot();
            _stats.Tokens += tokens;
        }
        _override?.Route(layer, _pos, r);
        bool approx = Substitute(layer, r, tokens);
        int p = tokens * _topK;
        for (int i = 0; i < p; i++)
            if ((uint)r.Experts[i] >= (uint)_experts)
                throw new ArgumentOutOfRangeException(nameof(r), $"expert {r.Experts[i]} of slot {i} is outside [0, {_experts})");
        Place(layer, r, p, approx);

        if (!approx) _local.RunExperts(layer, x, r, y, tokens);
        else
        {
            // One token: "GPU" experts (and any expert not pre-calculated) on the true input, then the pre-calculated sum.
            var xs = ((CpuBuffer)x).Data.AsSpan(0, _hidden);
            var ys = ((CpuBuffer)y).Data.AsSpan(0, _hidden);
            ys.Clear();
            var experts = _w.Layers[layer].Experts;
            for (int k = 0; k < _topK; k++)
            {
                int e = r.Experts[k];
                if (_approx!.IsPrecalculated(e)) continue;
                var ew = experts[e];
                _kernel.Forward(ew.Gate, ew.Up, ew.Down, xs, _out, 1, _scratch);
                TensorPrimitives.MultiplyAdd(_out, r.Weights[k], ys, ys);
            }
            TensorPrimitives.Add(ys, _approx!.Join(), ys);
        }

        int next = tokens == 1 ? _predictor.NextMoe(layer) : -1;
        if (next >= 0) Predict(next, ((CpuBuffer)x).Data.AsSpan(0, _hidden));
        if (tokens == 1)
        {
            _policy.AfterDecodeLayer(layer, Residency);
            long before = _stats.Transfers;
            CountLoads(prefetch: false);
            _stats.RebalanceTransfers += _stats.Transfers - before;
        }
        if (tokens > 1)
        {
            // Approximate mode: a layer that decode routes by the predictor is placed by the predictor's counts.
            _predictor.PrefillCounts(layer, r, tokens, _prefill);
            _policy.OnPrefillCounts(layer, _prefill, Residency);
            CountLoads(prefetch: false);
            if (_approx != null && _predictor.NextMoe(layer) >= _approx.ExactLayers)
                _predictor.CountNext(_predictor.NextMoe(layer), ((CpuBuffer)x).Data.AsSpan(0, tokens * _hidden), tokens, _pos);
        }
    }

    // The policy's view of every activation, as the GPU scheduler asks it; transfers only change the residency.
    void Place(int layer, RoutingBatch r, int p, bool approx)
    {
        for (int i = 0; i < p; i++)
        {
            int e = r.Experts[i];
            _stats.Activations++;
            bool resident = Residency.IsResident(layer, e);
            if (resident) _stats.Hits++;
            else _stats.Misses++;
            if (approx && _approx!.IsPrecalculated(e))
            {
                _stats.CpuExpertRuns++;
                _stats.PrecalculatedRuns++;
            }
            else if (resident) _stats.GpuExpertRuns++;
            else if (_policy.OnMiss(layer, e, Residency, out int victim) == MissAction.Transfer)
            {
                if (victim >= 0) Residency.Evict(layer, victim);
                Residency.Load(layer, e);
                Residency.PendingLoads.Clear();
                _stats.Transfers++;
                _stats.MissTransfers++;
                _stats.TransferBytes += _expertBytes;
                _stats.GpuExpertRuns++;
            }
            else _stats.CpuExpertRuns++;
            _policy.OnUse(layer, e);
        }
    }

    void Predict(int layer, ReadOnlySpan<float> x)
    {
        _predictor.Predict(layer, _pos, x);
        _policy.OnPredicted(layer, _predictor.Ids, Residency);
        CountLoads(prefetch: true);
        if (_approx != null && layer >= _approx.ExactLayers && _approx.Predict(layer, x, _predictor.Logits, Residency)) _stats.Substitutions++;
    }

    void CountLoads(bool prefetch)
    {
        int n = Residency.PendingLoads.Count;
        _stats.Transfers += n;
        _stats.TransferBytes += n * _expertBytes;
        if (prefetch) _stats.PrefetchTransfers += n;
        Residency.PendingLoads.Clear();
    }

    // Scores the prediction made for this layer, then (approximate mode, one token) takes it as the routing.
    bool Substitute(int layer, RoutingBatch r, int tokens)
    {
        _predictor.Score(layer, r, tokens, _stats);
        return _approx?.ApplyOrReset(layer, r, tokens) == true;
    }
}
