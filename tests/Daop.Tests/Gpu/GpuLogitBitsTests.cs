using Daop.Engine.Device.Gpu;
using Daop.Engine.Model;
using Daop.Engine.Schedule;
using Daop.Tests.Model;
using Xunit.Abstractions;

namespace Daop.Tests.Gpu;

/// <summary>
/// The GPU path (<see cref="GpuDevice"/> and <see cref="GpuExpertScheduler"/> on the ILGPU CPU accelerator) gives
/// logits bit-identical to the recorded ones (see <see cref="LogitBits"/>), for fixtures and config variants that
/// cover every layer kind: biases, LayerNorm, q/k norms, clip_qkv, dense layers, shared experts, sliding windows.
/// </summary>
[Collection(GpuCollection.Name)]
public class GpuLogitBitsTests(GpuFixture gpu, ITestOutputHelper output)
{
    ModelOptions Gpu => new()
    {
        Device = _ => new GpuDevice(gpu.Accelerator),
        Experts = (m, d) => new GpuExpertScheduler(m, d),
    };

    void Check(string name, MoeModel model)
    {
        string hash = LogitBits.Hash(model);
        if (!LogitBits.Check(name, hash)) output.WriteLine($"no logit bits recorded for {LogitBits.Signature}: not checked");
    }

    [Theory]
    [InlineData("mixtral-odd")]
    [InlineData("qwen2moe-tiny")]
    [InlineData("qwen3moe-tiny")]
    [InlineData("olmoe-tiny")]
    [InlineData("phimoe-tiny")]
    [InlineData("deepseekv2-tiny")]
    [InlineData("deepseekv3-tiny")]
    public void FixtureLogitsAreBitIdentical(string fixture)
    {
        using var model = MoeModel.Load(TestPaths.Fixture(fixture), LogitBits.Options(Gpu));
        Check($"ilgpu {fixture}", model);
    }

    [Theory]
    [InlineData("qwen2moe-mlp-only-window")]
    [InlineData("olmoe-clip-bias")]
    [InlineData("phimoe-bias-longrope")]
    public void VariantLogitsAreBitIdentical(string variant)
    {
        using var model = LogitBits.Find(variant).Load(Gpu);
        Check($"ilgpu {variant}", model);
    }
}
