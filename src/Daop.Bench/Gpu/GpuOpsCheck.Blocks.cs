using Daop.Kernels;
using Daop.Kernels.Gpu;
using ILGPU.Runtime;

namespace Daop.Bench.Gpu;

public static partial class GpuOpsCheck
{
    /// <summary>The block formats with GPU kernels, in the order the checks and timings report them.</summary>
    public static readonly DType[] BlockTypes = [DType.Q8_0, DType.Q4_0, DType.MXFP4, DType.Q4_K];

    /// <summary>
    /// <paramref name="cols"/> as a row of <paramref name="type"/> can have it: rounded up to whole 256-column super-blocks for
    /// the K-quants, as it is otherwise.
    /// </summary>
    public static int Whole(DType type, int cols) => type.IsKQuant() ? (cols + 255) / 256 * 256 : cols;

    /// <summary>
    /// The block formats (<see cref="BlockTypes"/>) on <paramref name="accelerator"/> against the CPU path computed on their
    /// dequantized values (random GGUF blocks, <see cref="BenchMatrix"/>), with the dense kernels' tolerances: Linear (decode
    /// GEMV, row and tile kernels; rows of whole 256-column groups, of groups and single blocks, and of partial blocks),
    /// routed experts through the scheduler at a small shape and at Mixtral's (4096 x 14336, 8 experts, top-2), the dense
    /// FFN and the embedding lookup, on the default kernel set (batched work on the tensor cores where it has them), the fp32
    /// FMA tiles instead and a narrow-team set; then the bf16 generated expert shapes on
    /// the default set, which the block formats must leave as they were. <paramref name="small"/> keeps to tiny shapes.
    /// </summary>
    public static IReadOnlyList<GpuOpCheck> RunBlockFormats(GpuContext accelerator, bool small, Action<GpuOpCheck>? report = null)
    {
        var checks = new List<GpuOpCheck>();
        var add = Collector(checks, report);
        (int Rows, int Cols)[] shapes = small ? [(7, 40), (9, 296)] : [(7, 40), (80, 296), (256, 2880), (1024, 4096), (4096, 1024)];
        int[] tokenCounts = small ? [1, 3, 5] : [1, 2, 4, 5, 33, 100];
        var sets = KernelSets(accelerator);
        foreach (var (label, options) in sets)
            foreach (var type in BlockTypes)
            {
                add(Linear(accelerator, options, label, type, [.. shapes.Select(s => (s.Rows, Whole(type, s.Cols)))], tokenCounts));
                add(RoutedExperts(accelerator, options, label, type, Whole(type, 264), Whole(type, 296), small ? [1, 3, 12] : [1, 2, 3, 9, 40, 70], 8));
                add(DenseFfn(accelerator, options, label, type, Whole(type, 264), Whole(type, 296), small ? [1, 5] : [1, 3, 9, 70]));
            }
        if (!small)
            foreach (var type in BlockTypes)
                add(RoutedExperts(accelerator, GpuKernelOptions.Default, "default", type, 4096, 14336, [1, 2, 3, 9], 8));
        add(Embed(accelerator, "embed block formats", [.. BlockTypes.Select(t => (t, 33, Whole(t, 296))), (DType.Q4_0, 389, 4096)]));
        foreach (var (h, i) in GeneratedShapes(small))
            add(RoutedExperts(accelerator, GpuKernelOptions.Default, "default", DType.BF16, h, i, [1, 2, 3], 3));
        return checks;
    }
}
