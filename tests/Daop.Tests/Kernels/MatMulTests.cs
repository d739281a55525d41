using System.Runtime.Intrinsics;
using Daop.Kernels;
using Daop.Kernels.Cpu;
using Daop.Kernels.Cpu.Gemm;

namespace Daop.Tests.Kernels;

public unsafe class MatMulTests
{
    // 1: GEMV; 2..31: 4-token dot-product tiles; ≥ 32: outer-product GEMM (33: a padded half tile, 48: 32 + 16).
    static readonly int[] TokenCounts = [1, 2, 3, 5, 8, 17, 32, 33, 48];

    public static TheoryData<DType, int, int> Cases()
    {
        (int, int)[] shapes =
        [
            (1, 1), (7, 3), (33, 17), (80, 136), (136, 80), (65, 1025), (389, 80),
            // Vector friendly, several parallel chunks, several column blocks (+ a tail).
            (256, 1024), (64, 4096), (37, 2085),
        ];
        var data = new TheoryData<DType, int, int>();
        foreach (var t in new[] { DType.BF16, DType.F16, DType.F32 })
            foreach (var (r, c) in shapes) data.Add(t, r, c);
        return data;
    }

    /// <summary>
    /// Both sides sum the same exact products (weights widen exactly to fp32) in different orders, one with FMA.
    /// Each side's rounding error is at most ≈ n·2⁻²⁴·Σ|x·w| in the worst case and about √n·2⁻²⁴·Σ|x·w| for random
    /// data (≤ 4e-6·Σ|x·w| for n ≤ 4096), so 2e-5·Σ|x·w| gives a wide margin, while one wrong or missing term
    /// (≈ Σ|x·w|/n ≥ 2.4e-4·Σ|x·w| here) is still caught.
    /// </summary>
    internal static void AssertClose(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, ReadOnlySpan<float> magnitude, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            double tol = 2e-5 * magnitude[i] + 1e-30;
            if (!(Math.Abs(expected[i] - actual[i]) <= tol))
                Assert.Fail($"{what}: element {i}: expected {expected[i]}, got {actual[i]} (tol {tol})");
        }
    }

    /// <summary>
    /// How much wider than fp32 summation a product's error may be: bf16 batches on AMX-BF16 or AVX512-BF16 round x to
    /// bf16 (up to 2^-8 of Σ|x·w|, about 200 times the 2e-5 of <see cref="AssertClose"/>; Avx512Bf16Tests and AmxTests
    /// check those paths against x rounded to bf16), everything else 1.
    /// </summary>
    internal static float ActivationRounding(DType type, int rows, int cols, int tokens)
    {
        var w = new WeightMatrix(null, type, rows, cols);
        return Daop.Kernels.Cpu.Amx.AmxBf16Gemm.Use(w, tokens) || Daop.Kernels.Cpu.Amx.Avx512Bf16Gemm.Use(w, tokens) ? 200 : 1;
    }

    /// <summary>Σ_c |x[t,c]·W[r,c]| per output: the scale of each dot product's rounding error.</summary>
    internal static float[] Magnitude(NativeWeights w, float[] x, int tokens)
    {
        int rows = w.W.Rows, cols = w.W.Cols;
        var m = new float[tokens * rows];
        for (int t = 0; t < tokens; t++)
            for (int r = 0; r < rows; r++)
            {
                double s = 0;
                for (int c = 0; c < cols; c++) s += Math.Abs((double)x[t * cols + c] * w.At(r, c));
                m[t * rows + r] = (float)s;
            }
        return m;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void ForwardMatchesScalar(DType type, int rows, int cols)
    {
        using var w = new NativeWeights(type, rows, cols, seed: rows * 31 + cols);
        foreach (int tokens in TokenCounts)
        {
            var x = NativeWeights.Floats(tokens * cols, seed: tokens);
            var expected = new float[tokens * rows];
            var actual = new float[tokens * rows];
            MatMul.Scalar(w.W, x, expected, tokens);
            actual.AsSpan().Fill(float.NaN); // every output must be written
            MatMul.Forward(w.W, x, actual, tokens);
            var mag = Magnitude(w, x, tokens);
            float rounding = ActivationRounding(type, rows, cols, tokens);
            for (int i = 0; i < mag.Length; i++) mag[i] *= rounding;
            AssertClose(expected, actual, mag, $"{type} {rows}x{cols} tokens={tokens}");
        }
    }

    /// <summary>The Vector256 and scalar kernels, which this machine's dispatch may not pick.</summary>
    [Theory]
    [MemberData(nameof(Cases))]
    public void NarrowKernelsMatchScalar(DType type, int rows, int cols)
    {
        using var w = new NativeWeights(type, rows, cols, seed: rows * 17 + cols);
        foreach (int tokens in new[] { 1, 3, 5, 33 })
        {
            var x = NativeWeights.Floats(tokens * cols, seed: tokens + 100);
            var expected = new float[tokens * rows];
            MatMul.Scalar(w.W, x, expected, tokens);
            var mag = Magnitude(w, x, tokens);
            foreach (var narrow in new[] { 256, 1 })
            {
                var actual = new float[tokens * rows];
                actual.AsSpan().Fill(float.NaN);
                fixed (float* px = x, py = actual) Narrow(type, narrow, w.W, px, py, tokens);
                AssertClose(expected, actual, mag, $"{type} {rows}x{cols} tokens={tokens} width={narrow}");
            }
        }
    }

    static void Narrow(DType type, int width, in WeightMatrix w, float* x, float* y, int tokens)
    {
        switch (type, width)
        {
            case (DType.BF16, 256): Gemm<Bf16Format, Simd256, Vector256<float>>.Forward(w, x, y, tokens); break;
            case (DType.F16, 256): Gemm<F16Format, Simd256, Vector256<float>>.Forward(w, x, y, tokens); break;
            case (DType.F32, 256): Gemm<F32Format, Simd256, Vector256<float>>.Forward(w, x, y, tokens); break;
            case (DType.BF16, _): Gemm<Bf16Format, SimdScalar, float>.Forward(w, x, y, tokens); break;
            case (DType.F16, _): Gemm<F16Format, SimdScalar, float>.Forward(w, x, y, tokens); break;
            default: Gemm<F32Format, SimdScalar, float>.Forward(w, x, y, tokens); break;
        }
    }

    /// <summary>Batches beyond one outer-product pass (256 tokens) are split into passes.</summary>
    [Theory]
    [InlineData(DType.BF16, 300)]
    [InlineData(DType.F16, 513)]
    [InlineData(DType.F32, 257)]
    public void LongBatchesMatchScalar(DType type, int tokens)
    {
        using var w = new NativeWeights(type, 29, 70, seed: tokens);
        var x = NativeWeights.Floats(tokens * 70, seed: 3);
        var expected = new float[tokens * 29];
        var actual = new float[tokens * 29];
        MatMul.Scalar(w.W, x, expected, tokens);
        actual.AsSpan().Fill(float.NaN);
        MatMul.Forward(w.W, x, actual, tokens);
        AssertClose(expected, actual, Magnitude(w, x, tokens), $"{type} tokens={tokens}");
    }

    [Fact]
    public void ZeroTokensIsANoOp()
    {
        using var w = new NativeWeights(DType.BF16, 8, 8, 1);
        MatMul.Forward(w.W, ReadOnlySpan<float>.Empty, Span<float>.Empty, 0);
        var y = new float[8];
        y.AsSpan().Fill(float.NaN);
        MatMul.Forward(w.W, new float[8], y, 0); // buffers with room for a token, but no token: nothing is written
        Assert.All(y, v => Assert.True(float.IsNaN(v)));
    }

    [Fact]
    public void ShortBuffersThrow()
    {
        using var w = new NativeWeights(DType.BF16, 8, 8, 1);
        Assert.Throws<ArgumentException>(() => MatMul.Forward(w.W, new float[7], new float[8], 1));
        Assert.Throws<ArgumentException>(() => MatMul.Forward(w.W, new float[8], new float[7], 1));
    }
}
