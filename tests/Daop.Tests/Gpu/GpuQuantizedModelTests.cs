using Daop.Bench.Gpu;
using Daop.Engine.Device.Gpu;
using Daop.Engine.Load.Safetensors;
using Daop.Engine.Model;
using Daop.Engine.Placement;
using Daop.Engine.Schedule;
using Daop.Kernels;
using Xunit.Abstractions;

namespace Daop.Tests.Gpu;

/// <summary>
/// Models with quantized experts end to end on the ILGPU CPU accelerator: each fixture's routed expert matrices are
/// quantized in memory (<see cref="QuantizingSource"/>: <see cref="Daop.Kernels.Quant.BlockQuant.QuantizeRow"/> per row) and
/// run on the GPU path, against the CPU path computing with the dequantized values in fp32 (so neither depends on the
/// CPU block-format kernels). A 12-token prefix in chunks of 8 (grouped and batched kernels), then 4 decode steps
/// (fused down-and-combine). Tolerance as the GPU model tests': max |gpu − cpu| ≤ 1e-4 · max(1, max |cpu|) per call.
/// </summary>
[Collection(GpuCollection.Name)]
public class GpuQuantizedModelTests(GpuFixture gpu, ITestOutputHelper output)
{
    const int Prefix = 12, Decode = 4;

    static string Dir(string name) => name == "tiny-mixtral-code" ? TestPaths.DefaultModel : TestPaths.Fixture(name);

    /// <summary>Routed experts quantized, all resident (<see cref="GpuExpertScheduler"/>); the dense part stays bf16.</summary>
    [Theory]
    [InlineData("mixtral-odd", DType.Q4_0)]      // 80 x 136: partial blocks, no whole group
    [InlineData("qwen2moe-tiny", DType.Q8_0)]    // plus a shared expert (bf16)
    [InlineData("olmoe-tiny", DType.MXFP4)]
    [InlineData("tiny-mixtral-code", DType.Q4_0)] // 256 x 256: whole groups
    [InlineData("tiny-mixtral-code", DType.MXFP4)]
    public void QuantizedExpertsMatchTheCpuOnTheirValues(string fixture, DType type) =>
        Compare(fixture, type, allMatrices: false, (m, d) => new GpuExpertScheduler(m, d));

    /// <summary>Every matrix quantized (attention, shared expert, embedding, LM head): the decode GEMV and embedding too.</summary>
    [Theory]
    [InlineData("qwen3moe-tiny", DType.Q8_0)]
    [InlineData("tiny-mixtral-code", DType.Q4_0)]
    public void QuantizedModelMatchesTheCpuOnItsValues(string fixture, DType type) =>
        Compare(fixture, type, allMatrices: true, (m, d) => new GpuExpertScheduler(m, d));

    /// <summary>
    /// Offloaded: half the experts in slots, misses transferred (LRU) from staged host images of the quantized bytes;
    /// transfers count the quantized bytes.
    /// </summary>
    [Theory]
    [InlineData("mixtral-tiny", DType.Q4_0)]
    [InlineData("tiny-mixtral-code", DType.MXFP4)]
    public void OffloadedQuantizedExpertsMatchTheCpu(string fixture, DType type) =>
        Compare(fixture, type, allMatrices: false, (m, d) => OffloadedExpertScheduler.FromRatio(m, d, new LruPolicy(prefetch: false), 0.5,
            options: new OffloadOptions { CopyMode = HostCopyMode.Staged }), model =>
        {
            var o = (OffloadedExpertScheduler)model.Experts;
            var offload = (GpuExpertOffload)o.Offload;
            Assert.Equal(new ExpertLayout(type, type, type, model.Config.HiddenSize, model.Config.ExpertIntermediate), offload.Layout);
            Assert.True(o.Stats.Transfers > 0);
            Assert.Equal(o.Stats.Transfers * offload.Layout.ExpertBytes, o.Stats.TransferBytes);
            Assert.True(offload.Store.PinnedBytes > 0);
        });

    void Compare(string fixture, DType type, bool allMatrices, Func<MoeModel, Daop.Engine.Device.IDevice, IExpertScheduler> experts,
        Action<MoeModel>? check = null)
    {
        string dir = Dir(fixture);
        using var reference = TensorStore.OpenFile(Path.Combine(dir, "reference.safetensors"));
        var (ids, shape) = reference.Int64s("input_ids");
        var tokens = ids.Take((int)shape[1]).Select(x => (int)x).ToArray();
        using var cpu = QuantizingSource.Load(dir, type, dequantize: true, new ModelOptions { ContextLength = 64, MaxChunkTokens = 8 }, allMatrices);
        using var model = QuantizingSource.Load(dir, type, dequantize: false, new ModelOptions
        {
            ContextLength = 64,
            MaxChunkTokens = 8,
            Device = _ => gpu.NewDevice(),
            Experts = experts,
        }, allMatrices);
        int v = model.Config.VocabSize;
        var gc = model.NewCache();
        var cc = cpu.NewCache();
        var got = new float[Prefix * v];
        var want = new float[Prefix * v];
        model.Forward(tokens.AsSpan(0, Prefix), 0, gc, got, allLogits: true);
        cpu.Forward(tokens.AsSpan(0, Prefix), 0, cc, want, allLogits: true);
        LogitsAssert.Close(want, got, $"{fixture} {type} prefill");
        if (type != DType.Q8_0)
        {
            // The 4-bit values are not the checkpoint's: the unquantized model's logits are visibly off.
            using var plain = MoeModel.Load(dir, new ModelOptions { ContextLength = 64 });
            var bf16 = new float[Prefix * v];
            plain.Forward(tokens.AsSpan(0, Prefix), 0, plain.NewCache(), bf16, allLogits: true);
            Assert.Throws<Xunit.Sdk.FailException>(() => LogitsAssert.Close(bf16, got, "unquantized"));
        }
        var step = new float[v];
        var cpuStep = new float[v];
        for (int i = 0; i < Decode; i++)
        {
            int pos = Prefix + i;
            model.Forward(tokens.AsSpan(pos, 1), pos, gc, step);
            cpu.Forward(tokens.AsSpan(pos, 1), pos, cc, cpuStep);
            LogitsAssert.Close(cpuStep, step, $"{fixture} {type} decode {pos}");
        }
        check?.Invoke(model);
        output.WriteLine($"{fixture} {type}{(allMatrices ? " (all matrices)" : "")}: {((GpuDevice)model.Device).AllocatedBytes / 1024} KiB on device");
    }
}
