using Daop.Engine.Api;
using Daop.Engine.Device.Gpu;
using Daop.Engine.Model;
using Daop.Engine.Placement;
using Daop.Engine.Schedule;
using Daop.Kernels;
using Daop.Kernels.Gpu;
using Daop.Tests.Model;

namespace Daop.Tests.Schedule;

/// <summary>
/// Offloading counts quantized experts in their stored bytes: one expert slot is its q4_0 rows padded to 16 bytes, a
/// budget never holds more slots than its bytes pay for, and the same budget holds ~16/4.5 as many q4_0 experts as bf16.
/// Pure arithmetic over loaded models: no kernel runs.
/// </summary>
public class QuantizedBudgetTests
{
    [Theory]
    [InlineData("tiny-mixtral-code", DType.Q4_0)]
    [InlineData("mixtral-odd", DType.Q4_0)]      // hidden 80, inter 136: partial blocks and padded rows
    [InlineData("qwen3moe-tiny", DType.Q8_0)]
    [InlineData("olmoe-tiny", DType.MXFP4)]
    public void SlotsTimesExpertBytesStayWithinTheBudget(string fixture, DType type)
    {
        string dir = fixture == "tiny-mixtral-code" ? TestPaths.DefaultModel : TestPaths.Fixture(fixture);
        using var m = MoeModel.Load(dir, new ModelOptions { ContextLength = 64, ExpertDType = type });
        var c = m.Config;
        var layout = ExpertLayout.Of(m.Weights);
        int h = c.HiddenSize, inter = c.ExpertIntermediate;
        long rowsGateUp = (type.RowBytes(h) + 15) / 16 * 16, rowsDown = (type.RowBytes(inter) + 15) / 16 * 16;
        Assert.Equal(2 * inter * rowsGateUp + h * rowsDown, layout.ExpertBytes);
        var e = m.Weights.Layers.First(l => l.Experts.Length > 0).Experts[0];
        Assert.Equal(16 * (GpuMatrix.ChunksFor(e.Gate) + GpuMatrix.ChunksFor(e.Up) + GpuMatrix.ChunksFor(e.Down)), layout.ExpertBytes);
        Assert.True(layout.ExpertBytes >= e.ByteLength && layout.ExpertBytes < e.ByteLength + 16L * (2 * inter + h));

        long dense = OffloadBudget.DenseBytes(m, 16);
        int total = c.MoeLayerCount * c.NumExperts;
        foreach (double experts in new[] { 0, 0.5, 1, 3.7, 10.2, total - 0.5, total + 3.0 })
        {
            long budget = dense + (long)(experts * layout.ExpertBytes);
            int[] slots = OffloadBudget.SlotsFromVram(m, budget, 16);
            long used = slots.Sum() * layout.ExpertBytes;
            Assert.True(used <= budget - dense, $"{slots.Sum()} slots x {layout.ExpertBytes} bytes > {budget - dense}");
            Assert.True(slots.Sum() == total || used + layout.ExpertBytes > budget - dense, $"{experts}: one more slot would fit");
            for (int l = 0; l < c.NumLayers; l++) Assert.InRange(slots[l], 0, c.IsMoe(l) ? c.NumExperts : 0);
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => OffloadBudget.SlotsFromVram(m, dense - 1, 16));
    }

    [Fact]
    public void AVramPlanHoldsAboutSixteenOverFourAndAHalfAsManyQ4Experts()
    {
        using var bf16 = DaopModel.Load(TestPaths.DefaultModel, new DaopOptions { ContextLength = 256 });
        using var q4 = DaopModel.Load(TestPaths.DefaultModel, new DaopOptions { ContextLength = 256, ExpertDType = DType.Q4_0 });
        Assert.Equal(3L * 256 * 256 * 2, bf16.Info.ExpertBytes);
        Assert.Equal(3L * 256 * (256 / 32 * 18), q4.Info.ExpertBytes);
        Assert.Equal(16 / 4.5, (double)bf16.Info.ExpertBytes / q4.Info.ExpertBytes, 6);
        Assert.Equal(bf16.Info.DenseBytes, q4.Info.DenseBytes);
        Assert.Equal(("bf16", "q4_0", "bf16", "bf16"), (bf16.Info.ExpertWeightType, q4.Info.ExpertWeightType, q4.Info.DenseWeightType, q4.Info.KeptWeightType));

        long dense = OffloadBudget.DenseBytes(q4.Engine, 256);
        Assert.Equal(OffloadBudget.DenseBytes(bf16.Engine, 256), dense);
        long budget = dense + 12 * bf16.PlanVram(1L << 34).SlotBytes;
        var (a, b) = (bf16.PlanVram(budget), q4.PlanVram(budget));
        Assert.Equal(12, a.TotalSlots);
        Assert.Equal(12, b.Bf16TotalSlots);
        Assert.Equal(a.SlotBytes, b.Bf16SlotBytes);
        Assert.Equal(a.SlotBytes, a.Bf16SlotBytes);
        // floor(12 · 16 / 4.5) = 42 q4_0 experts fit; 16 or more, so two of them are staging slots for prefill streaming
        Assert.Equal((0, 2), (a.StagingSlots, b.StagingSlots));
        Assert.Equal(40, b.TotalSlots);
        Assert.InRange((double)(b.TotalSlots + b.StagingSlots) / a.TotalSlots, 16 / 4.5 - 1.0 / 12, 16 / 4.5);
        Assert.True(b.UsedBytes <= budget);
        Assert.Equal(SlotBudget.FromBytes(budget - dense - 2 * b.SlotBytes, b.SlotBytes, 6, 8), b.SlotsPerLayer);
    }

    [Fact]
    public void StandInCountsWhatATransferMoves()
    {
        // Transfers of the CPU stand-in are counted in the GPU slot's bytes, the quantized ones included.
        using var m = MoeModel.Load(QuantizedModels.EmbeddedQ4, new ModelOptions { ContextLength = 16 });
        var s = CpuStandInScheduler.FromRatio(m, new LruPolicy(prefetch: false), 0.25);
        Assert.Equal(ExpertLayout.Of(m.Weights).ExpertBytes, s.Driver.ExpertBytes);
        Assert.Equal(3L * 256 * 144, s.Driver.ExpertBytes);
    }
}
