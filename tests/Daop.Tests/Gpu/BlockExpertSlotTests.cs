using Daop.Engine.Device.Gpu;
using Daop.Engine.Model;
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
            using var store = new HostExpertStore(perLayer, layout, gpu.Gpu, mode);
            using var queue = new ExpertTransferQueue(dev, pool, store);
            pool.Upload(dev.Stream, 0, pool.Assign(0, 2), perLayer[0][2]);
            queue.Enqueue(0, 0, pool.Assign(0, 0));
            queue.Enqueue(0, 1, pool.Assign(0, 1));
            Assert.Equal(2 * expertBytes, queue.Bytes);
            Assert.Equal(mode == HostCopyMode.Staged ? 2 * expertBytes : 0, store.PinnedBytes);

            // Every route leaves the image GpuMatrix.Pack makes.
            for (int e = 0; e < 3; e++)
            {
                var (g, u, d, _) = pool.SlotViews(0, pool.SlotOf(0, e));
                var w = perLayer[0][e];
                Assert.Equal(Image(w.Gate), Read(g));
                Assert.Equal(Image(w.Up), Read(u));
                Assert.Equal(Image(w.Down), Read(d));
            }

            var x = Daop.Tests.Kernels.NativeWeights.Floats(Hidden, 7);
            for (int e = 0; e < 3; e++)
            {
                var (want, mag) = experts[e].Reference(x);
                var got = RunSlot(pool, 0, pool.SlotOf(0, e), x);
                GpuExpertTests.AssertClose(want, mag, got, $"{type} {mode} expert {e}");
            }
        }
        finally
        {
            foreach (var e in experts) e.Dispose();
        }
    }

    /// <summary>
    /// A Q4_K_M file's experts: q4_K gate and up everywhere, down q4_K in one layer and q6_K in another. One slot layout
    /// serves both (down as Q8_0, requantized at upload), every upload route leaves that image, and each slot runs its
    /// expert as the requantized values say. Dense dtypes that differ, and shapes that differ, are refused.
    /// </summary>
    [Theory]
    [InlineData(HostCopyMode.Staged)]
    [InlineData(HostCopyMode.Direct)]
    public void ExpertsWhoseDownFormatsDifferShareOneQ8Slot(HostCopyMode mode)
    {
        const int h = 256, n = 256;
        using var gate = new BlockWeights(DType.Q4_K, n, h, 1);
        using var up = new BlockWeights(DType.Q4_K, n, h, 2);
        using var down4 = new BlockWeights(DType.Q4_K, h, n, 3);
        using var down6 = new BlockWeights(DType.Q6_K, h, n, 4);
        ExpertWeights e4 = new(gate.W, up.W, down4.W), e6 = new(gate.W, up.W, down6.W);
        var layout = ExpertLayout.Of(new[] { e4, e6 });
        Assert.Equal(new ExpertLayout(DType.Q4_K, DType.Q4_K, DType.Q8_0, h, n), layout);
        Assert.Equal(new ExpertLayout(DType.Q4_K, DType.Q4_K, DType.Q4_K, h, n), ExpertLayout.Of(new[] { e4, e4 }));
        Assert.Equal("gate q4_K, up q4_K, down q8_0, 256x256", layout.ToString());
        using var bf16 = new Daop.Tests.Kernels.NativeWeights(DType.BF16, h, n, 5);
        var e = Assert.Throws<NotSupportedException>(() => ExpertLayout.Of(new[] { e4, new ExpertWeights(gate.W, up.W, bf16.W) }));
        Assert.Contains("differ in dtype", e.Message);

        using var dev = new GpuDevice(gpu.Accelerator);
        var perLayer = new[] { new[] { e4 }, new[] { e6 } };
        using var pool = new ExpertSlotPool(dev, layout, 1, [1, 1]);
        using var store = new HostExpertStore(perLayer, layout, gpu.Gpu, mode);
        using var queue = new ExpertTransferQueue(dev, pool, store);
        queue.Enqueue(0, 0, pool.Assign(0, 0));
        pool.Upload(dev.Stream, 1, pool.Assign(1, 0), e6);
        var x = Daop.Tests.Kernels.NativeWeights.Floats(h, 7);
        foreach (var (layer, down) in new[] { (0, down4), (1, down6) })
        {
            var (g, u, d, _) = pool.SlotViews(layer, 0);
            Assert.Equal(Image(gate.W), Read(g));
            var q8 = new Chunk16[GpuMatrix.ChunksPerRow(DType.Q8_0, n) * h];
            GpuMatrix.Pack(down.W, 0, h, q8, DType.Q8_0);
            Assert.Equal(q8, Read(d));
            // The reference: gate and up as stored, down as its Q8_0 requantization.
            var hidden = new double[n];
            for (int r = 0; r < n; r++)
            {
                double a = 0, b = 0;
                for (int c = 0; c < h; c++) { a += (double)x[c] * gate.At(r, c); b += (double)x[c] * up.At(r, c); }
                hidden[r] = a / (1 + Math.Exp(-a)) * b;
            }
            var want = new double[h];
            var mag = new double[h];
            var row = new float[n];
            var bytes = new byte[DType.Q8_0.RowBytes(n)];
            for (int r = 0; r < h; r++)
            {
                Daop.Kernels.Quant.BlockQuant.QuantizeRow(DType.Q8_0, down.Row(r), bytes);
                Daop.Kernels.Quant.BlockQuant.DequantizeRow(DType.Q8_0, bytes, row);
                for (int c = 0; c < n; c++) { want[r] += row[c] * hidden[c]; mag[r] += Math.Abs(row[c] * hidden[c]); }
            }
            GpuExpertTests.AssertClose(want, mag, RunSlot(pool, layer, 0, x), $"{mode} layer {layer}");
        }
    }

    static Chunk16[] Image(in WeightMatrix w)
    {
        var a = new Chunk16[GpuMatrix.ChunksFor(w)];
        GpuMatrix.Pack(w, 0, w.Rows, a);
        return a;
    }

    Chunk16[] Read(GpuView<Chunk16> v)
    {
        var a = new Chunk16[v.Length];
        v.CopyToCPU(gpu.Gpu.DefaultStream, a);
        return a;
    }

    // One token through one slot: gate/up over a single grouped tile, then the fused down-and-combine with weight 1.
    float[] RunSlot(ExpertSlotPool pool, int layer, int slot, float[] x)
    {
        int hidden = pool.Layout.Hidden, inter = pool.Layout.Inter;
        var (gate, up, down) = pool.Matrices(layer);
        var index = new[] { 0, slot, 0, 1, 0, slot, BitConverter.SingleToInt32Bits(1f) };
        using var ib = gpu.Upload(index);
        using var xb = gpu.Upload(x);
        using var hb = gpu.Zeros(inter);
        using var yb = gpu.Zeros(hidden);
        ArrayView<int> iv = ib.View;
        gpu.Kernels.GateUp(gpu.Stream, gate, up, xb.View, hb.View, 1, iv, 1, 1, 1);
        gpu.Kernels.DownCombine(gpu.Stream, down, hb.View, yb.View, 1, 1, iv, iv.SubView(6, 1).Cast<float>(), 4, 5);
        return gpu.Read(yb, hidden);
    }
}
