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
        // 1: the decode GEMV; 2-16: the row kernel (GpuKernelOptions.LinearRowTokens); more: the batched tile kernel
        // (33 = a full tile of 32 and one more). LinearRowTokensMovesTheSwitchNotTheResult covers 5-16 on the tiles.
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

    /// <summary>Three matrices in one launch (q, k, v) give the bits of three single-token GEMVs.</summary>
    [Theory]
    [InlineData(DType.BF16, 40, 8, 8, 136, false, 1)]
    [InlineData(DType.F16, 33, 7, 7, 80, true, 4)]
    [InlineData(DType.F32, 16, 4, 5, 33, true, 2)]
    public void Gemv3EqualsThreeGemvs(DType type, int r0, int r1, int r2, int cols, bool bias, int lanes)
    {
        using var w0 = new NativeWeights(type, r0, cols, 1);
        using var w1 = new NativeWeights(type, r1, cols, 2);
        using var w2 = new NativeWeights(type, r2, cols, 3);
        var (m0, m1, m2) = (gpu.Upload(w0.W), gpu.Upload(w1.W), gpu.Upload(w2.W));
        using var xb = gpu.Upload(NativeWeights.Floats(cols, 4));
        var bs = new[] { NativeWeights.Floats(r0, 5), NativeWeights.Floats(r1, 6), NativeWeights.Floats(r2, 7) }.Select(gpu.Upload).ToArray();
        var ones = new[] { r0, r1, r2 }.Select(gpu.Zeros).ToArray();
        var fused = new[] { r0, r1, r2 }.Select(gpu.Zeros).ToArray();
        gpu.WithLanes(lanes, 1, () =>
        {
            var k = gpu.Kernels;
            k.Gemv(gpu.Stream, m0.Matrix, xb.View, ones[0].View, 1, bias ? bs[0].View : null);
            k.Gemv(gpu.Stream, m1.Matrix, xb.View, ones[1].View, 1, bias ? bs[1].View : null);
            k.Gemv(gpu.Stream, m2.Matrix, xb.View, ones[2].View, 1, bias ? bs[2].View : null);
            long before = k.Launches;
            k.Gemv3(gpu.Stream, m0.Matrix, m1.Matrix, m2.Matrix, xb.View, fused[0].View, fused[1].View, fused[2].View, 1,
                bias ? bs[0].View : null, bias ? bs[1].View : null, bias ? bs[2].View : null);
            Assert.Equal(1, k.Launches - before);
        });
        int[] rows = [r0, r1, r2];
        for (int i = 0; i < 3; i++) Assert.Equal(gpu.Read(ones[i], rows[i]), gpu.Read(fused[i], rows[i]));
        Assert.NotEqual(new float[r1], gpu.Read(fused[1], r1));
        foreach (var b in bs.Concat(ones).Concat(fused)) b.Dispose();
        foreach (var m in new[] { m0, m1, m2 }) m.Buffer.Dispose();
    }

    [Theory]
    [MemberData(nameof(GemvCases))]
    public void GemvMatchesScalar(DType type, int rows, int cols, int tokens, int lanes) => CheckGemv(gpu, type, rows, cols, tokens, lanes);

    /// <summary>
    /// Where dense products leave the row kernel for the batched tiles (<see cref="GpuKernelOptions.LinearRowTokens"/>)
    /// changes which kernel runs, never the result: 5–33 tokens on either side of the switch match the scalar product.
    /// </summary>
    [Theory]
    [InlineData(4)]
    [InlineData(32)]
    public void LinearRowTokensMovesTheSwitchNotTheResult(int rowTokens)
    {
        var options = gpu.Kernels.Options with { LinearRowTokens = rowTokens };
        var kernels = GpuKernels.For(gpu.Accelerator, options);
        Assert.Equal(rowTokens, kernels.Options.LinearRowTokens);
        foreach (int tokens in new[] { 5, 16, 17, 33 })
        {
            using var w = new NativeWeights(DType.BF16, 80, 136, seed: tokens);
            var x = NativeWeights.Floats(tokens * 136, seed: 3);
            var want = new float[tokens * 80];
            MatMul.Scalar(w.W, x, want, tokens);
            var (wb, gm) = gpu.Upload(w.W);
            using var _ = wb;
            using var xb = gpu.Upload(x);
            using var yb = gpu.Zeros(tokens * 80);
            kernels.Gemv(gpu.Stream, gm, xb.View, yb.View, tokens);
            AssertClose(want, gpu.Read(yb, tokens * 80), MatMulTests.Magnitude(w, x, tokens), $"row tokens {rowTokens}, T={tokens}", 1e-5);
        }
    }

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
