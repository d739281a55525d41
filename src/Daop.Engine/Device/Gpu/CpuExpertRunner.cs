using Daop.Kernels.Gpu;
using System.Diagnostics;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using Daop.Engine.Model;
using Daop.Engine.Schedule;
using Daop.Kernels.Cpu;
using Daop.Kernels.Generated;
using ILGPU.Runtime;

namespace Daop.Engine.Device.Gpu;

/// <summary>
/// Runs routed experts on host threads for a GPU forward pass: the layer's input rows come down once
/// (<see cref="Input"/>), each CPU expert runs as its layer's activation says (<see cref="CpuExpert"/>: SwiGLU on
/// <see cref="ExpertFfn.Forward"/>, GPT-OSS's biased clamped SwiGLU on <see cref="BiasedExpertFfn.Forward"/>, as the CPU
/// path runs them) on its memory-mapped weights over the tokens routed to it (<see cref="Run"/>), weighted outputs are summed per token on the host, and the sum goes back
/// up and into y in one copy and one add (<see cref="AddTo"/>). The scheduler queues the layer's GPU experts first
/// (launches are asynchronous on CUDA), so the CPU experts overlap them.
/// </summary>
public sealed class CpuExpertRunner
{
    readonly GpuDevice _d;
    readonly ModelWeights _w;
    readonly int _hidden, _inter;
    float[] _x = [], _in = [], _out = [], _scratch = [], _acc = [];
    DeviceBuffer? _yDev;
    DeviceBuffer? _xDev;
    int _tokens, _capacity;
    bool _haveInput, _any;

    /// <summary>
    /// Experts of <paramref name="weights"/> ([hidden] in and out, [inter] inside) for <paramref name="device"/>'s
    /// activations; <paramref name="missCopies"/>: their low-precision copies (<see cref="PlacementDriver.MissPrecision"/>), or null.
    /// </summary>
    public CpuExpertRunner(GpuDevice device, ModelWeights weights, int hidden, int inter, MissPrecisionCopies? missCopies = null)
    {
        _d = device;
        _w = weights;
        MissCopies = missCopies;
        _hidden = hidden;
        _inter = inter;
    }

    /// <summary>The low-precision copies <see cref="Run"/> reads with lowPrecision, or null.</summary>
    public MissPrecisionCopies? MissCopies { get; }

    /// <summary>Expert calls (one per expert per layer call, however many tokens).</summary>
    public long Runs { get; private set; }
    /// <summary>Token rows run (activations).</summary>
    public long Activations { get; private set; }
    /// <summary>Seconds spent in CPU experts (gather, FFN, weighted sum).</summary>
    public double Seconds { get; private set; }
    /// <summary>Device→host copies of layer inputs.</summary>
    public long InputCopies { get; private set; }

    /// <summary>Sizes host buffers and the device upload buffer for chunks of up to <paramref name="tokens"/>.</summary>
    public void Reserve(int tokens)
    {
        if (tokens <= _capacity) return;
        int h = _hidden;
        _x = GC.AllocateUninitializedArray<float>(tokens * h, pinned: true);
        _in = new float[tokens * h];
        _out = new float[tokens * h];
        _scratch = new float[2 * tokens * _inter];
        _acc = GC.AllocateUninitializedArray<float>(tokens * h, pinned: true);
        if (_yDev is GpuBuffer old) _d.Free(old.Buffer);
        _yDev = _d.Allocate(tokens * h);
        _capacity = tokens;
    }

    /// <summary>Starts a layer call over <paramref name="tokens"/> rows of <paramref name="x"/> (nothing is copied yet).</summary>
    public void Begin(DeviceBuffer x, int tokens)
    {
        Reserve(tokens);
        _xDev = x;
        _tokens = tokens;
        _haveInput = false;
        _any = false;
    }

    /// <summary>True once <see cref="Input"/> has copied this call's rows down (later reads are free).</summary>
    public bool HasInput => _haveInput;

    /// <summary>
    /// This call's input rows [T, H] on the host, copied down on first use (the copy waits for the compute stream, so
    /// ask before queueing kernels that may wait on transfers).
    /// </summary>
    public ReadOnlySpan<float> Input()
    {
        if (_xDev == null) throw new InvalidOperationException("Begin was not called");
        if (!_haveInput)
        {
            _d.CopyToHost(_xDev, 0, _x.AsSpan(0, _tokens * _hidden));
            _haveInput = true;
            InputCopies++;
        }
        return _x.AsSpan(0, _tokens * _hidden);
    }

    /// <summary>
    /// acc[rows[j]] += scales[j] · Expert(x[rows[j]]) for one expert of <paramref name="layer"/>, from its low-precision
    /// copy when <paramref name="lowPrecision"/>.
    /// </summary>
    public void Run(int layer, int expert, ReadOnlySpan<int> rows, ReadOnlySpan<float> scales, bool lowPrecision = false)
    {
        if (lowPrecision && MissCopies == null) throw new InvalidOperationException("a low-precision run needs the miss copies");
        int n = rows.Length, h = _hidden;
        if (n == 0) return;
        var x = Input();
        long t0 = Stopwatch.GetTimestamp();
        if (!_any)
        {
            _acc.AsSpan(0, _tokens * h).Clear();
            _any = true;
        }
        for (int j = 0; j < n; j++) x.Slice(rows[j] * h, h).CopyTo(_in.AsSpan(j * h, h));
        var w = lowPrecision ? MissCopies!.Weights(layer, expert) : _w.Layers[layer].Experts[expert];
        CpuExpert.Forward(GenericExpertKernel.Instance, _w.Layers[layer].Ffn.Spec.Act, w, _in.AsSpan(0, n * h), _out.AsSpan(0, n * h), n,
            _scratch.AsSpan(0, 2 * n * _inter));
        for (int j = 0; j < n; j++)
        {
            var dst = _acc.AsSpan(rows[j] * h, h);
            TensorPrimitives.MultiplyAdd(_out.AsSpan(j * h, h), scales[j], dst, dst);
        }
        Runs++;
        Activations += n;
        Seconds += Stopwatch.GetElapsedTime(t0).TotalSeconds;
    }

    /// <summary>acc[row] += <paramref name="sum"/> [H]: CPU expert outputs computed elsewhere (DAOP's pre-calculation).</summary>
    public void Accumulate(int row, ReadOnlySpan<float> sum)
    {
        if ((uint)row >= (uint)_tokens) throw new ArgumentOutOfRangeException(nameof(row), $"row {row} is outside this call's {_tokens} tokens");
        int h = _hidden;
        if (!_any)
        {
            _acc.AsSpan(0, _tokens * h).Clear();
            _any = true;
        }
        var dst = _acc.AsSpan(row * h, h);
        TensorPrimitives.Add(dst, sum[..h], dst);
    }

    /// <summary>True if <see cref="Run"/> or <see cref="Accumulate"/> produced anything in this call.</summary>
    public bool HasOutput => _any;

    /// <summary>
    /// Sends the summed CPU outputs up: y = them (<paramref name="overwrite"/>: no GPU expert wrote y) or y += them.
    /// Queued on the compute stream without waiting (the pinned host sum is staged by the driver before the call returns).
    /// </summary>
    public void AddTo(DeviceBuffer y, bool overwrite)
    {
        if (!_any) return;
        int n = _tokens * _hidden;
        var target = overwrite ? ((GpuBuffer)y).View : ((GpuBuffer)_yDev!).View;
        target.SubView(0, n).CopyFromCPUUnsafeAsync(_d.Stream, ref MemoryMarshal.GetArrayDataReference(_acc), n);
        _d.CountCopy();
        if (!overwrite) _d.Kernels.Add(_d.Stream, ((GpuBuffer)y).View, target, n);
    }
}
