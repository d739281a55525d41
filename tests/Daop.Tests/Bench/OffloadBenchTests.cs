using Daop.Kernels.Gpu;
using Daop.Engine.Device.Gpu;
using Daop.Engine.Placement;
using Daop.Kernels;
using Daop.Bench.Gpu;

namespace Daop.Tests.Gpu;

/// <summary>The offload benchmarks run (tiny sizes, CPU accelerator); the numbers only mean something on a GPU.</summary>
[Collection(GpuCollection.Name)]
public class OffloadBenchTests(GpuFixture gpu)
{
    /// <summary>Block formats too: <c>bench policies --expert-dtype q4_0</c> measured its copy rate with them and failed.</summary>
    [Theory]
    [InlineData(HostCopyMode.Direct, DType.BF16)]
    [InlineData(HostCopyMode.Staged, DType.BF16)]
    [InlineData(HostCopyMode.Staged, DType.Q4_0)]
    [InlineData(HostCopyMode.Direct, DType.Q8_0)]
    public void TransfersRun(HostCopyMode mode, DType type)
    {
        var r = OffloadBench.Transfers(gpu.Gpu, type, 64, 96, mode, 3);
        Assert.False(r.IsAsync);
        Assert.True(r.GBps > 0);
    }

    [Fact]
    public void OverlapRuns()
    {
        var r = OffloadBench.Overlap(gpu.Gpu, DType.BF16, 64, 96, 2, 2);
        Assert.True(r.CopyMs >= 0 && r.ComputeMs > 0 && r.BothMs > 0);
    }

    [Fact]
    public void HostContentionMeasuresBothSidesAloneAndTogether()
    {
        var r = OffloadBench.HostContention(gpu.Gpu, DType.BF16, 64, 96, experts: 2, seconds: 0.02);
        foreach (double v in new[] { r.CpuAloneGBps, r.CopyAloneGBps, r.CpuBothGBps, r.CopyBothGBps })
            Assert.True(double.IsFinite(v) && v > 0, $"rate {v}");
        Assert.Equal((r.CpuBothGBps + r.CopyBothGBps) / r.CpuAloneGBps, r.Gain, 12);
    }

    [Fact]
    public void CpuExpertRateCountsEveryExpertsBytes()
    {
        using var m = Engine.Model.MoeModel.Load(TestPaths.Fixture("mixtral-tiny"), new Engine.Model.ModelOptions { ContextLength = 8 });
        var distinct = OffloadBench.DistinctExperts(m.Weights, 5);
        Assert.Equal(5, distinct.Count);
        Assert.True(OffloadBench.CpuExpertGBps(distinct, seconds: 0.03) > 0);
    }

    [Fact]
    public void CheckModelMatchesCpu()
    {
        var r = OffloadBench.CheckModel(TestPaths.Fixture("mixtral-tiny"), gpu.Gpu, () => new LruPolicy(true), 0.25, prefix: 6, decode: 3);
        Assert.True(r.MaxRelativeError <= 1e-4, $"error {r.MaxRelativeError}");
        Assert.Equal(3, r.Decode.Tokens);
        Assert.True(r.PoolBytes > 0 && r.DenseBytes > 0);
    }
}
