using Daop.Kernels.Gpu;
using Daop.Engine.Device.Gpu;
using Daop.Engine.Model;
using Daop.Kernels;
using Daop.Tests.Kernels;
using Daop.Bench.Gpu;
using ILGPU.Runtime;

namespace Daop.Tests.Gpu;

[Collection(GpuCollection.Name)]
public class GpuDeviceTests(GpuFixture gpu)
{
    [Fact]
    public void CreateFallsBackToTheCpuAcceleratorWithoutCuda()
    {
        using var dev = GpuDevice.Create(preferCuda: true);
        Assert.True(dev.Name == "ilgpu-cpu" || dev.Name.StartsWith("cuda:", StringComparison.Ordinal), dev.Name);
        var a = dev.Allocate(5);
        var b = dev.Allocate(5);
        dev.Add(a, b, 5);
        var host = new float[5];
        dev.CopyToHost(a, 0, host);
        Assert.All(host, v => Assert.Equal(0f, v));
        Assert.Equal(1, dev.Launches);
    }

    [Fact]
    public void WeightsUploadOnceAndBytesAreTracked()
    {
        using var w = new NativeWeights(DType.BF16, 7, 33, 1);
        using var dev = new GpuDevice(gpu.Accelerator);
        var x = dev.Allocate(33);
        var y = dev.Allocate(7);
        long buffers = dev.AllocatedBytes;
        Assert.Equal((36 + 8) * 4, buffers); // 33 and 7 floats, rounded up to whole 16-byte groups
        var lin = new LinearWeights(w.W, [1, 2, 3, 4, 5, 6, 7]);
        dev.Linear(lin, x, y, 1);
        long once = dev.AllocatedBytes;
        Assert.Equal(buffers + 7 * 5 * 16 + 8 * 4, once); // 7 rows of 5 chunks (66 bytes → 80), bias of 7 → 8 floats
        dev.Linear(lin, x, y, 1);
        Assert.Equal(once, dev.AllocatedBytes);
        var host = new float[7];
        dev.CopyToHost(y, 0, host);
        Assert.Equal(new float[] { 1, 2, 3, 4, 5, 6, 7 }, host);
        var cache = (GpuKvCache)dev.CreateKvCache(2, 10, 8);
        Assert.Equal(once + 4 * 10 * 8 * 4, dev.AllocatedBytes);
        cache.Dispose();
        Assert.Equal(once, dev.AllocatedBytes);
    }

    [Fact]
    public void CheckModelAgreesWithCpu()
    {
        var r = GpuBench.CheckModel(TestPaths.Fixture("mixtral-tiny"), gpu.Gpu, prefix: 5, decode: 2);
        Assert.True(r.MaxRelativeError < 1e-4, r.ToString());
        // Per layer 5 for attention (add+norm, q/k/v, rope of q and k, attention, o) and 5 for the MoE block (add+norm,
        // router, routing, gate/up, down+combine); then embed, the last residual add, the final norm and the lm head.
        Assert.Equal(3 * 10 + 4, r.LaunchesPerToken);
        Assert.True(r.DeviceBytes > 0);
    }

    [Fact]
    public void BenchRunsOnTinyShapes()
    {
        Assert.True(GpuBench.GemvGBps(gpu.Gpu, DType.BF16, 16, 40, 2) > 0);
        Assert.True(GpuBench.ExpertFfnMicroseconds(gpu.Gpu, DType.F16, 16, 24, 2) > 0);
    }
}

/// <summary>
/// Runs alone: its thread forcing collections stalls every other thread of the test run while it goes.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class SerialGcCollection
{
    public const string Name = "serial-gc";
}

[Collection(SerialGcCollection.Name)]
public class GpuCopyPinningTests
{
    /// <summary>
    /// Device→host copies pin their destination: ILGPU's ref-based copies take a raw pointer, and a garbage collection
    /// that compacts the heap between taking it and copying leaves the data in the array's old place (seen as rare
    /// wrong router choices and logits under a busy test run). A thread forcing compacting collections makes that window
    /// likely; fresh arrays in generation 0 are the ones a collection moves.
    /// </summary>
    [Fact]
    public void CopyToHostSurvivesCompactingCollections()
    {
        using var dev = GpuDevice.Create(preferCuda: false);
        const int n = 4096;
        var data = Enumerable.Range(0, n).Select(i => i + 0.5f).ToArray();
        var b = dev.Allocate(n);
        ((GpuBuffer)b).View.SubView(0, n).CopyFromCPU(dev.Stream, data);
        using var stop = new CancellationTokenSource();
        var collector = new Thread(() =>
        {
            while (!stop.IsCancellationRequested) GC.Collect(0, GCCollectionMode.Forced, blocking: true, compacting: true);
        }) { IsBackground = true };
        collector.Start();
        int wrong = 0, copies = 0;
        try
        {
            for (; copies < 1000 && wrong == 0; copies++)
            {
                var spacer = new byte[copies % 7 * 64];
                var host = new float[n];
                dev.CopyToHost(b, 0, host);
                if (!host.AsSpan().SequenceEqual(data)) wrong++;
                GC.KeepAlive(spacer);
            }
        }
        finally
        {
            stop.Cancel();
            collector.Join();
        }
        Assert.True(wrong == 0, $"copy {copies} of {n} floats read back wrong under compacting collections");
    }
}
