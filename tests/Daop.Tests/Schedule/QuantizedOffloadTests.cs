using Daop.Engine.Device.Gpu;
using Daop.Engine.Model;
using Daop.Engine.Placement;
using Daop.Engine.Schedule;
using Daop.Kernels;
using Daop.Tests.Gpu;
using Daop.Tests.Model;

namespace Daop.Tests.Schedule;

/// <summary>
/// q4_0 experts offloaded on the GPU path (CPU accelerator): resident and under an expert cache they compute what their
/// weights widened to f32 compute on the CPU, and every transfer and slot is counted in q4_0 bytes. Needs the GPU
/// block-format kernels (skipped until they exist; <see cref="BlockKernelFactAttribute"/>); for the host-side experts of
/// the offloaded case also the CPU ones.
/// </summary>
[Collection(GpuCollection.Name)]
[Trait("Category", "BlockKernels")]
public class QuantizedOffloadTests(GpuFixture gpu)
{
    const double Tol = 2e-2; // as QuantizedGenerationTests: room for kernels that quantize activations

    static float[] Logits(MoeModel model, Action? afterStep = null)
    {
        int v = model.Config.VocabSize, n = LogitBits.Prefill + LogitBits.Decode;
        var tokens = Enumerable.Range(0, n).Select(i => (i * 131 + 7) % v).ToArray();
        var logits = new float[n * v];
        var cache = model.NewCache();
        model.Forward(tokens.AsSpan(0, LogitBits.Prefill), 0, cache, logits.AsSpan(0, LogitBits.Prefill * v), allLogits: true);
        afterStep?.Invoke();
        for (int i = LogitBits.Prefill; i < n; i++)
        {
            model.Forward(tokens.AsSpan(i, 1), i, cache, logits.AsSpan(i * v, v));
            afterStep?.Invoke();
        }
        return logits;
    }

    float[] Reference()
    {
        using var reference = QuantizedGenerationTests.Dequantized(TestPaths.DefaultModel, DType.Q4_0);
        return Logits(reference);
    }

    [BlockKernelFact(DType.Q4_0, Backends.Gpu)]
    public void ResidentQ4ExpertsComputeTheirWeights()
    {
        using var m = MoeModel.Load(QuantizedModels.EmbeddedQ4, LogitBits.Options(new ModelOptions
        {
            Device = _ => new GpuDevice(gpu.Accelerator),
            Experts = (model, d) => new GpuExpertScheduler(model, d),
        }));
        LogitsAssert.Close(Reference(), Logits(m), "resident q4_0 experts", Tol);
    }

    [BlockKernelFact(DType.Q4_0, Backends.Gpu | Backends.Cpu)]
    public void OffloadedQ4ExpertsAreCountedInTheirBytes()
    {
        using var m = MoeModel.Load(QuantizedModels.EmbeddedQ4, LogitBits.Options(new ModelOptions
        {
            Device = _ => new GpuDevice(gpu.Accelerator),
            Experts = (model, d) => OffloadedExpertScheduler.FromRatio(model, d, new LruPolicy(prefetch: false), 0.25),
        }));
        var s = (OffloadedExpertScheduler)m.Experts;
        var got = Logits(m, s.CheckInvariants);
        LogitsAssert.Close(Reference(), got, "offloaded q4_0 experts", Tol);
        var offload = (GpuExpertOffload)s.Offload;
        Assert.Equal(3L * 256 * 144, offload.Layout.ExpertBytes);
        Assert.Equal(12, offload.Pool.Slots);
        Assert.Equal((offload.Pool.Slots + OffloadedExpertScheduler.StagingSlots) * offload.Layout.ExpertBytes, s.PoolBytes); // + staging
        Assert.True(s.Stats.Transfers > 0);
        Assert.Equal(s.Stats.Transfers * offload.Layout.ExpertBytes, s.Stats.TransferBytes);
    }
}
