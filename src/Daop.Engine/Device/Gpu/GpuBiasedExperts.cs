using Daop.Kernels.Gpu;
using System.Runtime.InteropServices;
using Daop.Engine.Load.Config;
using Daop.Engine.Model;
using ILGPU;
using ILGPU.Runtime;

namespace Daop.Engine.Device.Gpu;

/// <summary>
/// GPT-OSS's routed experts (<see cref="Activation.ClampedSwiGlu"/>) on a <see cref="GpuDevice"/> with every expert
/// resident, for <see cref="GpuResidentExperts"/>: per expert routed to, its rows are gathered, then gate and up
/// (each a biased Linear), the clamped SwiGLU, down (biased) and a weighted scatter-add into the tokens' rows — six
/// launches per expert, on the device's Linear kernels and matrix cache. The positions grouped by expert and the
/// routing weights go up in two copies per call. Not the fused tile kernels of SwiGLU experts: correct first, fast later.
/// </summary>
internal sealed class GpuBiasedExperts(ModelWeights weights, GpuDevice device, int hidden, int inter, int experts)
{
    readonly ExpertGroups _groups = new(experts);
    GpuArray<int>? _order;
    GpuArray<float>? _weights, _xs, _g, _u, _o;

    /// <summary>y [T, H] = Σ_k w[t,k] · Expert_{e[t,k]}(x[t]) for <paramref name="layer"/>, whose activation is <paramref name="act"/>.</summary>
    public void Run(int layer, Activation.ClampedSwiGlu act, DeviceBuffer x, Model.Layers.RoutingBatch r, DeviceBuffer y, int tokens)
    {
        var d = device;
        var k = d.Kernels;
        int topK = r.TopK, p = tokens * topK;
        _groups.Sort(r.Experts.AsSpan(0, p));
        var order = Ints(ref _order, p);
        // Pageable, pinned for the call: CUDA stages both before the calls return.
        order.SubView(0, p).CopyFromCPU(d.Stream, _groups.Order[..p]);
        var w = d.Scratch(ref _weights, p);
        w.SubView(0, p).CopyFromCPU(d.Stream, r.Weights.AsSpan(0, p));
        d.CountCopy();
        d.CountCopy();
        int most = _groups.MaxCount;
        var xs = d.Scratch(ref _xs, (long)most * hidden);               // [n, H] the expert's rows
        var g = d.Scratch(ref _g, (long)most * inter);                  // [n, I] gate, then the activation
        var u = d.Scratch(ref _u, (long)most * inter);                  // [n, I] up
        var o = d.Scratch(ref _o, (long)most * hidden);                 // [n, H] the expert's outputs
        var xv = ((GpuBuffer)x).View;
        var yv = ((GpuBuffer)y).View;
        yv.SubView(0, (long)tokens * hidden).MemSetToZero(d.Stream);
        var ex = weights.Layers[layer].Experts;
        for (int e = 0; e < _groups.Keys; e++)
        {
            int n = _groups.Count(e), start = _groups.Start(e);
            if (n == 0) continue;
            var b = ex[e].Bias ?? throw new InvalidOperationException($"layer {layer} expert {e} has no biases for {act}");
            k.GatherRows(d.Stream, xv, xs, order, start, n, hidden, topK);
            k.Gemv(d.Stream, d.Matrix(ex[e].Gate), xs, g, n, d.Vector(b.Gate));
            k.Gemv(d.Stream, d.Matrix(ex[e].Up), xs, u, n, d.Vector(b.Up));
            k.ClampedSwiGlu(d.Stream, g, u, n * inter, act.Alpha, act.Limit);
            k.Gemv(d.Stream, d.Matrix(ex[e].Down), g, o, n, d.Vector(b.Down));
            k.ScatterAddRows(d.Stream, yv, o, order, w, start, n, hidden, topK);
        }
    }

    // The int buffer in slot, at least n long (grows, then stays).
    GpuView<int> Ints(ref GpuArray<int>? slot, int n)
    {
        if (slot == null || slot.Length < n)
        {
            if (slot != null) device.Free(slot);
            slot = device.Gpu.Allocate1D<int>(Math.Max(n, 64));
            device.Track(slot);
        }
        return slot.View;
    }
}
