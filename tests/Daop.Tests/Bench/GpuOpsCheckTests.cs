using Daop.Bench.Gpu;
using Daop.Engine.Device.Gpu;
using Daop.Kernels;

namespace Daop.Tests.Gpu;

/// <summary>
/// The device-side check (<c>daop bench gpu-ops</c>) on the CPU accelerator with its small shapes: every family runs
/// and passes, and the engine-path timing runs both kernel sets on the same inputs.
/// </summary>
[Collection(GpuCollection.Name)]
public class GpuOpsCheckTests(GpuFixture gpu)
{
    [Fact]
    public void EveryKernelFamilyPassesOnTheCpuAccelerator()
    {
        var checks = GpuOpsCheck.Run(gpu.Accelerator, small: true);
        Assert.All(checks, c => Assert.True(c.Passed, $"{c.Name}: {c.Worst} at {c.WorstCase}"));
        Assert.All(checks, c => Assert.True(c.Cases > 0, c.Name));
        foreach (string family in new[] { "linear bf16 [default]", "experts bf16 256x256 generated [default]", "experts bf16 256x256 [generic experts]",
            "norm [default]", "attention", "rope", "embed", "generated expert Forward (dense kernels)" })
            Assert.Contains(checks, c => c.Name == family);
    }

    [Fact]
    public void EnginePathTimingRunsGenericAndGenerated()
    {
        var t = GpuExpertPathBench.Run(gpu.Accelerator, DType.BF16, 256, 256, experts: 3, topK: 2, tokens: 1, iters: 2);
        Assert.True(t.GenericMicroseconds > 0 && t.GeneratedMicroseconds > 0, t.ToString());
        Assert.Equal(2, t.GeneratedLaunchesPerCall); // gate/up and down-combine
        Assert.True(t.MaxRelativeDifference < 1e-5, t.ToString());

        var none = GpuExpertPathBench.Run(gpu.Accelerator, DType.BF16, 40, 24, experts: 3, topK: 2, tokens: 1, iters: 2);
        Assert.Equal(0, none.GeneratedLaunchesPerCall); // no generated kernel for 40 x 24
        Assert.Equal(0, none.MaxRelativeDifference);
    }
}
