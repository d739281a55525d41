using Daop.Engine.Device;
using Daop.Engine.Device.Cpu;
using Daop.Engine.Device.Gpu;
using Daop.Engine.Load.Config;
using Daop.Engine.Model;
using Daop.Tests.Kernels;

namespace Daop.Tests.Gpu;

/// <summary>
/// The GPU device's KV pool (<see cref="GpuKvPool"/>) through <see cref="IDevice"/>: a step's RoPE and attention
/// (<see cref="IDevice.BeginStep"/>) give the CPU device's results for mixed prompt chunks and decodes, in one launch each
/// per layer for caches of one pool and one attention launch per pool otherwise; the pool's memory goes with its last slot;
/// bad steps are refused naming what is wrong.
/// </summary>
[Collection(GpuCollection.Name)]
public class GpuKvPoolTests(GpuFixture gpu)
{
    const int Layers = 2, Heads = 4, KvHeads = 2, D = 8, Cap = 16, Sequences = 3;

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void AStepMatchesTheCpuInOneLaunchPerPool(bool pooled)
    {
        using var dev = new GpuDevice(gpu.Accelerator);
        using var cpu = new CpuDevice();
        int kvDim = KvHeads * D, qDim = Heads * D;
        var gpuCaches = pooled ? dev.CreateKvCaches(Layers, Cap, kvDim, Sequences)
            : [.. Enumerable.Range(0, Sequences).Select(_ => dev.CreateKvCache(Layers, Cap, kvDim))];
        var cpuCaches = ((IDevice)cpu).CreateKvCaches(Layers, Cap, kvDim, Sequences);
        var rope = new RopeTable(new RopeSpec(10000, "default"), D, Cap, Cap);
        BatchSegment[][] steps =
        [
            [new(null!, 0, 4), new(null!, 0, 2), new(null!, 0, 5)],            // three prompts
            [new(null!, 2, 1), new(null!, 4, 3), new(null!, 5, 1)],            // a decode, a prompt's next chunk, a decode
            [new(null!, 7, 1), new(null!, 3, 1), new(null!, 6, 1)],            // decodes at different positions, slots out of order
        ];
        int[][] order = [[0, 1, 2], [1, 0, 2], [0, 1, 2]];
        int seed = 1;
        for (int s = 0; s < steps.Length; s++)
        {
            var g = steps[s].Select((x, i) => x with { Cache = gpuCaches[order[s][i]] }).ToArray();
            var c = steps[s].Select((x, i) => x with { Cache = cpuCaches[order[s][i]] }).ToArray();
            int t = g.Sum(x => x.Tokens);
            dev.BeginStep(g);
            cpu.BeginStep(c);
            for (int l = 0; l < Layers; l++)
            {
                var (q, k, v) = (NativeWeights.Floats(t * qDim, seed++, 2f), NativeWeights.Floats(t * kvDim, seed++), NativeWeights.Floats(t * kvDim, seed++));
                var (gq, gk, gv, go) = (Put(dev, q), Put(dev, k), Put(dev, v), dev.Allocate(t * qDim));
                var (cq, ck, cv, co) = (Put(cpu, q), Put(cpu, k), Put(cpu, v), cpu.Allocate(t * qDim));
                long before = dev.Launches;
                dev.Rope(rope, gq, Heads, gk, KvHeads, t, D);
                dev.Attention(l, gq, gk, gv, go, t, Heads, KvHeads, D, window: 6);
                Assert.Equal(1 + (pooled ? 1 : Sequences), dev.Launches - before);
                cpu.Rope(rope, cq, Heads, ck, KvHeads, t, D);
                cpu.Attention(l, cq, ck, cv, co, t, Heads, KvHeads, D, window: 6);
                var want = ((CpuBuffer)co).Data.AsSpan(0, t * qDim).ToArray();
                var got = new float[t * qDim];
                dev.CopyToHost(go, 0, got);
                for (int i = 0; i < got.Length; i++)
                    Assert.True(Math.Abs(want[i] - got[i]) <= 2e-5 * Math.Max(1, Math.Abs(want[i])), $"step {s} layer {l} o[{i}]: {want[i]} vs {got[i]}");
            }
        }
    }

    static DeviceBuffer Put(IDevice d, float[] data)
    {
        var b = d.Allocate(data.Length);
        if (b is CpuBuffer c) data.CopyTo(c.Data, 0);
        else ((GpuBuffer)b).View.SubView(0, data.Length).CopyFromCPU(((GpuDevice)d).Stream, data);
        return b;
    }

    [Fact]
    public void APoolIsFreedWithItsLastSlot()
    {
        using var dev = new GpuDevice(gpu.Accelerator);
        long empty = dev.AllocatedBytes;
        var caches = dev.CreateKvCaches(Layers, Cap, KvHeads * D, Sequences);
        Assert.Equal(empty + Layers * 2L * Sequences * Cap * KvHeads * D * sizeof(float), dev.AllocatedBytes);
        Assert.Equal([0, 1, 2], caches.Select(c => ((GpuKvCache)c).Slot));
        Assert.Single(caches.Select(c => ((GpuKvCache)c).Pool).Distinct());
        long all = dev.AllocatedBytes;
        ((GpuKvCache)caches[0]).Dispose();
        ((GpuKvCache)caches[2]).Dispose();
        ((GpuKvCache)caches[2]).Dispose();                                      // a second dispose gives nothing back twice
        Assert.Equal(all, dev.AllocatedBytes);
        ((GpuKvCache)caches[1]).Dispose();
        Assert.Equal(empty, dev.AllocatedBytes);
    }

    [Fact]
    public void BadStepsAreRefusedNamingWhatIsWrong()
    {
        using var dev = new GpuDevice(gpu.Accelerator);
        var cache = dev.CreateKvCache(Layers, Cap, KvHeads * D);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => dev.BeginStep([new(cache, 0, 2), new(cache, Cap - 1, 2)]));
        Assert.Contains("segment 1", e.Message);
        dev.BeginStep([new(cache, 0, 2)]);
        var x = dev.Allocate(3 * Heads * D);
        Assert.Contains("holds 2", Assert.Throws<InvalidOperationException>(() => dev.Attention(0, x, x, x, x, 3, Heads, KvHeads, D, null)).Message);
        Assert.Contains("floats per position", Assert.Throws<ArgumentException>(() => dev.Attention(0, x, x, x, x, 2, Heads, 1, D, null)).Message);
        var shortRope = new RopeTable(new RopeSpec(10000, "default"), D, 1, Cap);
        Assert.Contains("RoPE table", Assert.Throws<ArgumentOutOfRangeException>(() => dev.Rope(shortRope, x, Heads, x, KvHeads, 2, D)).Message);
    }
}
