using System.Diagnostics;
using System.Numerics.Tensors;
using Daop.Engine.Model;
using Daop.Kernels.Cpu;
using Daop.Kernels.Generated;

namespace Daop.Engine.Schedule;

/// <summary>
/// DAOP's pre-calculation, the compute half of the approximate mode: when the placement driver decides
/// <see cref="PlacementAction.StartPrecalculation"/>, the held prediction's CPU experts run on layer l's gate input x, on a
/// background task (beside a GPU) or inline (the CPU stand-in), into one weighted sum Σ w_k · Expert_k(x) that layer l+1
/// takes (<see cref="Join"/>) instead of computing those experts again.
/// </summary>
public sealed class PreCalc : IDisposable
{
    readonly ModelWeights _w;
    readonly int _hidden, _topK, _threads;
    readonly bool _background;
    readonly IExpertKernel _kernel;
    readonly float[] _x, _acc, _out, _scratch, _weights;
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
        _out = new float[_hidden];
        _scratch = new float[2 * c.ExpertIntermediate];
        _ids = new int[_topK];
        _weights = new float[_topK];
        _cpu = new bool[c.NumExperts];
    }

    /// <summary>Seconds the pre-calculation jobs ran (host time, joined ones only).</summary>
    public double Seconds { get; private set; }

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
        prediction.Weights.CopyTo(_weights);
        Array.Clear(_cpu);
        foreach (int e in _ids) _cpu[e] = prediction.IsPrecalculated(e);
        _cpuCount = prediction.CpuExperts;
        if (_cpuCount == 0) return;
        x[.._hidden].CopyTo(_x);
        if (_background) _job = Task.Run(() => Run(layer));
        else Run(layer);
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
    /// Waits for the pre-calculation and returns Σ w_k · Expert_k(x) [H] over the pre-calculated experts (zeros when
    /// there are none). The span stays valid until the next <see cref="Start"/>.
    /// </summary>
    public ReadOnlySpan<float> Join()
    {
        if (_cpuCount == 0) Array.Clear(_acc);
        Finish();
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
