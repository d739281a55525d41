using Daop.Kernels;
using Daop.Kernels.Gpu;

namespace Daop.Tests.Gpu;

/// <summary>
/// The bf16 tensor-core kernels (<see cref="MmaKernels"/>: hi/lo activation split, dense Linear, fused gate/up, grouped
/// down) on a 32-wide CPU accelerator with the mma emulated through shuffles in the PTX fragment layout, against the
/// scalar references. Awkward sizes: rows and columns that leave partial 16-row blocks, partial 16-byte chunks and
/// partial 4-chunk k-steps; token counts that leave partial 8-position n-tiles and a second 64-position tile.
/// Tolerance 2e-5 · Σ|x·w|: the hi + lo split keeps activations to ~2⁻¹⁸ relative.
/// </summary>
[Collection(Gpu32Collection.Name)]
public class GpuMmaTests(Gpu32Fixture gpu)
{
    [Theory]
    [InlineData(1, 1, 5)]
    [InlineData(7, 33, 9)]
    [InlineData(33, 7, 17)]
    [InlineData(40, 72, 33)]
    [InlineData(17, 24, 65)]
    public void LinearMatchesScalar(int rows, int cols, int tokens) =>
        GpuRowKernelTests.CheckGemv(gpu, DType.BF16, rows, cols, tokens, 32, tol: 2e-5);

    [Theory]
    [InlineData(DType.F16, 7, 33, 9)]
    [InlineData(DType.F32, 33, 7, 6)]
    public void OtherDtypesTakeTheTileKernel(DType type, int rows, int cols, int tokens) =>
        GpuRowKernelTests.CheckGemv(gpu, type, rows, cols, tokens, 32);

    [Theory]
    [InlineData(40, 24, 9)]
    [InlineData(24, 40, 33)]
    public void DenseFfnMatchesReference(int hidden, int inter, int tokens) =>
        GpuExpertTests.CheckDenseFfn(gpu, DType.BF16, hidden, inter, tokens, 32, launches: 4, rel: 4e-5);

    /// <summary>Split + gate/up, split + grouped down, combine: 5 launches.</summary>
    [Theory]
    [InlineData(9, 2, 3)]
    [InlineData(33, 2, 2)]
    [InlineData(70, 1, 1)]
    public void RoutedExpertsMatchReference(int tokens, int topK, int numExperts) =>
        GpuExpertTests.CheckRoutedExperts(gpu, DType.BF16, tokens, topK, numExperts, 32, launches: 5, rel: 4e-5);
}

/// <summary>
/// The block formats on the tensor-core kernels (dequantized in registers to bf16 hi + lo, activations split in the
/// formats' k order) on the 32-wide CPU accelerator with the mma emulated, against the double reference on the
/// dequantized weights: Linear over whole groups, blocks past them and a partial block (296, 520 columns), partial
/// 16-row blocks and n-tiles, a second 64-position tile; routed experts (fused gate/up, grouped down; rows of a block
/// and a partial one). Tolerance as for bf16 on the tensor cores (2e-5 · Σ|x·w|, 4e-5 · M for experts). Small shapes:
/// every emulated mma is 32 threads meeting at barriers.
/// </summary>
[Collection(Gpu32Collection.Name)]
public class GpuBlockMmaTests(Gpu32Fixture gpu)
{
    [Theory]
    [InlineData(DType.Q4_0, 17, 296, 9)]
    [InlineData(DType.Q8_0, 5, 520, 33)]
    [InlineData(DType.MXFP4, 17, 40, 65)]
    [InlineData(DType.Q4_0, 16, 256, 70)]
    [InlineData(DType.Q4_K, 17, 512, 9)]
    [InlineData(DType.Q4_K, 16, 256, 70)]
    [InlineData(DType.Q6_K, 5, 256, 33)]
    public void LinearMatchesDequantizedReference(DType type, int rows, int cols, int tokens) =>
        GpuBlockKernelTests.CheckGemv(gpu, type, rows, cols, tokens, 32, 2, tol: 2e-5);

    [Theory]
    [InlineData(DType.Q4_0, 12)]
    [InlineData(DType.MXFP4, 33)]
    [InlineData(DType.Q4_K, 12)]
    public void RoutedExpertsMatchDequantizedReference(DType type, int tokens) =>
        GpuExpertTests.CheckRoutedExperts(gpu, type, tokens, topK: 2, numExperts: 2, 32, launches: null, rel: 4e-5,
            hidden: type == DType.Q4_K ? 256 : 40, inter: type == DType.Q4_K ? 256 : 40);

    [Fact]
    public void BatchedQuantizedWorkRunsOnTheTensorCores()
    {
        Assert.True(gpu.Kernels.Options.TensorCores);
        foreach (var t in new[] { DType.BF16, DType.Q8_0, DType.Q4_0, DType.MXFP4, DType.Q4_K, DType.Q6_K }) Assert.Equal(MmaKernels.TileTokens, gpu.Kernels.BatchTileTokens(t));
        foreach (var t in new[] { DType.F16, DType.F32 }) Assert.Equal(TileKernels.TileTokens, gpu.Kernels.BatchTileTokens(t));
    }
}

