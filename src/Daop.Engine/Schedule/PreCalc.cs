using System.Diagnostics;
using System.Numerics.Tensors;
using Daop.Engine.Model;
using Daop.Engine.Model.Layers;
using Daop.Kernels.Cpu;
using Daop.Kernels.Generated;

namespace Daop.Engine.Schedule;

/// <summary>
/// DAOP's pre-calculation, the compute half of the approximate mode: when the placement driver decides
/// <see cref="PlacementAction.StartPrecalculation"/>, the held prediction's CPU experts run on layer l's gate input x, on a
/// background task (beside a GPU) or inline (the CPU stand-in), each into its own output Expert_k(x); layer l+1 takes the
/// weighted sum of those its routing takes (<see cref="Join"/>: the prediction's weights, or checked, the true gate's)
/// instead of computing those experts again.
/// </summary>
public sealed class PreCalc : IDisposable
{
    readonly ModelWeights _w;
    readonly int _hidden, _topK, _threads;
    readonly bool _background;
    readonly IExpertKernel _kernel;
    readonly float[] _x, _acc, _outs, _scratch;
    readonly int[] _ids;
    readonly bool[] _cpu;
    Task? _job;
    int _cpuCount;
    double _jobSeconds;

    /// <summary>Pre-calculation for <paramref name="model"/>'s experts.</summary>
    /// <param name="model">The model (weights, shapes).</param>
    /// <param name="background">Run on a background task (GPU path), else inline in <see cref="Start"/>.</param>
    /// <param name="threads">Most CPU worker threads a pre-calculation uses (0: all).</param>
    public PreCalc(MoeModel model, bool background, int threads = 0)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentOutOfRangeException.ThrowIfNegative(threads);
        var c = model.Config;
        _w = model.Weights;
        _hidden = c.HiddenSize;
        _topK = c.TopK;
        _background = background;
        _threads = threads;
        var first = _w.Layers.First(l => l.Experts.Length > 0).Experts[0];
        _kernel = ExpertKernelRegistry.Select(_hidden, c.ExpertIntermediate, first.Gate.Type);
        _x = new float[_hidden];
        _acc = new float[_hidden];
        _outs = new float[_topK * _hidden];
        _scratch = new float[2 * c.ExpertIntermediate];
        _ids = new int[_topK];
        _cpu = new bool[c.NumExperts];
    }

    /// <summary>Seconds the pre-calculation jobs ran (host time, joined ones only).</summary>
    public double Seconds { get; private set; }

    /// <summary>[H] the input the latest <see cref="Start"/> computed from (the previous layer's gate input).</summary>
    public ReadOnlySpan<float> Input => _x;

    /// <summary>Seconds <see cref="Join"/> waited for a job still running.</summary>
    public double WaitSeconds { get; private set; }

    /// <summary>
    /// Starts computing <paramref name="prediction"/>'s pre-calculated experts of <paramref name="layer"/> from
    /// <paramref name="x"/> [H] (the previous MoE layer's gate input). Waits for any job still running first.
    /// </summary>
    public void Start(int layer, ReadOnlySpan<float> x, ApproximateExperts prediction)
    {
        ArgumentNullException.ThrowIfNull(prediction);
        if (x.Length < _hidden) throw new ArgumentException($"x holds {x.Length} floats, need {_hidden}", nameof(x));
        Reset();
        prediction.Ids.CopyTo(_ids);
        Array.Clear(_cpu);
        foreach (int e in _ids) _cpu[e] = prediction.IsPrecalculated(e);
        _cpuCount = prediction.CpuExperts;
        if (_cpuCount == 0) return;
        x[.._hidden].CopyTo(_x);
        if (_background) _job = Task.Run(() => Run(layer));
        else Run(layer);
    }

    // outs[k] [H] = Expert_{ids[k]}(x) for each pre-calculated slot k.
    void Run(int layer)
    {
        long t0 = Stopwatch.GetTimestamp();
        int limit = CpuWorkers.ThreadLimit;
        CpuWorkers.ThreadLimit = _threads;
        try
        {
            var experts = _w.Layers[layer].Experts;
            for (int k = 0; k < _topK; k++)
            {
                int e = _ids[k];
                if (!_cpu[e]) continue;
                var ew = experts[e];
                CpuExpert.Forward(_kernel, _w.Layers[layer].Ffn.Spec.Act, ew, _x, _outs.AsSpan(k * _hidden, _hidden), 1, _scratch);
            }
        }
        finally { CpuWorkers.ThreadLimit = limit; }
        _jobSeconds = Stopwatch.GetElapsedTime(t0).TotalSeconds;
    }

    /// <summary>
    /// Waits for the pre-calculation and returns Σ_i r.Weights[i] · Expert_{r.Experts[i]}(x) [H] over the activations
    /// <paramref name="taken"/> (slots of <paramref name="r"/>'s one token, in order; each a pre-calculated expert; zeros
    /// when none). The span stays valid until the next <see cref="Start"/>.
    /// </summary>
    public ReadOnlySpan<float> Join(RoutingBatch r, ReadOnlySpan<int> taken)
    {
        ArgumentNullException.ThrowIfNull(r);
        Finish();
        Array.Clear(_acc);
        foreach (int i in taken)
        {
            int e = r.Experts[i], k = _cpuCount == 0 || !_cpu[e] ? -1 : _ids.AsSpan().IndexOf(e);
            if (k < 0) throw new InvalidOperationException($"activation {i} takes expert {e}, which was not pre-calculated");
            TensorPrimitives.MultiplyAdd(_outs.AsSpan(k * _hidden, _hidden), r.Weights[i], _acc, _acc);
        }
        _cpuCount = 0;
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
        if (_cpuCount > 0) Seconds += _jobSeconds;
        _jobSeconds = 0;
    }

    /// <summary>Drops the pre-calculation (a stale prediction, a prefill chunk, a new sequence), waiting for its job.</summary>
    public void Reset()
    {
        if (_job == null && _cpuCount == 0) return;
        try { Finish(); }
        finally { _cpuCount = 0; }
    }

    /// <summary>Waits for any job still running.</summary>
    public void Dispose() => Reset();
}
