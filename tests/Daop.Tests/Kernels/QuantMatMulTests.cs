using Daop.Kernels;
using Daop.Kernels.Cpu;
using Daop.Kernels.Cpu.Quant;
using Daop.Kernels.Quant;

namespace Daop.Tests.Kernels;

public unsafe class QuantMatMulTests
{
    static readonly DType[] Types = [DType.Q8_0, DType.Q4_0, DType.MXFP4, DType.Q5_0, DType.Q4_1, DType.Q5_1, DType.IQ4_NL];
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
                case DType.Q5_0: QuantGemm<Q5_0Format>.Forward(w, px, py, tokens, scalar: isa == 0); break;
                case DType.Q4_1: QuantGemm<Q4_1Format>.Forward(w, px, py, tokens, scalar: isa == 0); break;
                case DType.Q5_1: QuantGemm<Q5_1Format>.Forward(w, px, py, tokens, scalar: isa == 0); break;
                case DType.IQ4_NL: QuantGemm<Iq4NlFormat>.Forward(w, px, py, tokens, scalar: isa == 0); break;
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
                case DType.Q5_0: QuantMatMul.Outer<Q5_0Format>(w, px, py, tokens); break;
                case DType.Q4_1: QuantMatMul.Outer<Q4_1Format>(w, px, py, tokens); break;
                case DType.Q5_1: QuantMatMul.Outer<Q5_1Format>(w, px, py, tokens); break;
                case DType.IQ4_NL: QuantMatMul.Outer<Iq4NlFormat>(w, px, py, tokens); break;
                default: QuantMatMul.Outer<Mxfp4Format>(w, px, py, tokens); break;
            }
        }
    }

    /// <summary>
    /// Σ_b |scale_w·d_x| · Σ_j |w_int·q| (+ |min_w·d_x|·Σ_j |q|) per output: the scale of the int8 path's fp32 rounding
    /// (its integer dots are exact, so only the block terms' products and sums round).
    /// </summary>
    internal static float[] Int8Magnitude(in WeightMatrix w, float[] x, int tokens)
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
                    long dot = 0, sum = 0;
                    for (int j = 0; j < 32; j++)
                    {
                        dot += Math.Abs(BlockQuant.Integer(w.Type, block, j) * q[b * 32 + j]);
                        sum += Math.Abs(q[b * 32 + j]);
                    }
                    s += Math.Abs((double)BlockQuant.BlockScale(w.Type, block) * d[b]) * dot + Math.Abs((double)BlockQuant.BlockMin(w.Type, block) * d[b]) * sum;
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

    /// <summary>The kernels' activation layout holds exactly the twin's values and scales, and the offset corrections.</summary>
    [Theory]
    [InlineData(DType.Q8_0)]
    [InlineData(DType.Q4_0)]
    [InlineData(DType.MXFP4)]
    [InlineData(DType.Q5_0)]
    [InlineData(DType.Q4_1)]
    [InlineData(DType.Q5_1)]
    [InlineData(DType.IQ4_NL)]
    public void ActivationsQuantizeAsTheTwin(DType type)
    {
        foreach (int cols in new[] { 32, 96, 136, 4096 })
        {
            const int tokens = 3;
            var x = NativeWeights.Floats(tokens * cols, seed: cols);
            x[5] = 0; x[cols - 1] = 1e-37f; // a zero, and a tiny value in the last block
            int blocks = (cols + 31) / 32, quads = (blocks + 3) / 4;
            var buffer = new float[QuantizedActivations.Floats(tokens, cols) + 16];
            fixed (float* px = x, pb = buffer)
            {
                float* aligned = (float*)(((nint)pb + 63) & ~(nint)63);
                var qa = type switch
                {
                    DType.Q8_0 => QuantizedActivations.Quantize<Q8_0Format>(px, cols, tokens, cols, aligned),
                    DType.Q4_0 => QuantizedActivations.Quantize<Q4_0Format>(px, cols, tokens, cols, aligned),
                    DType.Q5_0 => QuantizedActivations.Quantize<Q5_0Format>(px, cols, tokens, cols, aligned),
                    DType.Q4_1 => QuantizedActivations.Quantize<Q4_1Format>(px, cols, tokens, cols, aligned),
                    DType.Q5_1 => QuantizedActivations.Quantize<Q5_1Format>(px, cols, tokens, cols, aligned),
                    DType.IQ4_NL => QuantizedActivations.Quantize<Iq4NlFormat>(px, cols, tokens, cols, aligned),
                    _ => QuantizedActivations.Quantize<Mxfp4Format>(px, cols, tokens, cols, aligned),
                };
                var q = new sbyte[quads * 128];
                var d = new float[quads * 4];
                for (int t = 0; t < tokens; t++)
                {
                    QuantizedActivations.QuantizeRow(x.AsSpan(t * cols, cols), q, d);
                    sbyte* values = (sbyte*)qa.Values(t);
                    float* lanes = (float*)qa.Lanes(t);
                    for (int b = 0; b < quads * 4; b++)
                    {
                        int k = b & 3, sum = 0;
                        for (int j = 0; j < 32; j++)
                        {
                            sbyte want = b < blocks ? q[b * 32 + j] : (sbyte)0;
                            sum += want;
                            // the biased signed formats store q + 128 as a byte
                            Assert.Equal(Biased(type) ? (sbyte)(want ^ -128) : want, values[128 * (b >> 2) + XByte(type, k, j)]);
                        }
                        for (int l = 0; l < 8; l++)
                        {
                            if (LaneBlock(type, l) != k) continue;
                            Assert.Equal(b < blocks ? d[b] : 0f, lanes[16 * (b >> 2) + l]);
                            if (type is DType.Q4_1 or DType.Q5_1) // d·Σq/2 per lane, which the block's min multiplies
                                Assert.Equal(0.5f * (b < blocks ? d[b] : 0f) * sum, lanes[16 * (b >> 2) + 8 + l]);
                            else if (type is not (DType.Q8_0 or DType.IQ4_NL)) // the signed formats have no corrections
                                Assert.Equal(-(type switch { DType.Q4_0 => 8, DType.Q5_0 => 16, _ => 12 }) / 2 * sum, ((int*)lanes)[16 * (b >> 2) + 8 + l]);
                        }
                    }
                }
            }
        }
    }

    static int XByte(DType t, int k, int j) => t switch
    {
        DType.Q8_0 => Quad.XByte<Q8_0Format>(k, j),
        DType.Q5_0 => Quad.XByte<Q5_0Format>(k, j),
        DType.Q4_1 => Quad.XByte<Q4_1Format>(k, j),
        DType.Q5_1 => Quad.XByte<Q5_1Format>(k, j),
        DType.IQ4_NL => Quad.XByte<Iq4NlFormat>(k, j),
        DType.Q4_0 => Quad.XByte<Q4_0Format>(k, j),
        _ => Quad.XByte<Mxfp4Format>(k, j),
    };

    static bool Biased(DType t) => t switch
    {
        DType.Q8_0 => Quad.Biased<Q8_0Format>(),
        DType.IQ4_NL => Quad.Biased<Iq4NlFormat>(),
        _ => false,
    };

    static int LaneBlock(DType t, int l) => t switch
    {
        DType.Q8_0 => Quad.LaneBlock<Q8_0Format>(l),
        DType.Q5_0 => Quad.LaneBlock<Q5_0Format>(l),
        DType.Q4_1 => Quad.LaneBlock<Q4_1Format>(l),
        DType.Q5_1 => Quad.LaneBlock<Q5_1Format>(l),
        DType.IQ4_NL => Quad.LaneBlock<Iq4NlFormat>(l),
        DType.Q4_0 => Quad.LaneBlock<Q4_0Format>(l),
        _ => Quad.LaneBlock<Mxfp4Format>(l),
    };

    /// <summary>
    /// Hand-made blocks at the formats' limits (Q8_0 bytes −128 and 127, all nibbles and fifth bits 0 or 1, every E2M1
    /// code, fp16 scales and mins 65504, subnormal, zero and negative, E8M0 exponents 0, 1, 2 and 160) against activations of 1e20,
    /// 1e−30, 1e−37 (flushed) and zero: the int8 paths still match the twin.
    /// </summary>
    [Theory]
    [InlineData(DType.Q8_0)]
    [InlineData(DType.Q4_0)]
    [InlineData(DType.MXFP4)]
    [InlineData(DType.Q5_0)]
    [InlineData(DType.Q4_1)]
    [InlineData(DType.Q5_1)]
    [InlineData(DType.IQ4_NL)]
    public void ExtremeBlocksMatchTwin(DType type)
    {
        const int rows = 9, cols = 200; // 6.25 blocks: two quads, the second partial
        int bb = type.BlockBytes(), blocks = (cols + 31) / 32;
        var bytes = new byte[rows * blocks * bb];
        var rng = new Random(5);
        rng.NextBytes(bytes);
        ushort[] halves = [0x7BFF, 0x0001, 0x0000, 0xFBFF, 0x3C00, 0x8400, 0x2E66];
        byte[] exponents = [0, 1, 2, 160, 127, 100, 90];
        for (int r = 0; r < rows; r++)
            for (int b = 0; b < blocks; b++)
            {
                int o = (r * blocks + b) * bb, kind = (r + b) % 7;
                if (type == DType.MXFP4) bytes[o] = exponents[kind];
                else BitConverter.TryWriteBytes(bytes.AsSpan(o), halves[kind]);
                if (type is DType.Q4_1 or DType.Q5_1) BitConverter.TryWriteBytes(bytes.AsSpan(o + 2), halves[(kind + 3) % 7]);
                // the integers' bytes: Q8_0's 32, the nibbles (after the fifth bits for Q5_0 and Q5_1)
                var (at, n) = type switch { DType.Q8_0 => (2, 32), DType.MXFP4 => (1, 16), DType.Q4_0 or DType.IQ4_NL => (2, 16), DType.Q5_0 => (2, 20), _ => (4, bb - 4) };
                if (kind == 1) bytes.AsSpan(o + at, n).Fill(type == DType.Q8_0 ? (byte)0x80 : (byte)0xFF);
                if (kind == 2) bytes.AsSpan(o + at, n).Fill(type == DType.Q8_0 ? (byte)0x7F : (byte)0x00);
            }
        using var w = new BlockWeights(type, rows, cols, bytes);
        const int tokens = 5;
        var x = NativeWeights.Floats(tokens * cols, seed: 9);
        for (int c = 0; c < cols; c++)
        {
            x[c] *= 1e20f;                       // token 0: huge
            x[cols + c] *= 1e-30f;               // token 1: tiny
            x[2 * cols + c] *= 1e-37f;           // token 2: below the flush threshold
            x[3 * cols + c] = 0;                 // token 3: zero
            if (c % 32 == 7) x[4 * cols + c] = -127.5f; // token 4: an outlier per block
        }
        var expected = new float[tokens * rows];
        QuantMatMul.Scalar(w.W, x, expected, tokens);
        var mag = Int8Magnitude(w.W, x, tokens);
        for (int i = 0; i < mag.Length; i++) mag[i] += 1e-35f;
        foreach (int isa in Isas())
        {
            var actual = new float[tokens * rows];
            actual.AsSpan().Fill(float.NaN);
            Int8(isa, w.W, x, actual, tokens);
            MatMulTests.AssertClose(expected, actual, mag, $"{type} extremes isa={isa}");
            for (int r = 0; r < rows; r++) Assert.Equal(0f, actual[2 * rows + r]);
        }
    }

    /// <summary>Row widening is BlockQuant's dequantization, bit for bit, including a partial last block.</summary>
    [Theory]
    [InlineData(DType.Q8_0)]
    [InlineData(DType.Q4_0)]
    [InlineData(DType.MXFP4)]
    [InlineData(DType.Q5_0)]
    [InlineData(DType.Q4_1)]
    [InlineData(DType.Q5_1)]
    [InlineData(DType.IQ4_NL)]
    public void WidenRowIsTheReferenceDequantization(DType type)
    {
        foreach (int cols in new[] { 32, 64, 96, 136, 4096, 33, 1 })
        {
            using var w = new BlockWeights(type, 3, cols, seed: cols);
            var expected = new float[cols];
            var actual = new float[cols + 5];
            for (int r = 0; r < 3; r++)
            {
                BlockQuant.DequantizeRow(type, w.W.RowBytesSpan(r), expected);
                actual.AsSpan().Fill(float.NaN);
                MatMul.WidenRow(w.W, r, actual);
                for (int c = 0; c < cols; c++) Assert.Equal(BitConverter.SingleToInt32Bits(expected[c]), BitConverter.SingleToInt32Bits(actual[c]));
                Assert.True(float.IsNaN(actual[cols]), "WidenRow wrote past cols");
            }
        }
    }

    /// <summary>MatMul.Forward runs the int8 path below the batch threshold and the exact-widening GEMM from it on.</summary>
    [Theory]
    [InlineData(DType.Q8_0)]
    [InlineData(DType.Q4_0)]
    [InlineData(DType.MXFP4)]
    [InlineData(DType.Q5_0)]
    [InlineData(DType.Q4_1)]
    [InlineData(DType.Q5_1)]
    [InlineData(DType.IQ4_NL)]
    public void MatMulForwardPicksThePathByBatch(DType type)
    {
        using var w = new BlockWeights(type, 37, 136, seed: 3);
        var wf = w.Dequantized();
        foreach (int tokens in new[] { 1, 4, 31, 32, 70 })
        {
            var x = NativeWeights.Floats(tokens * 136, seed: tokens);
            var actual = new float[tokens * 37];
            MatMul.Forward(w.W, x, actual, tokens);
            var expected = new float[tokens * 37];
            if (tokens < QuantMatMul.OuterMinTokens(type))
            {
                QuantMatMul.Scalar(w.W, x, expected, tokens);
                MatMulTests.AssertClose(expected, actual, Int8Magnitude(w.W, x, tokens), $"{type} tokens={tokens}");
            }
            else
            {
                MatMul.Scalar(w.W, x, expected, tokens);
                MatMulTests.AssertClose(expected, actual, Magnitude(wf, 37, 136, x, tokens), $"{type} tokens={tokens}");
            }
        }
    }

    [Fact]
    public void ScalarTwinRejectsPlainTypes()
    {
        using var w = new NativeWeights(DType.BF16, 2, 32, 1);
        Assert.Throws<ArgumentException>(() => QuantMatMul.Scalar(w.W, new float[32], new float[2], 1));
    }
}
