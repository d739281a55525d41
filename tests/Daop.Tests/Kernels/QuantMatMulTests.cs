using Daop.Kernels;
using Daop.Kernels.Cpu;
using Daop.Kernels.Cpu.Quant;
using Daop.Kernels.Quant;

namespace Daop.Tests.Kernels;

public unsafe class QuantMatMulTests
{
    static readonly DType[] Types = [DType.Q8_0, DType.Q4_0, DType.MXFP4];
    static readonly int[] TokenCounts = [1, 2, 3, 5, 17, 64];

    public static TheoryData<DType, int, int> Cases()
    {
        var data = new TheoryData<DType, int, int>();
        foreach (var t in Types)
            foreach (int rows in new[] { 1, 7, 33 })
                foreach (int cols in new[] { 32, 64, 96, 136, 4096 }) data.Add(t, rows, cols);
        return data;
    }

    /// <summary>The int8 paths: AVX2 where this machine has it (1), and the scalar fallback (0).</summary>
    static IEnumerable<int> Isas()
    {
        if (Avx2Support.IsSupported) yield return 1;
        yield return 0;
    }

    internal static void Int8(int isa, in WeightMatrix w, float[] x, float[] y, int tokens)
    {
        fixed (float* px = x, py = y)
        {
            switch (w.Type)
            {
                case DType.Q8_0: QuantGemm<Q8_0Format>.Forward(w, px, py, tokens, scalar: isa == 0); break;
                case DType.Q4_0: QuantGemm<Q4_0Format>.Forward(w, px, py, tokens, scalar: isa == 0); break;
                default: QuantGemm<Mxfp4Format>.Forward(w, px, py, tokens, scalar: isa == 0); break;
            }
        }
    }

    static void Outer(in WeightMatrix w, float[] x, float[] y, int tokens)
    {
        fixed (float* px = x, py = y)
        {
            switch (w.Type)
            {
                case DType.Q8_0: QuantMatMul.Outer<Q8_0Format>(w, px, py, tokens); break;
                case DType.Q4_0: QuantMatMul.Outer<Q4_0Format>(w, px, py, tokens); break;
                default: QuantMatMul.Outer<Mxfp4Format>(w, px, py, tokens); break;
            }
        }
    }

    /// <summary>
    /// Σ_b |scale_w·d_x| · Σ_j |w_int·q| per output: the scale of the int8 path's fp32 rounding (its integer dots are
    /// exact, so only the block terms' products and sums round).
    /// </summary>
    static float[] Int8Magnitude(in WeightMatrix w, float[] x, int tokens)
    {
        int cols = w.Cols, blocks = (cols + 31) / 32, bb = w.Type.BlockBytes();
        var q = new sbyte[blocks * 32];
        var d = new float[blocks];
        var m = new float[tokens * w.Rows];
        for (int t = 0; t < tokens; t++)
        {
            QuantizedActivations.QuantizeRow(x.AsSpan(t * cols, cols), q, d);
            for (int r = 0; r < w.Rows; r++)
            {
                var row = w.RowBytesSpan(r);
                double s = 0;
                for (int b = 0; b < blocks; b++)
                {
                    var block = row.Slice(b * bb, bb);
                    long dot = 0;
                    for (int j = 0; j < 32; j++) dot += Math.Abs(BlockQuant.Integer(w.Type, block, j) * q[b * 32 + j]);
                    s += Math.Abs((double)BlockQuant.BlockScale(w.Type, block) * d[b]) * dot;
                }
                m[t * w.Rows + r] = (float)s;
            }
        }
        return m;
    }

    /// <summary>Σ_c |x·w| per output over the dequantized weights.</summary>
    static float[] Magnitude(float[] wf, int rows, int cols, float[] x, int tokens)
    {
        var m = new float[tokens * rows];
        for (int t = 0; t < tokens; t++)
            for (int r = 0; r < rows; r++)
            {
                double s = 0;
                for (int c = 0; c < cols; c++) s += Math.Abs((double)x[t * cols + c] * wf[r * cols + c]);
                m[t * rows + r] = (float)s;
            }
        return m;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Int8MatchesScalarTwin(DType type, int rows, int cols)
    {
        using var w = new BlockWeights(type, rows, cols, seed: rows * 31 + cols);
        foreach (int tokens in TokenCounts)
        {
            var x = NativeWeights.Floats(tokens * cols, seed: tokens);
            var expected = new float[tokens * rows];
            QuantMatMul.Scalar(w.W, x, expected, tokens);
            var mag = Int8Magnitude(w.W, x, tokens);
            foreach (int isa in Isas())
            {
                var actual = new float[tokens * rows];
                actual.AsSpan().Fill(float.NaN); // every output must be written
                Int8(isa, w.W, x, actual, tokens);
                MatMulTests.AssertClose(expected, actual, mag, $"{type} {rows}x{cols} tokens={tokens} isa={isa}");
            }
        }
    }

    /// <summary>
    /// Against fp32 math on the dequantized weights the int8 path differs by x's quantization: each element moves by
    /// at most d_x/2, so an output by at most Σ_b (d_b/2)·Σ_j |w_j| (plus fp32 rounding).
    /// </summary>
    [Theory]
    [MemberData(nameof(Cases))]
    public void Int8IsCloseToDequantizedFp32(DType type, int rows, int cols)
    {
        using var w = new BlockWeights(type, rows, cols, seed: rows * 7 + cols);
        var wf = w.Dequantized();
        foreach (int tokens in new[] { 1, 5 })
        {
            var x = NativeWeights.Floats(tokens * cols, seed: tokens + 50);
            var expected = new float[tokens * rows];
            var actual = new float[tokens * rows];
            MatMul.Scalar(w.W, x, expected, tokens);
            Int8(Isas().First(), w.W, x, actual, tokens);
            var mag = Magnitude(wf, rows, cols, x, tokens);
            int blocks = (cols + 31) / 32;
            var q = new sbyte[blocks * 32];
            var d = new float[blocks];
            for (int t = 0; t < tokens; t++)
            {
                QuantizedActivations.QuantizeRow(x.AsSpan(t * cols, cols), q, d);
                for (int r = 0; r < rows; r++)
                {
                    double bound = 0;
                    for (int c = 0; c < cols; c++) bound += Math.Abs(wf[r * cols + c]) * d[c / 32] / 2;
                    double tol = bound * 1.0001 + 2e-5 * mag[t * rows + r] + 1e-30;
                    float e = expected[t * rows + r], a = actual[t * rows + r];
                    Assert.True(Math.Abs(e - a) <= tol, $"{type} {rows}x{cols} t={t} r={r}: fp32 {e}, int8 {a}, bound {tol}");
                }
            }
        }
    }

    /// <summary>The batched path widens weights exactly, so it is the fp32 scalar twin up to summation order.</summary>
    [Theory]
    [MemberData(nameof(Cases))]
    public void OuterMatchesDequantizedScalar(DType type, int rows, int cols)
    {
        using var w = new BlockWeights(type, rows, cols, seed: rows * 13 + cols);
        var wf = w.Dequantized();
        foreach (int tokens in TokenCounts)
        {
            var x = NativeWeights.Floats(tokens * cols, seed: tokens + 7);
            var expected = new float[tokens * rows];
            var actual = new float[tokens * rows];
            MatMul.Scalar(w.W, x, expected, tokens);
            actual.AsSpan().Fill(float.NaN);
            Outer(w.W, x, actual, tokens);
            MatMulTests.AssertClose(expected, actual, Magnitude(wf, rows, cols, x, tokens), $"{type} {rows}x{cols} tokens={tokens}");
        }
    }
}
