using Daop.Kernels;
using Daop.Kernels.Generated;

namespace Daop.Tests.Generators;

/// <summary>The registry built into Daop.Kernels from the configs under models/.</summary>
public class ExpertKernelRegistryTests
{
    [Theory]
    [InlineData(4096, 14336, "generated H4096xI14336 bf16")] // Mixtral-8x7B (models/configs)
    [InlineData(256, 256, "generated H256xI256 bf16")]       // the embedded tiny-mixtral-code (models/tiny-mixtral-code)
    [InlineData(2048, 768, "generated H2048xI768 bf16")]     // Qwen3-30B-A3B
    [InlineData(2048, 5632, "generated H2048xI5632 bf16")]   // Qwen1.5-MoE-A2.7B shared expert
    public void ConfiguredShapesGetTheGeneratedKernel(int hidden, int inter, string name)
    {
        var k = ExpertKernelRegistry.Select(hidden, inter, DType.BF16);
        Assert.Equal(ExpertKernelKind.Generated, k.Kind);
        Assert.Equal(name, k.Name);
        Assert.Contains(k, ExpertKernelRegistry.Generated);
        Assert.Same(k, ExpertKernelRegistry.Select(hidden, inter, DType.BF16));
    }

    [Theory]
    [InlineData(80, 136, DType.BF16)]    // only the test-only config names it, and that is not built into Daop.Kernels
    [InlineData(256, 256, DType.F16)]    // a configured shape, but another dtype
    [InlineData(14336, 4096, DType.BF16)] // hidden and inter swapped
    public void OtherShapesGetTheGenericKernel(int hidden, int inter, DType type)
    {
        var k = ExpertKernelRegistry.Select(hidden, inter, type);
        Assert.Equal(ExpertKernelKind.Generic, k.Kind);
        Assert.Equal("generic runtime-dims", k.Name);
        Assert.Same(GenericExpertKernel.Instance, k);
    }

    [Fact]
    public void EveryRepositoryShapeIsGenerated()
    {
        // The configs under models/ name 13 distinct shapes (see models/configs/README.md).
        Assert.Equal(13, ExpertKernelRegistry.Generated.Count);
        Assert.All(ExpertKernelRegistry.Generated, k => Assert.Equal(ExpertKernelKind.Generated, k.Kind));
        Assert.Equal(ExpertKernelRegistry.Generated.Count, ExpertKernelRegistry.Generated.Select(k => k.Name).Distinct().Count());
    }

    [Fact]
    public void GpuKernelsAreEmittedPerGeneratedShape()
    {
        var gpu = GeneratedIlgpuKernels.Find(4096, 14336, DType.BF16);
        Assert.NotNull(gpu);
        Assert.Equal("generated gpu H4096xI14336 bf16", gpu.Name);
        Assert.Same(gpu, IlgpuExpert_H4096_I14336_Bf16.Expert);
        Assert.Equal(512, IlgpuExpert_H4096_I14336_Bf16.HiddenChunks);  // 4096 bf16 = 512 chunks of 16 bytes
        Assert.Equal(1792, IlgpuExpert_H4096_I14336_Bf16.InterChunks);
        Assert.Equal(ExpertKernelRegistry.Generated.Count, GeneratedIlgpuKernels.All.Count);
        Assert.Null(GeneratedIlgpuKernels.Find(80, 136, DType.BF16));
    }
}
