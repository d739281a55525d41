using Daop.Kernels;
using Daop.Kernels.Cpu;
using Daop.Bench.Kernels;

namespace Daop.Tests.Kernels;

/// <summary>The benchmark entry points run and return a positive rate (no timing assertions).</summary>
public class BenchSmokeTests
{
    [Fact]
    public void MemoryBandwidthReturnsARate()
    {
        double gbps = MemoryBandwidth.MeasureReadGBps(bytes: 1L << 22, threads: 0, repeats: 1);
        Assert.True(gbps > 0 && double.IsFinite(gbps), $"{gbps}");
        Assert.Throws<ArgumentOutOfRangeException>(() => MemoryBandwidth.MeasureReadGBps(bytes: 1000));
    }

    [Theory]
    [InlineData(DType.BF16)]
    [InlineData(DType.F16)]
    [InlineData(DType.F32)]
    public void KernelBenchReturnsRates(DType type)
    {
        double gemv = KernelBench.GemvGBps(type, 64, 96, 3);
        double ffn = KernelBench.ExpertFfnTokensPerSecond(type, 64, 40, 3, 3);
        Assert.True(gemv > 0 && double.IsFinite(gemv), $"{gemv}");
        Assert.True(ffn > 0 && double.IsFinite(ffn), $"{ffn}");
    }
}
