using System.Numerics.Tensors;
using Daop.Engine.Device;
using Daop.Engine.Device.Cpu;
using Daop.Engine.Model;
using Daop.Engine.Model.Layers;
using Daop.Kernels;
using Daop.Kernels.Generated;

namespace Daop.Engine.Schedule;

/// <summary>
/// Every expert runs on the CPU device from its memory-mapped weights. Tokens are grouped by expert so
/// a prefill chunk reads each expert's weights once (matrix-matrix), not once per token.
/// </summary>
public sealed class LocalExpertScheduler : IExpertScheduler
{
    readonly ModelWeights _w;
    readonly int _hidden;
    readonly ExpertGroups _groups;         // [T·K] (token·K + k) grouped by expert; keys E.. are low-precision runs
    readonly float[] _in, _out, _scratch;  // [T, H] gathered inputs, [T, H] expert outputs, [2, T, I] FFN scratch
    readonly int[] _keys;                  // [T·K] expert, or E + expert for a run from its low-precision copy
    readonly int _experts, _inter;
    readonly IExpertKernel _kernel;
    IExpertKernel? _lowKernel;
    DType _lowType;

    /// <summary>The expert kernel in use (generated for this shape, or generic runtime-dims).</summary>
    public IExpertKernel Kernel => _kernel;

    /// <summary>Sizes the buffers for chunks of up to <paramref name="maxTokens"/>.</summary>
    public LocalExpertScheduler(ModelWeights weights, int hidden, int numExperts, int topK, int expertInter, int maxTokens)
    {
        _w = weights;
        _hidden = hidden;
        _experts = numExperts;
        _inter = expertInter;
        _groups = new ExpertGroups(2 * numExperts, maxTokens * topK);
        _keys = new int[maxTokens * topK];
        _in = new float[maxTokens * hidden];
        _out = new float[maxTokens * hidden];
        _scratch = new float[2 * maxTokens * expertInter];
        var first = weights.Layers.First(l => l.Experts.Length > 0).Experts[0];
        _kernel = ExpertKernelRegistry.Select(hidden, expertInter, first.Gate.Type);
    }

    /// <inheritdoc />
    public string Description => $"experts on cpu ({_kernel.Name})";

    /// <inheritdoc />
    public bool AllowsLastLayerPruning => true;

    /// <inheritdoc />
    public bool BatchesSequences => true;

    /// <inheritdoc />
    public void RunExperts(int layer, DeviceBuffer x, RoutingBatch r, DeviceBuffer y, int tokens) =>
        RunExperts(layer, x, r, y, tokens, default, null);

    /// <summary>
    /// <see cref="RunExperts(int, DeviceBuffer, RoutingBatch, DeviceBuffer, int)"/> where activation i (token·K + k) runs
    /// from <paramref name="copies"/> when <paramref name="lowPrecision"/>[i] (empty: none): the numerics of
    /// <see cref="MissPrecision"/>. An expert with activations of both kinds runs twice, once per copy.
    /// </summary>
    public void RunExperts(int layer, DeviceBuffer x, RoutingBatch r, DeviceBuffer y, int tokens, ReadOnlySpan<bool> lowPrecision,
        MissPrecisionCopies? copies)
    {
        if (!lowPrecision.IsEmpty && copies == null) throw new ArgumentNullException(nameof(copies), "low-precision runs need the copies");
        var xs = ((CpuBuffer)x).Data;
        var ys = ((CpuBuffer)y).Data;
        int h = _hidden, k = r.TopK;
        var experts = _w.Layers[layer].Experts;
        var act = _w.Layers[layer].Ffn.Spec.Act;
        ys.AsSpan(0, tokens * h).Clear();

        int p = tokens * k;
        var keys = _keys.AsSpan(0, p);
        r.Experts.AsSpan(0, p).CopyTo(keys);
        for (int i = 0; i < lowPrecision.Length && i < p; i++)
            if (lowPrecision[i]) keys[i] += _experts;
        _groups.Sort(keys);
        for (int key = 0; key < _groups.Keys; key++)
        {
            var group = _groups.Group(key);
            int n = group.Length;
            if (n == 0) continue;
            for (int j = 0; j < n; j++)
            {
                int t = group[j] / k;
                xs.AsSpan(t * h, h).CopyTo(_in.AsSpan(j * h, h));
            }
            bool low = key >= _experts;
            var ew = low ? copies!.Weights(layer, key - _experts) : experts[key];
            var kernel = low ? LowKernel(copies!) : _kernel;
            CpuExpert.Forward(kernel, act, ew, _in.AsSpan(0, n * h), _out.AsSpan(0, n * h), n, _scratch.AsSpan(0, 2 * n * ew.Gate.Rows));
            for (int j = 0; j < n; j++)
            {
                int slot = group[j], t = slot / k;
                TensorPrimitives.MultiplyAdd(_out.AsSpan(j * h, h), r.Weights[slot], ys.AsSpan(t * h, h), ys.AsSpan(t * h, h));
            }
        }
    }

    /// <summary>The expert kernel for <paramref name="copies"/>' type (selected once).</summary>
    public IExpertKernel LowKernel(MissPrecisionCopies copies)
    {
        ArgumentNullException.ThrowIfNull(copies);
        if (_lowKernel == null || _lowType != copies.Type)
        {
            _lowKernel = ExpertKernelRegistry.Select(_hidden, _inter, copies.Type);
            _lowType = copies.Type;
        }
        return _lowKernel;
    }
}
