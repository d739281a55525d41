using Daop.Kernels.Gpu;
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
        var checks = GpuOpsCheck.Run(gpu.Gpu, small: true);
        Assert.All(checks, c => Assert.True(c.Passed, $"{c.Name}: {c.Worst} at {c.WorstCase}"));
        Assert.All(checks, c => Assert.True(c.Cases > 0, c.Name));
        foreach (string family in new[] { "linear bf16 [default]", "experts bf16 256x256 generated [default]", "experts bf16 256x256 [generic experts]",
            "norm [default]", "attention", "rope", "embed", "generated expert Forward (dense kernels)" })
            Assert.Contains(checks, c => c.Name == family);
    }

    [Fact]
    public void EveryBlockFormatFamilyPassesOnTheCpuAccelerator()
    {
        var checks = GpuOpsCheck.RunBlockFormats(gpu.Gpu, small: true);
        Assert.All(checks, c => Assert.True(c.Passed && c.Cases > 0, $"{c.Name}: {c.Worst} at {c.WorstCase}"));
        foreach (var t in GpuOpsCheck.BlockTypes)
            foreach (string family in new[] { $"linear {t.Name()} [default]", $"experts {t.Name()} {GpuOpsCheck.Whole(t, 264)}x{GpuOpsCheck.Whole(t, 296)} [lanes 4]",
                $"dense FFN {t.Name()} {GpuOpsCheck.Whole(t, 264)}x{GpuOpsCheck.Whole(t, 296)} [default]" })
                Assert.Contains(checks, c => c.Name == family);
        Assert.Contains(checks, c => c.Name == "embed block formats");
        Assert.Contains(checks, c => c.Name == "experts bf16 256x256 generated [default]");
    }

    /// <summary>
    /// The engine check (<c>--part engine</c>): batched steps resident and under an exact policy, and an approximate
    /// mode against the CPU stand-in, each a line that passes on the CPU accelerator (GPT-OSS's biased experts too).
    /// </summary>
    [Theory]
    [InlineData("mixtral-tiny")]
    [InlineData("gptoss-tiny")]
    public void EngineChecksPassOnTheCpuAccelerator(string fixture)
    {
        var lines = new List<string>();
        var results = GpuEngineCheck.Run(TestPaths.Fixture(fixture), gpu.Gpu,
            [("static-cpu", () => new Daop.Engine.Placement.StaticPolicy())],
            [("daop-checked", () => new Daop.Engine.Placement.DaopPolicy(approximate: true, use: Daop.Engine.Placement.PredictionUse.Check))], 0.5,
            r => lines.Add(r.Name));
        Assert.Equal(["batched steps, resident", "batched steps, static-cpu at 0.5", "batched steps, static-cpu at 0.5, prefill streamed",
            "daop-checked at 0.5 against the CPU stand-in"], lines);
        Assert.All(results, r => Assert.True(r.Passed && r.Calls > 10, $"{r.Name}: {r.MaxRelativeError} over {r.Calls} calls"));
    }

    /// <summary>The quantized timings read the quantized bytes: a Q4_0 GEMV and expert read 9/32 of bf16's.</summary>
    [Fact]
    public void QuantTimingsCountTheQuantizedBytes()
    {
        var bf16 = GpuQuantBench.Gemv(gpu.Gpu, DType.BF16, 8, 256, iters: 1);
        var q4 = GpuQuantBench.Gemv(gpu.Gpu, DType.Q4_0, 8, 256, iters: 1);
        Assert.Equal(8 * 256 * 2, bf16.Bytes);
        Assert.Equal(8 * 256 / 32 * 18, q4.Bytes);
        var e = GpuQuantBench.Expert(gpu.Gpu, DType.Q4_0, 264, 256, iters: 1);
        Assert.Equal(new ExpertLayout(DType.Q4_0, DType.Q4_0, DType.Q4_0, 264, 256).ExpertBytes, e.Both.Bytes);
        Assert.Equal(e.Both.Bytes, e.GateUp.Bytes + e.Down.Bytes);
        Assert.True(e.Both.Microseconds > 0);
    }

    [Fact]
    public void EnginePathTimingRunsGenericAndGenerated()
    {
        var t = GpuExpertPathBench.Run(gpu.Gpu, DType.BF16, 256, 256, experts: 3, topK: 2, tokens: 1, iters: 2);
        Assert.True(t.GenericMicroseconds > 0 && t.GeneratedMicroseconds > 0, t.ToString());
        Assert.Equal(2, t.GeneratedLaunchesPerCall); // gate/up and down-combine
        Assert.True(t.MaxRelativeDifference < 1e-5, t.ToString());

        var none = GpuExpertPathBench.Run(gpu.Gpu, DType.BF16, 40, 24, experts: 3, topK: 2, tokens: 1, iters: 2);
        Assert.Equal(0, none.GeneratedLaunchesPerCall); // no generated kernel for 40 x 24
        Assert.Equal(0, none.MaxRelativeDifference);
    }
}
