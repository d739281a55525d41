using System.Runtime.InteropServices;
using Daop.Engine.Device.Gpu;
using Daop.Engine.Model;
using Daop.Kernels;
using Daop.Kernels.Gpu;
using Daop.Tests.Model;
using ILGPU;
using ILGPU.Runtime;

namespace Daop.Tests.Gpu;

/// <summary>
/// Quantized experts through the offloading machinery that only moves bytes (no kernel reads them): the pool sizes slots
/// in q4_0 bytes, and an expert uploaded directly, staged or transferred lands in its slot as the device image of its
/// stored block rows (<see cref="GpuMatrix.Pack(in WeightMatrix, int, int, Span{Chunk16}, DType)"/>: the same bytes, values then scales), on the CPU accelerator.
/// </summary>
[Collection(GpuCollection.Name)]
public class QuantizedSlotTests(GpuFixture gpu)
{
    /// <summary>The device image of <paramref name="w"/> (block rows reordered by <see cref="BlockLayout.PackRow"/>).</summary>
    static byte[] Image(in WeightMatrix w)
    {
        var b = new Chunk16[GpuMatrix.ChunksFor(w)];
        GpuMatrix.Pack(w, 0, w.Rows, b);
        return MemoryMarshal.AsBytes(b.AsSpan()).ToArray();
    }

    byte[] Read(GpuView<Chunk16> v)
    {
        var a = new Chunk16[v.Length];
        v.CopyToCPU(gpu.Gpu.DefaultStream, a);
        return MemoryMarshal.AsBytes(a.AsSpan()).ToArray();
    }

    [Theory]
    [InlineData(HostCopyMode.Direct)]
    [InlineData(HostCopyMode.Staged)]
    public void SlotsHoldTheStoredBlocks(HostCopyMode mode)
    {
        using var m = MoeModel.Load(QuantizedModels.EmbeddedQ4, new ModelOptions { ContextLength = 8 });
        var layout = ExpertLayout.Of(m.Weights);
        Assert.Equal(new ExpertLayout(DType.Q4_0, DType.Q4_0, DType.Q4_0, 256, 256), layout);
        Assert.Equal(3L * 256 * 144, layout.ExpertBytes);
        using var dev = new GpuDevice(gpu.Accelerator);
        using var pool = new ExpertSlotPool(dev, layout, 8, [2, 1, 0, 0, 0, 0]);
        Assert.Equal(3 * layout.ExpertBytes, pool.AllocatedBytes);
        using var store = new HostExpertStore(m.Weights, layout, gpu.Gpu, mode);
        using var queue = new ExpertTransferQueue(dev, pool, store);
        pool.Upload(dev.Stream, 0, pool.Assign(0, 5), m.Weights.Layers[0].Experts[5]);
        queue.Enqueue(0, 2, pool.Assign(0, 2));
        queue.Enqueue(1, 7, pool.Assign(1, 7));
        Assert.Equal(2 * layout.ExpertBytes, queue.Bytes);
        Assert.Equal(mode == HostCopyMode.Staged ? 2 * layout.ExpertBytes : 0, store.PinnedBytes);
        pool.CheckConsistency();
        foreach (var (l, e) in new[] { (0, 5), (0, 2), (1, 7) })
        {
            var w = m.Weights.Layers[l].Experts[e];
            var (g, u, d, _) = pool.SlotViews(l, pool.SlotOf(l, e));
            Assert.Equal(Image(w.Gate), Read(g));
            Assert.Equal(Image(w.Up), Read(u));
            Assert.Equal(Image(w.Down), Read(d));
        }
    }
}
