using Daop.Kernels.Gpu;
using Daop.Engine.Device.Gpu;
using Daop.Engine.Model;
using Daop.Kernels;
using Daop.Kernels.Cpu;
using Daop.Tests.Kernels;
using ILGPU;
using ILGPU.Runtime;

namespace Daop.Tests.Gpu;

/// <summary>
/// <see cref="ExpertSlotPool"/>, <see cref="HostExpertStore"/> and <see cref="ExpertTransferQueue"/> on the CPU
/// accelerator: exact byte accounting, slot bookkeeping, and experts with padded rows (fp32 gate/up of 5 columns,
/// bf16 down of 3) run by the grouped kernels straight from their slot, against <see cref="ExpertFfn"/>.
/// </summary>
[Collection(GpuCollection.Name)]
public class ExpertSlotPoolTests(GpuFixture gpu)
{
    const int Hidden = 5, Inter = 3;
    static readonly ExpertLayout Layout = new(DType.F32, DType.F32, DType.BF16, Hidden, Inter);

    sealed class Expert(int seed) : IDisposable
    {
        public readonly NativeWeights Gate = new(DType.F32, Inter, Hidden, seed, 0.5f);
        public readonly NativeWeights Up = new(DType.F32, Inter, Hidden, seed + 1, 0.5f);
        public readonly NativeWeights Down = new(DType.BF16, Hidden, Inter, seed + 2, 0.5f);
        public ExpertWeights W => new(Gate.W, Up.W, Down.W);
        public void Dispose() { Gate.Dispose(); Up.Dispose(); Down.Dispose(); }
    }

    [Fact]
    public void PoolAccountsExactlyAndRefusesMoreExpertsThanSlots()
    {
        using var dev = new GpuDevice(gpu.Accelerator);
        // gate/up: 3 rows of 20 bytes → 2 chunks each; down: 5 rows of 6 bytes → 1 chunk each
        Assert.Equal(16 * (3 * 2 + 3 * 2 + 5 * 1), Layout.ExpertBytes);
        long before = dev.AllocatedBytes;
        var pool = new ExpertSlotPool(dev, Layout, experts: 4, [2, 0, 1]);
        Assert.Equal(3, pool.Slots);
        Assert.Equal(3 * Layout.ExpertBytes, pool.AllocatedBytes);
        Assert.Equal(before + pool.AllocatedBytes, dev.AllocatedBytes);

        int a = pool.Assign(0, 3), b = pool.Assign(0, 1);
        Assert.NotEqual(a, b);
        Assert.Equal(2, pool.SlotsInUse);
        Assert.Equal(2, pool.InUse(0));
        Assert.Equal(a, pool.SlotOf(0, 3));
        Assert.Equal(1, pool.ExpertAt(0, b));
        var full = Assert.Throws<InvalidOperationException>(() => pool.Assign(0, 2));
        Assert.Contains("no free expert slot", full.Message);
        Assert.Throws<InvalidOperationException>(() => pool.Assign(1, 0));   // a layer without slots
        Assert.Throws<InvalidOperationException>(() => pool.Assign(0, 1));   // already resident
        Assert.Equal(a, pool.Release(0, 3));
        Assert.Equal(-1, pool.SlotOf(0, 3));
        Assert.Equal(a, pool.Assign(0, 2));
        Assert.Equal(2, pool.SlotsInUse);
        Assert.Throws<ArgumentOutOfRangeException>(() => new ExpertSlotPool(dev, Layout, 4, [5]));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ExpertSlotPool(dev, Layout, 4, [-1]));

        pool.Dispose();
        Assert.Equal(before, dev.AllocatedBytes);
        using var empty = new ExpertSlotPool(dev, Layout, 4, [0, 0]);
        Assert.Equal(0, empty.AllocatedBytes);
        Assert.Equal(before, dev.AllocatedBytes);
    }

    [Theory]
    [InlineData(HostCopyMode.Direct)]
    [InlineData(HostCopyMode.Staged)]
    public void ExpertsRunFromTheirSlots(HostCopyMode mode)
    {
        using var dev = new GpuDevice(gpu.Accelerator);
        var experts = Enumerable.Range(0, 3).Select(i => new Expert(100 + 10 * i)).ToArray();
        try
        {
            var perLayer = new[] { experts.Select(e => e.W).ToArray(), experts.Select(e => e.W).Reverse().ToArray() };
            using var pool = new ExpertSlotPool(dev, Layout, 3, [2, 1]);
            using var store = new HostExpertStore(perLayer, Layout, gpu.Gpu, mode);
            using var queue = new ExpertTransferQueue(dev, pool, store);
            Assert.False(queue.IsAsync);
            Assert.Equal(mode, store.Mode);

            // layer 0: expert 2 uploaded at start, expert 0 transferred; layer 1: expert 1 (= experts[1]) transferred
            pool.Upload(dev.Stream, 0, pool.Assign(0, 2), perLayer[0][2]);
            queue.Enqueue(0, 0, pool.Assign(0, 0));
            queue.Enqueue(1, 1, pool.Assign(1, 1));
            Assert.Equal(2, queue.Copies);
            Assert.Equal(2 * Layout.ExpertBytes, queue.Bytes);
            Assert.Equal(mode == HostCopyMode.Staged ? 2 * Layout.ExpertBytes : 0, store.PinnedBytes);

            var x = NativeWeights.Floats(Hidden, 7);
            foreach (var (layer, expert) in new[] { (0, 2), (0, 0), (1, 1) })
            {
                var w = perLayer[layer][expert];
                var want = new float[Hidden];
                ExpertFfn.Forward(w.Gate, w.Up, w.Down, x, want, 1, new float[2 * Inter]);
                var got = RunSlot(dev, pool, layer, pool.SlotOf(layer, expert), x);
                for (int i = 0; i < Hidden; i++)
                    Assert.True(Math.Abs(want[i] - got[i]) <= 1e-5f * (1 + Math.Abs(want[i])), $"layer {layer} expert {expert} [{i}]: {want[i]} vs {got[i]}");
            }
        }
        finally
        {
            foreach (var e in experts) e.Dispose();
        }
    }

    [Fact]
    public void BackgroundImagesAreMadeOnceEachWithinTheBudgetAndServeTransfers()
    {
        using var dev = new GpuDevice(gpu.Accelerator);
        var experts = Enumerable.Range(0, 6).Select(i => new Expert(300 + 10 * i)).ToArray();
        try
        {
            var perLayer = new[] { experts[..3].Select(e => e.W).ToArray(), experts[3..].Select(e => e.W).ToArray() };
            var all = Enumerable.Range(0, 2).SelectMany(l => Enumerable.Range(0, 3).Select(e => (l, e))).ToArray();
            using (var store = new HostExpertStore(perLayer, Layout, gpu.Gpu, HostCopyMode.Staged))
            {
                store.PinInBackground(all, threads: 3);
                // Transfers pin the same experts meanwhile, from the other end: each image is still made exactly once.
                Parallel.ForEach(all.Reverse(), new ParallelOptions { MaxDegreeOfParallelism = 3 }, p => Assert.True(store.Pin(p.l, p.e)));
                store.WaitForBackground();
                Assert.Equal(6, store.ImagesMade);
                Assert.Equal(6 * Layout.ExpertBytes, store.PinnedBytes);
                Assert.All(all, p => Assert.True(store.IsPinned(p.l, p.e)));
                Assert.Throws<InvalidOperationException>(() => store.PinInBackground(all, 1));

                // The copies read the images: each of layer 1's experts computes its FFN from a slot.
                using var pool = new ExpertSlotPool(dev, Layout, 3, [0, 3]);
                using var queue = new ExpertTransferQueue(dev, pool, store);
                var x = NativeWeights.Floats(Hidden, 9);
                for (int e = 0; e < 3; e++)
                {
                    queue.Enqueue(1, e, pool.Assign(1, e));
                    var w = perLayer[1][e];
                    var want = new float[Hidden];
                    ExpertFfn.Forward(w.Gate, w.Up, w.Down, x, want, 1, new float[2 * Inter]);
                    var got = RunSlot(dev, pool, 1, pool.SlotOf(1, e), x);
                    for (int i = 0; i < Hidden; i++)
                        Assert.True(Math.Abs(want[i] - got[i]) <= 1e-5f * (1 + Math.Abs(want[i])), $"expert {e} [{i}]: {want[i]} vs {got[i]}");
                }
                Assert.Equal(6, store.ImagesMade); // nothing made twice by the copies
            }

            // A budget of two images: the background stops there, and later pins past it say no.
            using (var small = new HostExpertStore(perLayer, Layout, gpu.Gpu, HostCopyMode.Staged, pinnedBudgetBytes: 2 * Layout.ExpertBytes + 1))
            {
                small.PinInBackground(all, threads: 3);
                small.WaitForBackground();
                Assert.Equal(2, small.ImagesMade);
                Assert.Equal(2 * Layout.ExpertBytes, small.PinnedBytes);
                Assert.Equal(2, all.Count(p => small.IsPinned(p.l, p.e)));
                Assert.Equal(4, all.Count(p => !small.Pin(p.l, p.e)));
            }

            // Direct mode makes no images; disposing while the background runs stops it.
            using (var direct = new HostExpertStore(perLayer, Layout, gpu.Gpu, HostCopyMode.Direct))
            {
                direct.PinInBackground(all, threads: 2);
                direct.WaitForBackground();
                Assert.Equal(0, direct.ImagesMade);
            }
            var busy = new HostExpertStore(perLayer, Layout, gpu.Gpu, HostCopyMode.Staged);
            busy.PinInBackground(all, threads: 1);
            busy.Dispose();
            Assert.Equal(0, busy.PinnedBytes);
            Assert.Throws<ObjectDisposedException>(() => busy.Pin(0, 0));
        }
        finally
        {
            foreach (var e in experts) e.Dispose();
        }
    }

    // One token through one slot: gate/up over a single grouped tile, then the fused down-and-combine with weight 1.
    float[] RunSlot(GpuDevice dev, ExpertSlotPool pool, int layer, int slot, float[] x)
    {
        var (gate, up, down) = pool.Matrices(layer);
        // [order 1 | tile (slot, 0, 1) | pos 1 | expert 1 | weight 1]
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
