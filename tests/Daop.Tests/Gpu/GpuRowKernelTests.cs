using Daop.Kernels;
using Daop.Kernels.Cpu;
using Daop.Kernels.Gpu;
using Daop.Tests.Kernels;

namespace Daop.Tests.Gpu;

/// <summary>
/// The row kernels (decode GEMV, few-token row kernel, batched tile kernel; fused gate/up + SwiGLU, down, grouped
/// experts) on the ILGPU CPU accelerator against the scalar CPU twins. Tolerance: 1e-5 · Σ|x·w| per output (fp32 sums of the same exact products in another order).
/// </summary>
[Collection(GpuCollection.Name)]
public class GpuRowKernelTests(GpuFixture gpu)
{
    public static TheoryData<DType, int, int, int, int> GemvCases()
    {
        var data = new TheoryData<DType, int, int, int, int>();
        (int, int)[] shapes = [(1, 1), (7, 33), (33, 7), (80, 136), (136, 80)];
        // 1: the decode GEMV; 2-4: the row kernel; more: the batched tile kernel (33 = a full tile of 32 and one more).
        foreach (var t in new[] { DType.BF16, DType.F16, DType.F32 })
            foreach (var (r, c) in shapes)
                foreach (int tokens in new[] { 1, 2, 3, 4, 5, 6, 7, 8, 9, 17, 33 })
                    data.Add(t, r, c, tokens, 1);
        foreach (var t in new[] { DType.BF16, DType.F16, DType.F32 })
        {
            data.Add(t, 7, 33, 5, 4);
            data.Add(t, 80, 136, 3, 4);
            data.Add(t, 33, 7, 1, 2);
            data.Add(t, 136, 80, 1, 4);
            data.Add(t, 80, 136, 1, 4);
        }
        return data;
    }

    internal static void AssertClose(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, ReadOnlySpan<float> magnitude, string what,
        double rel = 1e-5)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            double tol = rel * magnitude[i] + 1e-30;
            if (!(Math.Abs(expected[i] - actual[i]) <= tol))
                Assert.Fail($"{what}: element {i}: expected {expected[i]}, got {actual[i]} (tol {tol})");
        }
    }

    [Theory]
    [MemberData(nameof(GemvCases))]
    public void GemvMatchesScalar(DType type, int rows, int cols, int tokens, int lanes) => CheckGemv(gpu, type, rows, cols, tokens, lanes);

    /// <summary>GEMV with and without bias on <paramref name="gpu"/> against <see cref="MatMul.Scalar"/>, within tol · Σ|x·w|.</summary>
    internal static void CheckGemv(GpuFixture gpu, DType type, int rows, int cols, int tokens, int lanes, double tol = 1e-5)
    {
        using var w = new NativeWeights(type, rows, cols, seed: rows * 31 + cols);
        var x = NativeWeights.Floats(tokens * cols, seed: 7);
        var bias = NativeWeights.Floats(rows, seed: 9);
        var want = new float[tokens * rows];
        MatMul.Scalar(w.W, x, want, tokens);
        var mag = MatMulTests.Magnitude(w, x, tokens);

        var (wb, gm) = gpu.Upload(w.W);
        using var _ = wb;
        using var xb = gpu.Upload(x);
        using var yb = gpu.Zeros(tokens * rows);
        using var bb = gpu.Upload(bias);
        gpu.WithLanes(lanes, gpu.Kernels.AttentionLanes, () => gpu.Kernels.Gemv(gpu.Stream, gm, xb.View, yb.View, tokens));
        AssertClose(want, gpu.Read(yb, tokens * rows), mag, $"{type} {rows}x{cols} T={tokens} lanes={lanes}", tol);

        gpu.WithLanes(lanes, gpu.Kernels.AttentionLanes, () => gpu.Kernels.Gemv(gpu.Stream, gm, xb.View, yb.View, tokens, bb.View));
        var withBias = (float[])want.Clone();
        for (int t = 0; t < tokens; t++)
            for (int r = 0; r < rows; r++) withBias[t * rows + r] += bias[r];
        var magB = mag.Select((m, i) => m + Math.Abs(bias[i % rows])).ToArray();
        AssertClose(withBias, gpu.Read(yb, tokens * rows), magB, $"{type} {rows}x{cols} T={tokens} lanes={lanes} +bias", tol);
    }
}
