using Daop.Engine.Model;
using Daop.Engine.Schedule;
using Daop.Kernels;

namespace Daop.Tests.Gpu;

/// <summary>
/// The MXFP4 GPT-OSS fixture on the GPU device (its goldens are not the others' regime: see TestPaths): the device's
/// MXFP4 Linear kernels compute with the exactly decoded weights in fp32, so they match the CPU path over the same
/// experts widened to fp32 at load.
/// </summary>
[Collection(GpuCollection.Name)]
public class GpuGptOssModelTests(GpuFixture gpu)
{
    /// <summary>
    /// gptoss-tiny's prompt in one chunk of 40 tokens (80 routed positions over 8 experts: batched tiles pay, so the biased
    /// experts take the batched tile kernels), then decode steps routed on the device, against the CPU path.
    /// </summary>
    [Fact]
    public void BatchedPrefillAndDeviceRoutedDecodeMatchTheCpu()
    {
        const int prefix = 40;
        string dir = TestPaths.Fixture("gptoss-tiny");
        using var cpu = MoeModel.Load(dir, new ModelOptions { ContextLength = 64, MaxChunkTokens = prefix });
        using var model = gpu.LoadModel(dir, chunk: prefix);
        var sched = (GpuExpertScheduler)model.Experts;
        int v = model.Config.VocabSize;
        var tokens = Enumerable.Range(0, prefix + 2).Select(i => (i * 53 + 7) % v).ToArray();
        var (got, want) = (new float[prefix * v], new float[prefix * v]);
        var (gpuCache, cpuCache) = (model.NewCache(), cpu.NewCache());
        model.Forward(tokens.AsSpan(0, prefix), 0, gpuCache, got, allLogits: true);
        cpu.Forward(tokens.AsSpan(0, prefix), 0, cpuCache, want, allLogits: true);
        Assert.Equal(model.Config.MoeLayerCount, sched.BatchedRuns);
        LogitsAssert.Close(want, got, "gptoss-tiny batched prefill vs cpu");
        var (step, cpuStep) = (new float[v], new float[v]);
        for (int pos = prefix; pos < prefix + 2; pos++)
        {
            model.Forward(tokens.AsSpan(pos, 1), pos, gpuCache, step);
            cpu.Forward(tokens.AsSpan(pos, 1), pos, cpuCache, cpuStep);
            LogitsAssert.Close(cpuStep, step, $"gptoss-tiny decode {pos} vs cpu");
        }
        Assert.Equal(model.Config.MoeLayerCount, sched.BatchedRuns); // decode: routed on the device, row tiles
    }

    [Fact]
    public void Mxfp4ExpertsOnTheGpuMatchTheirExactCpuWidening()
    {
        const int prefix = 12;
        string dir = TestPaths.Fixture("gptoss-tiny-mxfp4");
        using var cpu = MoeModel.Load(dir, new ModelOptions { ContextLength = 64, MaxChunkTokens = 8, ExpertDType = DType.F32 });
        using var model = gpu.LoadModel(dir);
        Assert.Equal(DType.MXFP4, model.Weights.Layers[0].Experts[0].Gate.Type);
        int v = model.Config.VocabSize;
        var tokens = Enumerable.Range(0, prefix + 2).Select(i => (i * 37 + 5) % v).ToArray();
        var got = new float[prefix * v];
        var want = new float[prefix * v];
        var gpuCache = model.NewCache();
        var cpuCache = cpu.NewCache();
        model.Forward(tokens.AsSpan(0, prefix), 0, gpuCache, got, allLogits: true);
        cpu.Forward(tokens.AsSpan(0, prefix), 0, cpuCache, want, allLogits: true);
        LogitsAssert.Close(want, got, "gptoss-tiny-mxfp4 prefill vs exact cpu");
        var step = new float[v];
        var cpuStep = new float[v];
        for (int pos = prefix; pos < prefix + 2; pos++)
        {
            model.Forward(tokens.AsSpan(pos, 1), pos, gpuCache, step);
            cpu.Forward(tokens.AsSpan(pos, 1), pos, cpuCache, cpuStep);
            LogitsAssert.Close(cpuStep, step, $"gptoss-tiny-mxfp4 decode {pos} vs exact cpu");
        }
    }
}
