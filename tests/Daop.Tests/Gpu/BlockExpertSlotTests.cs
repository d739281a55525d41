using Daop.Engine.Device.Gpu;
using Daop.Kernels;
using Daop.Kernels.Gpu;
using ILGPU;
using ILGPU.Runtime;

namespace Daop.Tests.Gpu;

/// <summary>
/// Quantized experts through the offload path's upload routes on the CPU accelerator: <see cref="ExpertSlotPool"/> sizes
/// slots by the quantized bytes, the pool's upload, the host store's direct copies and its staged images all put the
/// same device image in a slot, transfers count the quantized bytes, and the grouped kernels run the expert from its
/// slot as the dequantized reference says.
/// </summary>
[Collection(GpuCollection.Name)]
public class BlockExpertSlotTests(GpuFixture gpu)
{
    const int Hidden = 264, Inter = 40;

    [Theory]
    [InlineData(DType.Q8_0, HostCopyMode.Direct)]
    [InlineData(DType.Q4_0, HostCopyMode.Staged)]
    [InlineData(DType.MXFP4, HostCopyMode.Staged)]
    [InlineData(DType.MXFP4, HostCopyMode.Direct)]
    public void QuantizedExpertsTransferTheirBytesAndRunFromSlots(DType type, HostCopyMode mode)
    {
        var layout = new ExpertLayout(type, type, type, Hidden, Inter);
        long expertBytes = 16L * (2 * Inter * GpuMatrix.ChunksPerRow(type, Hidden) + Hidden * GpuMatrix.ChunksPerRow(type, Inter));
        Assert.Equal(expertBytes, layout.ExpertBytes);
        Assert.InRange(layout.ExpertBytes - (2L * Inter * type.RowBytes(Hidden) + Hidden * type.RowBytes(Inter)), 0, 15 * (2 * Inter + Hidden));

        using var dev = new GpuDevice(gpu.Accelerator);
        var experts = Enumerable.Range(0, 3).Select(i => new GpuExpertTests.Expert(type, Hidden, Inter, 100 + 10 * i)).ToArray();
        try
        {
            var perLayer = new[] { experts.Select(e => e.W).ToArray() };
            using var pool = new ExpertSlotPool(dev, layout, 3, [3]);
            Assert.Equal(3 * expertBytes, pool.AllocatedBytes);
            using var store = new HostExpertStore(perLayer, layout, gpu.Accelerator, mode);
            using var queue = new ExpertTransferQueue(dev, pool, store);
            pool.Upload(dev.Stream, 0, pool.Assign(0, 2), perLayer[0][2]);
            queue.Enqueue(0, 0, pool.Assign(0, 0));
            queue.Enqueue(0, 1, pool.Assign(0, 1));
            Assert.Equal(2 * expertBytes, queue.Bytes);
            Assert.Equal(mode == HostCopyMode.Staged ? 2 * expertBytes : 0, store.PinnedBytes);

            // Every route leaves the image GpuMatrix.Pack makes.
            for (int e = 0; e < 3; e++)
            {
                var (g, u, d) = pool.SlotViews(0, pool.SlotOf(0, e));
                var w = perLayer[0][e];
                Assert.Equal(Image(w.Gate), Read(g));
                Assert.Equal(Image(w.Up), Read(u));
                Assert.Equal(Image(w.Down), Read(d));
            }

            var x = Daop.Tests.Kernels.NativeWeights.Floats(Hidden, 7);
            for (int e = 0; e < 3; e++)
            {
                var (want, mag) = experts[e].Reference(x);
                var got = RunSlot(pool, pool.SlotOf(0, e), x);
                GpuExpertTests.AssertClose(want, mag, got, $"{type} {mode} expert {e}");
            }
        }
        finally
        {
            foreach (var e in experts) e.Dispose();
        }
    }

    static Chunk16[] Image(in WeightMatrix w)
    {
        var a = new Chunk16[GpuMatrix.ChunksFor(w)];
        GpuMatrix.Pack(w, 0, w.Rows, a);
        return a;
    }

    Chunk16[] Read(ArrayView<Chunk16> v)
    {
        gpu.Accelerator.Synchronize();
        var a = new Chunk16[v.Length];
        v.CopyToCPU(a);
        return a;
    }

    // One token through one slot: gate/up over a single grouped tile, then the fused down-and-combine with weight 1.
    float[] RunSlot(ExpertSlotPool pool, int slot, float[] x)
    {
        var (gate, up, down) = pool.Matrices(0);
        var index = new[] { 0, slot, 0, 1, 0, slot, BitConverter.SingleToInt32Bits(1f) };
        using var ib = gpu.Upload(index);
        using var xb = gpu.Upload(x);
        using var hb = gpu.Zeros(Inter);
        using var yb = gpu.Zeros(Hidden);
        ArrayView<int> iv = ib.View;
        gpu.Kernels.GateUp(gpu.Stream, gate, up, xb.View, hb.View, 1, iv, 1, 1, 1);
        gpu.Kernels.DownCombine(gpu.Stream, down, hb.View, yb.View, 1, 1, iv, iv.SubView(6, 1).Cast<float>(), 4, 5);
        return gpu.Read(yb, Hidden);
    }
}
