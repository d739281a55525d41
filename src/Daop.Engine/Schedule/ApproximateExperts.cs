using System.Diagnostics;
using System.Numerics.Tensors;
using Daop.Engine.Load.Config;
using Daop.Engine.Model;
using Daop.Engine.Model.Layers;
using Daop.Engine.Placement;
using Daop.Kernels.Cpu;
using Daop.Kernels.Generated;

namespace Daop.Engine.Schedule;

/// <summary>
/// DAOP's approximate mode for one decoded token, shared by <see cref="DaopApproxCpuScheduler"/> and
/// <see cref="OffloadedExpertScheduler"/>. At MoE layer l the scheduler hands over x (layer l's gate input) and layer
/// l+1's router logits on x (<see cref="Predict"/>): they are routed as the family routes (softmax top-k with its
/// renormalisation, or sparsemixer), degraded against the residency (<see cref="GracefulDegradation"/>: at most K−1
/// experts of the token off the GPU), and the predicted CPU-resident experts are pre-calculated from x, on a
/// background task or inline, into one weighted sum Σ w_k · Expert_k(x). At layer l+1 the scheduler takes the
/// prediction as the routing (<see cref="TryApply"/>), runs the GPU-resident experts on the true input and adds the
/// pre-calculated sum (<see cref="Join"/>) instead of computing the CPU experts again.
/// </summary>
public sealed class ApproximateExperts : IDisposable
{
    readonly ModelWeights _w;
    readonly RouterSpec _spec;
    readonly int _hidden, _inter, _experts, _topK;
    readonly bool _background;
    readonly int _threads;
    readonly IExpertKernel _kernel;
    readonly float[] _x, _acc, _out, _scratch, _probs, _scratchProbs, _weights;
    readonly int[] _ids;
    readonly bool[] _cpu;
    Task? _job;
    int _layer = -1, _cpuCount;
    double _jobSeconds;

    /// <summary>Approximation for <paramref name="model"/>'s layers from <paramref name="exactLayers"/> on.</summary>
    /// <param name="model">The model (weights, router spec, shapes).</param>
    /// <param name="exactLayers">Layers below this route exactly, with their own gate.</param>
    /// <param name="background">Pre-calculate on a background task (GPU path), else inline in <see cref="Predict"/>.</param>
    /// <param name="precalcThreads">Most CPU worker threads a pre-calculation uses (0: all).</param>
    public ApproximateExperts(MoeModel model, int exactLayers, bool background, int precalcThreads = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(precalcThreads);
        _threads = precalcThreads;
        ArgumentNullException.ThrowIfNull(model);
        var c = model.Config;
        _w = model.Weights;
        _spec = c.Router;
        _hidden = c.HiddenSize;
        _inter = c.ExpertIntermediate;
        _experts = c.NumExperts;
        _topK = c.TopK;
        ExactLayers = Math.Max(1, exactLayers);
        _background = background;
        var first = _w.Layers.First(l => l.Experts.Length > 0).Experts[0];
        _kernel = ExpertKernelRegistry.Select(_hidden, _inter, first.Gate.Type);
        _x = new float[_hidden];
        _acc = new float[_hidden];
        _out = new float[_hidden];
        _scratch = new float[2 * _inter];
        _probs = new float[_experts];
        _scratchProbs = new float[_experts];
        _ids = new int[_topK];
        _weights = new float[_topK];
        _cpu = new bool[_experts];
    }

    /// <summary>Layers below this one are never approximated (layer 0 has no previous layer in any case).</summary>
    public int ExactLayers { get; }

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

    /// <summary>Experts pre-calculated.</summary>
    public long Precalculated { get; private set; }

    /// <summary>Seconds the pre-calculation jobs ran (host time, joined ones only).</summary>
    public double PrecalcSeconds { get; private set; }

    /// <summary>Seconds <see cref="Join"/> waited for a job still running.</summary>
    public double WaitSeconds { get; private set; }

    /// <summary>
    /// Predicts <paramref name="layer"/> for one token from <paramref name="x"/> [H] (the previous MoE layer's gate input) and
    /// <paramref name="logits"/> [E] (this layer's router on x), degrades it against <paramref name="residency"/>, and starts
    /// pre-calculating its non-resident experts from x. Drops any prediction still held. Returns true if degradation
    /// substituted an expert.
    /// </summary>
    public bool Predict(int layer, ReadOnlySpan<float> x, ReadOnlySpan<float> logits, Residency residency)
    {
        ArgumentNullException.ThrowIfNull(residency);
        if (x.Length < _hidden) throw new ArgumentException($"x holds {x.Length} floats, need {_hidden}", nameof(x));
        if (logits.Length < _experts) throw new ArgumentException($"logits hold {logits.Length} floats, need {_experts}", nameof(logits));
        Reset();
        Router.Route(_spec, logits[.._experts], _ids, _weights, _scratchProbs);
        Softmax.Forward(logits[.._experts], _probs);
        bool substituted = GracefulDegradation.Apply(layer, _ids, _weights, _probs, residency);
        Predictions++;
        if (substituted) Substitutions++;
        Array.Clear(_cpu);
        _cpuCount = 0;
        for (int k = 0; k < _topK; k++)
            if (!residency.IsResident(layer, _ids[k]) && !_cpu[_ids[k]])
            {
                _cpu[_ids[k]] = true;
                _cpuCount++;
            }
        _layer = layer;
        if (_cpuCount == 0) return substituted;
        x[.._hidden].CopyTo(_x);
        Precalculated += _cpuCount;
        if (_background) _job = Task.Run(() => Run(layer));
        else Run(layer);
        return substituted;
    }

    // acc = Σ_k w_k · Expert_{ids[k]}(x) over the pre-calculated slots, in slot order.
    void Run(int layer)
    {
        long t0 = Stopwatch.GetTimestamp();
        int limit = CpuWorkers.ThreadLimit;
        CpuWorkers.ThreadLimit = _threads;
        try
        {
            Array.Clear(_acc);
            var experts = _w.Layers[layer].Experts;
            for (int k = 0; k < _topK; k++)
            {
                int e = _ids[k];
                if (!_cpu[e]) continue;
                var ew = experts[e];
                _kernel.Forward(ew.Gate, ew.Up, ew.Down, _x, _out, 1, _scratch);
                TensorPrimitives.MultiplyAdd(_out, _weights[k], _acc, _acc);
            }
        }
        finally { CpuWorkers.ThreadLimit = limit; }
        _jobSeconds = Stopwatch.GetElapsedTime(t0).TotalSeconds;
    }

    /// <summary>
    /// If the held prediction is for <paramref name="layer"/> and <paramref name="routing"/> holds one token, overwrites
    /// its routing with the prediction and returns true (the caller then runs resident experts on the true input and adds
    /// <see cref="Join"/>); otherwise leaves it and returns false.
    /// </summary>
    public bool TryApply(int layer, RoutingBatch routing)
    {
        ArgumentNullException.ThrowIfNull(routing);
        if (_layer != layer || layer < ExactLayers || routing.Tokens != 1 || routing.TopK != _topK) return false;
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

    /// <summary>
    /// Waits for the pre-calculation and returns Σ w_k · Expert_k(x) [H] over the pre-calculated experts (zeros when
    /// there are none); the prediction is consumed. The span stays valid until the next <see cref="Predict"/>.
    /// </summary>
    public ReadOnlySpan<float> Join()
    {
        if (_layer < 0) throw new InvalidOperationException("no prediction is held");
        if (_cpuCount == 0) Array.Clear(_acc);
        Finish();
        _layer = -1;
        return _acc;
    }

    void Finish()
    {
        if (_job != null)
        {
            long t0 = Stopwatch.GetTimestamp();
            var job = _job;
            _job = null;
            job.GetAwaiter().GetResult();
            WaitSeconds += Stopwatch.GetElapsedTime(t0).TotalSeconds;
        }
        if (_cpuCount > 0) PrecalcSeconds += _jobSeconds;
        _jobSeconds = 0;
    }

    /// <summary>Drops the held prediction (a prefill chunk, a new sequence), waiting for its job.</summary>
    public void Reset()
    {
        if (_layer < 0 && _job == null) return;
        try { Finish(); }
        finally { _layer = -1; _cpuCount = 0; }
    }

    /// <summary>Waits for any job still running.</summary>
    public void Dispose() => Reset();
}
