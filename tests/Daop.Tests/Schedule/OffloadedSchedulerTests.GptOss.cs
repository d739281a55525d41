using Daop.Engine.Device.Gpu;
using Daop.Engine.Model;
using Daop.Engine.Schedule;
using Daop.Kernels;
using Daop.Kernels.Gpu;

namespace Daop.Tests.Schedule;

/// <summary>
/// GPT-OSS's biased clamped-SwiGLU experts offloaded (the bf16 fixture also runs in <see cref="LogitsMatchCpuPath"/>'s
/// cases): the MXFP4 experts as the hub ships them under every exact policy, the biases in the slots and their bytes
/// in every budget.
/// </summary>
public partial class OffloadedSchedulerTests
{
    /// <summary>Room for the CPU experts' MXFP4 kernels, which quantize their activations to int8 (as QuantizedOffloadTests).</summary>
    const double Mxfp4CpuExpertsTol = 2e-2;

    // gptoss-tiny-mxfp4's prompt through the CPU path, its experts widened exactly to f32 (what the GPU's MXFP4 kernels
    // compute, GpuGptOssModelTests) or in MXFP4 (what the CPU runner's kernels compute), in the offloaded runs' chunks.
    static (int[] Tokens, float[] Prefill, float[][] Steps) Mxfp4Reference(bool exact) => s_reference.GetOrAdd($"gptoss-tiny-mxfp4 exact={exact}", _ =>
    {
        using var cpu = MoeModel.Load(TestPaths.Fixture("gptoss-tiny-mxfp4"), new ModelOptions
        {
            ContextLength = Context,
            MaxChunkTokens = Chunk,
            ExpertDType = exact ? DType.F32 : null,
        });
        int v = cpu.Config.VocabSize;
        return Run(cpu, Enumerable.Range(0, Prefix + Decode).Select(i => (i * 37 + 5) % v).ToArray());
    });

    /// <summary>
    /// gptoss-tiny-mxfp4 offloaded: MXFP4 slots (the file's bytes, plus the fp32 biases), transfers and staging give the
    /// exactly widened CPU path's logits wherever every expert runs on the GPU (LRU loads each miss), the CPU runner the MXFP4
    /// CPU path's where every expert runs there (static, no slots, no streaming), both within 1e-4; where both run experts
    /// (the CPU's MXFP4 kernels quantize activations to int8), within <see cref="Mxfp4CpuExpertsTol"/> of the exact one.
    /// </summary>
    [Theory]
    [InlineData(0.25, "lru", 0)]
    [InlineData(0.5, "prefetch", 0)]
    [InlineData(1.0, "static", 0)]
    [InlineData(0.0, "static", 0)]
    [InlineData(0.5, "static", 2)]
    [InlineData(0.0, "static", 2)]
    [InlineData(0.25, "daop", 2)]
    [InlineData(0.5, "daop-drift", 0)]
    public void Mxfp4ExpertsOffloadedMatchTheCpuPath(double ratio, string policy, int streamMinTokens)
    {
        string what = $"gptoss-tiny-mxfp4 {policy} @ {ratio}, streaming from {streamMinTokens}";
        using var model = LoadOffloaded("gptoss-tiny-mxfp4", (m, d) => OffloadedExpertScheduler.FromRatio(m, d, Policy(policy), ratio,
            options: new OffloadOptions { StreamPrefillMinTokens = streamMinTokens }));
        var s = (OffloadedExpertScheduler)model.Experts;
        var layout = Gpu(s).Layout;
        Assert.Equal(DType.MXFP4, model.Weights.Layers[0].Experts[0].Gate.Type);
        Assert.Equal(new ExpertLayout(DType.MXFP4, DType.MXFP4, DType.MXFP4, 64, 64, Biased: true), layout);
        var got = Run(model, Mxfp4Reference(exact: true).Tokens, s.CheckInvariants);
        var st = s.Stats;
        var want = Mxfp4Reference(exact: st.GpuExpertRuns > 0);
        double tol = st.CpuExpertRuns == 0 || st.GpuExpertRuns == 0 ? 1e-4 : Mxfp4CpuExpertsTol;
        LogitsAssert.Close(want.Prefill, got.Prefill, $"{what} prefill", tol);
        for (int i = 0; i < Decode; i++) LogitsAssert.Close(want.Steps[i], got.Steps[i], $"{what} decode {i}", tol);
        Assert.Equal(st.Activations, st.GpuExpertRuns + st.CpuExpertRuns);
        Assert.Equal(st.Transfers * layout.ExpertBytes, st.TransferBytes);
        if (policy is "lru" or "prefetch") Assert.True(st.MissTransfers > 0 && st.CpuExpertRuns == 0, $"{what}: {st}");
        if (ratio == 0) Assert.Equal(streamMinTokens > 0, st.StreamTransfers > 0);
        if (policy is "static" && ratio is > 0 and < 1) Assert.True(st.GpuExpertRuns > 0 && st.CpuExpertRuns > 0, $"{what}: {st}");
        double worst = Enumerable.Range(0, Decode).Select(i => (want.Steps[i], got.Steps[i])).Append((want.Prefill, got.Prefill))
            .Max(p => p.Item1.Zip(p.Item2, (a, b) => (double)Math.Abs(a - b)).Max() / Math.Max(1, p.Item1.Max(Math.Abs)));
        output.WriteLine($"{what}: tolerance {tol}, worst {worst:E2}; {st}");
    }

    /// <summary>
    /// A biased expert's slot is its matrices plus its fp32 biases (gate [I], up [I], down [H], padded to a whole chunk):
    /// what one transfer moves and a slot costs; after transfers, direct and from staged images, each slot's bias chunks
    /// hold its expert's biases.
    /// </summary>
    [Theory]
    [InlineData("gptoss-tiny", HostCopyMode.Direct)]
    [InlineData("gptoss-tiny-mxfp4", HostCopyMode.Staged)]
    public void SlotsCarryTheExpertsBiases(string fixture, HostCopyMode copyMode)
    {
        using var model = LoadOffloaded(fixture, (m, d) => OffloadedExpertScheduler.FromRatio(m, d, Policy("lru"), 0.25,
            options: new OffloadOptions { CopyMode = copyMode }));
        var s = (OffloadedExpertScheduler)model.Experts;
        var pool = Gpu(s).Pool;
        var layout = Gpu(s).Layout;
        var c = model.Config;
        int inter = c.ExpertIntermediate, hidden = c.HiddenSize;
        Assert.True(layout.Biased);
        Assert.Equal((2L * inter + hidden + 3) / 4, layout.BiasChunks);
        Assert.Equal((layout with { Biased = false }).ExpertBytes + 16 * layout.BiasChunks, layout.ExpertBytes);
        Assert.Equal(pool.Slots * layout.ExpertBytes, pool.AllocatedBytes);
        Run(model, Enumerable.Range(0, Prefix + Decode).Select(i => (i * 37 + 5) % c.VocabSize).ToArray(), s.CheckInvariants);
        s.Synchronize();
        Assert.True(s.Stats.Transfers > 0);
        var dev = (GpuDevice)model.Device;
        int checkedSlots = 0;
        for (int l = 0; l < pool.Layers; l++)
            for (int slot = 0; slot < pool.Capacity(l); slot++)
            {
                int e = pool.ExpertAt(l, slot);
                if (e < 0) continue;
                var b = model.Weights.Layers[l].Experts[e].Bias!.Value;
                var onDevice = new float[layout.BiasStride];
                pool.SlotViews(l, slot).Bias.Cast<float>().CopyToCPU(dev.Stream, onDevice);
                Assert.Equal(b.Gate, onDevice[..inter]);
                Assert.Equal(b.Up, onDevice[inter..(2 * inter)]);
                Assert.Equal(b.Down, onDevice[(2 * inter)..(2 * inter + hidden)]);
                Assert.All(onDevice[(2 * inter + hidden)..], x => Assert.Equal(0f, x));
                checkedSlots++;
            }
        Assert.Equal(pool.SlotsInUse, checkedSlots);
        if (copyMode == HostCopyMode.Staged) Assert.Equal(Gpu(s).Store.ImagesMade * layout.ExpertBytes, Gpu(s).Store.PinnedBytes);
    }

    /// <summary>
    /// A whole-device budget for GPT-OSS: the dense part (the biases not: they live in the slots) plus a byte less than 6 biased experts gives 5 slots (6 if the biases went uncounted), the device never
    /// holds more than the budget, and the dense part is what <see cref="OffloadBudget.DenseBytes"/> predicted.
    /// </summary>
    [Fact]
    public void GptOssVramBudgetCountsTheBiases()
    {
        var want = Reference("gptoss-tiny");
        long vram = 0, dense = 0, expert = 0;
        using var model = LoadOffloaded("gptoss-tiny", (m, d) =>
        {
            dense = OffloadBudget.DenseBytes(m, Chunk);
            expert = ExpertLayout.Of(m.Weights).ExpertBytes;
            vram = dense + 6 * expert - 1;
            Assert.True(6 * (ExpertLayout.Of(m.Weights) with { Biased = false }).ExpertBytes <= vram - dense);
            return OffloadedExpertScheduler.FromVramBudget(m, d, Policy("lru"), vram, Chunk);
        });
        var s = (OffloadedExpertScheduler)model.Experts;
        Assert.Equal(5, Gpu(s).Pool.Slots);
        Assert.Equal(5 * expert, s.PoolBytes);
        var got = Run(model, want.Tokens, () =>
        {
            s.CheckInvariants();
            Assert.True(s.TotalBytes <= vram, $"{s.TotalBytes} bytes on the device, budget {vram}");
        });
        LogitsAssert.Close(want.Prefill, got.Prefill, "gptoss budget prefill");
        for (int i = 0; i < Decode; i++) LogitsAssert.Close(want.Steps[i], got.Steps[i], $"gptoss budget decode {i}");
        Assert.Equal(dense, s.DenseBytes);
        Assert.Equal(s.DenseBytes + s.PoolBytes, s.TotalBytes);
    }
}
