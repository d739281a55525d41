using System.Runtime.InteropServices;
using Daop.Engine.Model;
using Daop.Engine.Model.Layers;
using Daop.Engine.Schedule;
using Daop.Kernels;
using Daop.Kernels.Gpu;
using ILGPU;
using ILGPU.Runtime;

namespace Daop.Engine.Device.Gpu;

/// <summary>
/// Routed experts on a <see cref="GpuDevice"/> with every expert resident: each layer's gate, up and down matrices
/// are uploaded on first use as three stacks. Per call the host sorts the (token, slot) pairs by expert (as
/// <see cref="LocalExpertScheduler"/> does), uploads the order, token tiles and combine weights in one copy, and
/// runs two or three launches: fused gate/up + SiLU over all routed tiles, then either the down projection with
/// the weighted combine fused (few tokens: decode) or a grouped down projection plus a combine pass (prefill).
/// Tiles hold up to 4 positions of one expert for the row kernels; once some expert has more than 4 positions they
/// hold up to <see cref="GpuKernels.BatchTileTokens"/> (32, or 64 on the bf16 tensor-core path) for the batched
/// kernels, which read each weight row once per tile.
/// </summary>
public sealed class GpuExpertScheduler : IExpertScheduler
{
    /// <summary>Up to this many tokens use the fused down-and-combine kernel.</summary>
    public const int FusedCombineMaxTokens = 2;

    readonly ModelWeights _w;
    readonly GpuDevice _d;
    readonly int _hidden, _inter;
    readonly (GpuMatrix Gate, GpuMatrix Up, GpuMatrix Down)?[] _stacks;
    int[] _count, _start, _fill, _host = [];
    MemoryBuffer1D<int, Stride1D.Dense>? _index;
    MemoryBuffer1D<float, Stride1D.Dense>? _h, _yk;

    /// <summary>Experts of <paramref name="weights"/> on <paramref name="device"/>.</summary>
    public GpuExpertScheduler(ModelWeights weights, int hidden, int numExperts, int expertInter, GpuDevice device)
    {
        _w = weights;
        _d = device;
        _hidden = hidden;
        _inter = expertInter;
        _stacks = new (GpuMatrix, GpuMatrix, GpuMatrix)?[weights.Layers.Length];
        _count = new int[numExperts];
        _start = new int[numExperts + 1];
        _fill = new int[numExperts];
    }

    /// <summary>Experts of <paramref name="model"/> on <paramref name="device"/> (which must be a <see cref="GpuDevice"/>).</summary>
    public GpuExpertScheduler(MoeModel model, IDevice device)
        : this(model.Weights, model.Config.HiddenSize, model.Config.NumExperts, model.Config.ExpertIntermediate,
            device as GpuDevice ?? throw new ArgumentException($"the GPU expert scheduler needs a GpuDevice, got {device.Name}", nameof(device)))
    { }

    (GpuMatrix Gate, GpuMatrix Up, GpuMatrix Down) Stacks(int layer)
    {
        if (_stacks[layer] is { } s) return s;
        var ex = _w.Layers[layer].Experts;
        var gate = new WeightMatrix[ex.Length];
        var up = new WeightMatrix[ex.Length];
        var down = new WeightMatrix[ex.Length];
        for (int e = 0; e < ex.Length; e++) { gate[e] = ex[e].Gate; up[e] = ex[e].Up; down[e] = ex[e].Down; }
        var st = (_d.Stack(gate), _d.Stack(up), _d.Stack(down));
        _stacks[layer] = st;
        return st;
    }

    /// <summary>Uploads every layer's experts now rather than on first use.</summary>
    public void Preload()
    {
        for (int l = 0; l < _stacks.Length; l++)
            if (_w.Layers[l].Experts.Length > 0) Stacks(l);
    }

    /// <inheritdoc />
    public void RunExperts(int layer, DeviceBuffer x, RoutingBatch r, DeviceBuffer y, int tokens)
    {
        if (tokens <= 0) return;
        var (gate, up, down) = Stacks(layer);
        int k = r.TopK, p = tokens * k, numExperts = _count.Length;
        var xs = ((GpuBuffer)x).View;
        var ys = ((GpuBuffer)y).View;

        // Counting sort of slots (token·K + j) by expert, then tiles of ≤ tileSize positions per expert.
        Array.Clear(_count);
        for (int i = 0; i < p; i++)
        {
            int e = r.Experts[i];
            if ((uint)e >= (uint)numExperts) throw new ArgumentOutOfRangeException(nameof(r), $"expert {e} of slot {i} is outside [0, {numExperts})");
            _count[e]++;
        }
        var kern = _d.Kernels;
        bool batched = tokens > FusedCombineMaxTokens && _count.Max() > GpuKernels.RowTokens;
        int tileSize = batched ? Math.Min(kern.BatchTileTokens(gate.Type), kern.BatchTileTokens(down.Type)) : GpuKernels.RowTokens;
        int tiles = 0;
        _start[0] = 0;
        for (int e = 0; e < numExperts; e++)
        {
            _start[e + 1] = _start[e] + _count[e];
            tiles += (_count[e] + tileSize - 1) / tileSize;
        }
        // Layout: [order P | tiles 3·nt | pos P | expert P | weight bits P]
        int tileOff = p, posOff = tileOff + 3 * tiles, expOff = posOff + p, wOff = expOff + p, total = wOff + p;
        if (_host.Length < total) _host = GC.AllocateUninitializedArray<int>(Math.Max(total, 2 * _host.Length), pinned: true);
        var host = _host;
        Array.Copy(_start, _fill, numExperts);
        for (int i = 0; i < p; i++) host[_fill[r.Experts[i]]++] = i;
        int tile = 0;
        for (int e = 0; e < numExperts; e++)
            for (int s = 0; s < _count[e]; s += tileSize)
            {
                int o = tileOff + 3 * tile++;
                host[o] = e;
                host[o + 1] = _start[e] + s;
                host[o + 2] = Math.Min(tileSize, _count[e] - s);
            }
        for (int i = 0; i < p; i++)
        {
            host[posOff + host[i]] = i;
            host[expOff + i] = r.Experts[i];
            host[wOff + i] = BitConverter.SingleToInt32Bits(r.Weights[i]);
        }
        if (_index == null || _index.Length < total)
        {
            if (_index != null) _d.Free(_index);
            _index = _d.Accelerator.Allocate1D<int>(Math.Max(total, 256));
            Track(_index);
        }
        ArrayView<int> index = _index.View;
        // Queued without waiting: the pinned host array is pageable memory to CUDA, which stages it before the call
        // returns, and the CPU accelerator copies at once — so the array may be refilled by the next call.
        index.SubView(0, total).CopyFromCPUUnsafeAsync(_d.Stream, ref MemoryMarshal.GetArrayDataReference(host), total);
        _d.CountCopy();
        var scales = index.SubView(wOff, p).Cast<float>();

        var h = _d.Scratch(ref _h, (long)p * _inter);
        kern.GateUp(_d.Stream, gate, up, xs, h, p, index, k, tiles, tileOff, batched);
        if (tokens <= FusedCombineMaxTokens)
            kern.DownCombine(_d.Stream, down, h, ys, tokens, k, index, scales, posOff, expOff);
        else
        {
            var yk = _d.Scratch(ref _yk, (long)p * _hidden);
            kern.Down(_d.Stream, down, h, yk, p, index, scales, tiles, tileOff, batched);
            kern.Combine(_d.Stream, yk, ys, tokens, k, _hidden);
        }
    }

    void Track(MemoryBuffer1D<int, Stride1D.Dense> b) => _d.Track(b);
}
