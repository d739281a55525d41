using Daop.Kernels;
using Daop.Kernels.Generated;
using Daop.Kernels.Gpu;

namespace Daop.Tests.Gpu;

/// <summary>
/// The GPU runtime layer under the kernel sets: the kernel catalog (what the build precompiles and what any GPU may
/// load), typed launchers checked against their kernels, and device views and copies on the CPU accelerator.
/// </summary>
[Collection(GpuCollection.Name)]
public class GpuRuntimeTests(GpuFixture gpu)
{
    static readonly DType[] AllFormats = [DType.BF16, DType.F16, DType.F32, DType.Q8_0, DType.Q4_0, DType.MXFP4, DType.Q4_K];

    [Fact]
    public void TheCatalogHoldsEveryFormatOfEveryWeightKernel()
    {
        var keys = GpuKernelCatalog.Entries.Select(e => e.Key).ToList();
        Assert.Equal(keys.Count, keys.Distinct().Count());
        foreach (var t in AllFormats)
        {
            foreach (var name in new[] { "Gemv", "TileLinear", "GateUp", "Down", "DownCombine", "TileGateUp", "TileDown", "Gemv1.2", "Gemv1.4", "Gemv1.8", "Gemv3.4",
                "GateUpBiased", "DownBiased", "DownCombineBiased", "TileGateUpBiased", "TileDownBiased" })
                Assert.Contains($"{name}.{t}", keys);
            // Tensor cores take bf16 and the block formats (dequantized in registers), not f16/f32.
            bool mma = t == DType.BF16 || t.IsBlock();
            foreach (var name in new[] { "MmaSplit", "MmaLinear", "MmaGateUp", "MmaDown", "MmaGateUpBiased", "MmaDownBiased" })
                Assert.Equal(mma, keys.Contains($"{name}.{t}"));
        }
        foreach (var name in new[] { "Norm", "NormRows", "Rope", "Embed", "Add", "Attention", "RouteSoftmaxTopK", "LatentAttend" })
            Assert.Contains(name, keys);
        foreach (var e in GeneratedIlgpuKernels.All)
        {
            Assert.Contains(e.Key("GateUp"), keys);
            Assert.Equal(e.HasRoutedKernels, keys.Contains(e.Key("DownCombine")));
        }
        // Every entry's launcher passes a view (16 bytes) or a scalar/struct argument for each kernel parameter.
        foreach (var e in GpuKernelCatalog.Entries)
        {
            Assert.Equal(e.Kernel.Method.GetParameters().Length, e.ArgumentSizes.Length);
            Assert.All(e.ArgumentSizes, s => Assert.True(s is 4 or 8 or 16 || s % 4 == 0, $"{e.Key}: argument of {s} bytes"));
        }
    }

    [Fact]
    public void AKernelOutsideTheCatalogIsRefusedByName()
    {
        var ex = Assert.Throws<InvalidOperationException>(() => gpu.Gpu.LoadKernel("NotAKernel.BF16", VectorKernels.Add));
        Assert.Contains("NotAKernel.BF16", ex.Message);
    }

    [Fact]
    public void ALauncherWhoseArgumentsDoNotMatchItsKernelIsRefused()
    {
        // Add takes (acc, x, n): a launcher of two arguments must not bind.
        var ex = Assert.Throws<InvalidOperationException>(() => new KernelSource(gpu.Gpu, "Add").Bind<GpuView<float>, int>(VectorKernels.Add));
        Assert.Contains("Add", ex.Message);
    }

    [Fact]
    public void ViewsCopyAndSliceLikeTheMemoryTheyName()
    {
        var g = gpu.Gpu;
        using var a = g.Allocate1D<float>(10);
        var data = Enumerable.Range(0, 10).Select(i => i * 1.5f).ToArray();
        a.View.CopyFromCPU(g.DefaultStream, data);
        Assert.Equal(data, a.GetAsArray1D());

        var mid = a.View.SubView(2, 4);
        Assert.Equal(a.View.Ptr + 8, mid.Ptr);
        var got = new float[4];
        mid.CopyToCPU(g.DefaultStream, got);
        Assert.Equal(data[2..6], got);
        Assert.Equal(2, mid.Cast<double>().Length);
        Assert.Throws<ArgumentOutOfRangeException>(() => a.View.SubView(8, 3));
        Assert.Throws<ArgumentOutOfRangeException>(() => mid.CopyFromCPU(g.DefaultStream, data));

        mid.MemSetToZero(g.DefaultStream);
        using var b = g.Allocate1D<float>(10);
        a.View.CopyTo(g.DefaultStream, b.View);
        Assert.Equal([0f, 1.5f, 0, 0, 0, 0, 9f, 10.5f, 12f, 13.5f], b.GetAsArray1D());

        // An ILGPU view of the same accelerator converts to the same address.
        using var ib = gpu.Accelerator.Allocate1D<float>(4);
        GpuView<float> v = ib.View;
        Assert.Equal(4, v.Length);
        Assert.Equal(ib.NativePtr, v.Ptr);
    }
}
