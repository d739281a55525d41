using Daop.Kernels.Generated;
using Daop.Kernels.Gpu;

namespace Daop.Tests.Gpu;

/// <summary>Kernel sets are fixed by their options: defaults come from the accelerator, equal options share a set.</summary>
[Collection(GpuCollection.Name)]
public class GpuKernelOptionsTests(GpuFixture gpu)
{
    [Fact]
    public void DefaultsComeFromTheAccelerator()
    {
        var o = GpuKernels.For(gpu.Accelerator).Options;
        // The CPU accelerator (warps of 4, one warp per group): one lane per row, no tensor cores.
        Assert.Equal(1, o.Lanes);
        Assert.Equal(1, o.AttentionLanes);
        Assert.Equal(AttentionKernel.MaxTeams, o.AttentionTeams);
        Assert.False(o.TensorCores);
        Assert.Equal(4, o.GemvUnroll);
        Assert.Equal(16, o.LinearRowTokens);
        Assert.Equal(GpuKernels.For(gpu.Accelerator).GroupSize, o.GemvGroupSize);
        Assert.Same(GeneratedIlgpuKernels.All, o.GeneratedExperts);
    }

    [Fact]
    public void EqualOptionsShareOneKernelSet()
    {
        var a = GpuKernels.For(gpu.Accelerator, new GpuKernelOptions { GemvUnroll = 8 });
        Assert.Same(a, GpuKernels.For(gpu.Accelerator, new GpuKernelOptions { GemvUnroll = 8 }));
        Assert.Same(a, GpuKernels.For(gpu.Accelerator, a.Options));
        Assert.Same(GpuKernels.For(gpu.Accelerator), GpuKernels.For(gpu.Accelerator, GpuKernelOptions.Default));
        Assert.NotSame(a, GpuKernels.For(gpu.Accelerator));
        Assert.Equal(8, a.Options.GemvUnroll);
        Assert.Equal(GpuKernels.For(gpu.Accelerator).Options with { GemvUnroll = 8 }, a.Options);
    }

    [Fact]
    public void LaunchesAreCountedPerKernelSet()
    {
        var a = GpuKernels.For(gpu.Accelerator, new GpuKernelOptions { Lanes = 2 });
        var b = GpuKernels.For(gpu.Accelerator, new GpuKernelOptions { Lanes = 4 });
        using var x = gpu.Upload(new float[] { 1, 2, 3, 4 });
        long la = a.Launches, lb = b.Launches;
        a.Add(gpu.Stream, x.View, x.View, 4);
        a.Clamp(gpu.Stream, x.View, 4, 1f);
        b.Add(gpu.Stream, x.View, x.View, 4);
        gpu.Stream.Synchronize();
        Assert.Equal(2, a.Launches - la);
        Assert.Equal(1, b.Launches - lb);
    }

    [Theory]
    [InlineData(3, 0, 0, 0)]  // lanes not a power of two
    [InlineData(8, 0, 0, 0)]  // lanes wider than the warp
    [InlineData(0, 2, 0, 0)]  // attention lanes neither 1 nor the warp
    [InlineData(0, 0, 9, 0)]  // attention teams > MaxTeams
    [InlineData(0, 0, 0, 3)]  // GEMV unroll not 2, 4 or 8
    public void OutOfRangeOptionsAreRefused(int lanes, int attentionLanes, int attentionTeams, int unroll)
    {
        var o = new GpuKernelOptions { Lanes = lanes, AttentionLanes = attentionLanes, AttentionTeams = attentionTeams, GemvUnroll = unroll };
        Assert.Throws<ArgumentOutOfRangeException>(() => GpuKernels.For(gpu.Accelerator, o));
    }

    [Theory]
    [InlineData(3)]
    [InlineData(65)]
    public void LinearRowTokensOutOfRangeIsRefused(int rowTokens) =>
        Assert.Contains("LinearRowTokens", Assert.Throws<ArgumentOutOfRangeException>(
            () => GpuKernels.For(gpu.Accelerator, new GpuKernelOptions { LinearRowTokens = rowTokens })).Message);

    [Fact]
    public void EmulatedTensorCoresNeed32WideWarps() =>
        Assert.Throws<NotSupportedException>(() => GpuKernels.For(gpu.Accelerator, new GpuKernelOptions { TensorCores = true }));
}
