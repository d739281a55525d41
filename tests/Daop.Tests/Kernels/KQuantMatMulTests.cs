using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Daop.Kernels;
using Daop.Kernels.Cpu;
using Daop.Kernels.Cpu.Quant;
using Daop.Kernels.Quant;

namespace Daop.Tests.Kernels;

/// <summary>The K-quant int8 kernels (GEMV, GEMM, fused gate/up, row widening) against their scalar twins.</summary>
public unsafe class KQuantMatMulTests
{
    static readonly DType[] Types = [DType.Q2_K, DType.Q3_K, DType.Q4_K, DType.Q5_K, DType.Q6_K];
    static readonly int[] TokenCounts = [1, 2, 3, 4, 5, 17, 33, 64, 70];

    /// <summary>Random super-blocks: random quant and scale bytes, fp16 d (and dmin) of either sign around 1e-3.</summary>
    internal static BlockWeights Random(DType type, int rows, int cols, int seed)
    {
        var rng = new Random(seed);
        var bytes = new byte[rows * type.RowBytes(cols)];
        rng.NextBytes(bytes);
        int bb = type.BlockBytes();
        for (int o = 0; o < bytes.Length; o += bb)
        {
            int[] halves = type switch { DType.Q6_K => [208], DType.Q3_K => [108], DType.Q2_K => [80, 82], _ => [0, 2] };
            foreach (int h in halves)
            {
                var v = (Half)((rng.NextDouble() * 2 - 1) * 2e-3);
                BitConverter.TryWriteBytes(bytes.AsSpan(o + h, 2), BitConverter.HalfToUInt16Bits(v));
            }
        }
        return new BlockWeights(type, rows, cols, bytes);
    }

    public static TheoryData<DType, int, int> Cases()
    {
        var data = new TheoryData<DType, int, int>();
        foreach (var t in Types)
            foreach (int rows in new[] { 1, 7, 33 })
                foreach (int cols in new[] { 256, 768 }) data.Add(t, rows, cols);
        return data;
    }

    /// <summary>Every path: the widest (AVX-512BW where the machine has it), 256-bit (with AVX-VNNI where it has that, and without), scalar.</summary>
    static IEnumerable<KQuantPath> Paths()
    {
        yield return KQuantPath.Best;
        if (Avx2Support.IsSupported) yield return KQuantPath.Avx2;
        if (Avx2Support.IsSupported && AvxVnni.IsSupported) yield return KQuantPath.Avx2NoVnni;
        yield return KQuantPath.Scalar;
    }

    static void Int8(KQuantPath path, in WeightMatrix w, float[] x, float[] y, int tokens)
    {
        fixed (float* px = x, py = y)
        {
            switch (w.Type)
            {
                case DType.Q2_K: KQuantGemm<Q2_KFormat>.Forward(w, px, py, tokens, path); break;
                case DType.Q3_K: KQuantGemm<Q3_KFormat>.Forward(w, px, py, tokens, path); break;
                case DType.Q4_K: KQuantGemm<Q4_KFormat>.Forward(w, px, py, tokens, path); break;
                case DType.Q5_K: KQuantGemm<Q5_KFormat>.Forward(w, px, py, tokens, path); break;
                default: KQuantGemm<Q6_KFormat>.Forward(w, px, py, tokens, path); break;
            }
        }
    }

    /// <summary>Σ_runs |d_x|·(|scale|·Σ|q·x_q| + |min|·Σ|x_q|) per output: the scale of the int8 path's fp32 rounding.</summary>
    static float[] Magnitude(in WeightMatrix w, float[] x, int tokens)
    {
        int cols = w.Cols, bb = w.Type.BlockBytes();
        var q = new sbyte[cols];
        var d = new float[cols / 256];
        var wq = new int[16];
        var m = new float[tokens * w.Rows];
        for (int t = 0; t < tokens; t++)
        {
            KActivations.QuantizeRow(x.AsSpan(t * cols, cols), q, d);
            for (int r = 0; r < w.Rows; r++)
            {
                var row = w.RowBytesSpan(r);
                double s = 0;
                for (int c = 0; c < cols; c += 16)
                {
                    BlockQuant.KRun(w.Type, row.Slice(c / 256 * bb, bb), c % 256 / 16, wq, out float scale, out float min);
                    double dot = 0, sum = 0;
                    for (int i = 0; i < 16; i++)
                    {
                        dot += Math.Abs(wq[i] * q[c + i]);
                        sum += Math.Abs(q[c + i]);
                    }
                    s += Math.Abs(d[c / 256]) * (Math.Abs(scale) * dot + Math.Abs(min) * sum);
                }
                m[t * w.Rows + r] = (float)s;
            }
        }
        return m;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Int8MatchesScalarTwin(DType type, int rows, int cols)
    {
        using var w = Random(type, rows, cols, seed: rows * 31 + cols);
        foreach (int tokens in TokenCounts)
        {
            var x = NativeWeights.Floats(tokens * cols, seed: tokens);
            var expected = new float[tokens * rows];
            QuantMatMul.Scalar(w.W, x, expected, tokens);
            var mag = Magnitude(w.W, x, tokens);
            foreach (var path in Paths())
            {
                var actual = new float[tokens * rows];
                actual.AsSpan().Fill(float.NaN); // every output must be written
                Int8(path, w.W, x, actual, tokens);
                MatMulTests.AssertClose(expected, actual, mag, $"{type} {rows}x{cols} tokens={tokens} path={path}");
            }
            if (tokens >= QuantMatMul.OuterMinTokens(type)) continue; // MatMul.Forward takes the fp32 panels (OuterMatchesDequantizedScalar)
            var viaMatMul = new float[tokens * rows];
            MatMul.Forward(w.W, x, viaMatMul, tokens);
            MatMulTests.AssertClose(expected, viaMatMul, mag, $"{type} {rows}x{cols} tokens={tokens} MatMul.Forward");
        }
    }

    /// <summary>
    /// The AVX-VNNI dots (<c>vpdpbusd</c> per sub-block, packed to int16 by pairs) sum the same integers per super-block
    /// as <c>vpmaddubsw</c>/<c>vpmaddwd</c>, over other lanes (so the fp32 sums differ in order only), one row or many,
    /// and nothing saturates at the int16 edge: every quant at its largest and every activation at ±127 (a sub-block
    /// lane's dot at 4·63·127 for Q6_K), where a saturated word would be off by far more than rounding.
    /// </summary>
    [Theory]
    [InlineData(DType.Q2_K)]
    [InlineData(DType.Q3_K)]
    [InlineData(DType.Q4_K)]
    [InlineData(DType.Q5_K)]
    [InlineData(DType.Q6_K)]
    public void VnniDotsMatchPlainDots(DType type)
    {
        if (!Avx2Support.IsSupported || !AvxVnni.IsSupported) return;
        foreach (bool extreme in new[] { false, true })
            foreach (int rows in new[] { 1, 7, 34 })
            {
                const int cols = 768;
                using var w = Random(type, rows, cols, seed: rows);
                if (extreme) Saturate(w);
                foreach (int tokens in new[] { 1, 2, 3, 15 })
                {
                    var x = NativeWeights.Floats(tokens * cols, seed: tokens);
                    if (extreme)
                        for (int i = 0; i < x.Length; i++) x[i] = (i / 256 + i / cols) % 2 == 0 ? 1f : -1f; // one sign per super-block
                    var vnni = new float[tokens * rows];
                    var plain = new float[tokens * rows];
                    Int8(KQuantPath.Avx2, w.W, x, vnni, tokens);
                    Int8(KQuantPath.Avx2NoVnni, w.W, x, plain, tokens);
                    var expected = new float[tokens * rows];
                    QuantMatMul.Scalar(w.W, x, expected, tokens);
                    var mag = Magnitude(w.W, x, tokens);
                    string what = $"{type} extreme={extreme} rows={rows} tokens={tokens}";
                    MatMulTests.AssertClose(plain, vnni, mag, what + " VNNI vs plain");
                    MatMulTests.AssertClose(expected, vnni, mag, what + " VNNI vs scalar twin");
                }
            }
    }

    /// <summary>Every quant byte of <paramref name="w"/> set to all ones (the largest integers), its scales and d left as they are.</summary>
    static void Saturate(BlockWeights w)
    {
        var (start, length) = w.W.Type switch
        {
            DType.Q4_K => (16, 128), DType.Q5_K => (16, 160), DType.Q6_K => (0, 192), DType.Q3_K => (0, 96), _ => (16, 64),
        };
        int bb = w.W.Type.BlockBytes();
        for (long o = 0; o < w.W.ByteLength; o += bb)
            new Span<byte>(w.W.Data + o + start, length).Fill(0xFF);
    }

    /// <summary>
    /// The 512-bit unpacking of two sub-blocks equals the 256-bit one of each, for every pair, in optimized code (where
    /// .NET 10's JIT once mis-encoded a broadcast load's offset).
    /// </summary>
    [Theory]
    [InlineData(DType.Q2_K)]
    [InlineData(DType.Q3_K)]
    [InlineData(DType.Q4_K)]
    [InlineData(DType.Q5_K)]
    [InlineData(DType.Q6_K)]
    public void QuantPairEqualsTwoQuants(DType type)
    {
        if (!Avx512BW.IsSupported) return;
        using var w = Random(type, 1, 1024, seed: 11);
        for (int b = 0; b < 4; b++)
            for (int r = 0; r < 4; r++)
            {
                byte* sb = w.W.Data + b * type.BlockBytes();
                var (pair, lo, hi) = Unpack(type, sb, r);
                Assert.True(Vector512.Create(lo, hi) == pair, $"{type} super-block {b} pair {r}: {pair} vs {lo} {hi}");
            }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static (Vector512<byte>, Vector256<byte>, Vector256<byte>) Unpack(DType type, byte* sb, int r) => type switch
    {
        DType.Q2_K => (Q2_KFormat.QuantPair(sb, r), Q2_KFormat.Quants(sb, 2 * r), Q2_KFormat.Quants(sb, 2 * r + 1)),
        DType.Q3_K => (Q3_KFormat.QuantPair(sb, r), Q3_KFormat.Quants(sb, 2 * r), Q3_KFormat.Quants(sb, 2 * r + 1)),
        DType.Q4_K => (Q4_KFormat.QuantPair(sb, r), Q4_KFormat.Quants(sb, 2 * r), Q4_KFormat.Quants(sb, 2 * r + 1)),
        DType.Q5_K => (Q5_KFormat.QuantPair(sb, r), Q5_KFormat.Quants(sb, 2 * r), Q5_KFormat.Quants(sb, 2 * r + 1)),
        _ => (Q6_KFormat.QuantPair(sb, r), Q6_KFormat.Quants(sb, 2 * r), Q6_KFormat.Quants(sb, 2 * r + 1)),
    };

    /// <summary>Against fp32 math on the dequantized weights, only x's quantization (≤ d_x/2 per element) separates them.</summary>
    [Theory]
    [InlineData(DType.Q2_K)]
    [InlineData(DType.Q3_K)]
    [InlineData(DType.Q4_K)]
    [InlineData(DType.Q5_K)]
    [InlineData(DType.Q6_K)]
    public void Int8IsCloseToDequantizedFp32(DType type)
    {
        const int rows = 9, cols = 512, tokens = 3;
        using var w = Random(type, rows, cols, seed: 5);
        var wf = w.Dequantized();
        var x = NativeWeights.Floats(tokens * cols, seed: 9);
        var actual = new float[tokens * rows];
        MatMul.Forward(w.W, x, actual, tokens);
        var q = new sbyte[cols];
        var d = new float[cols / 256];
        for (int t = 0; t < tokens; t++)
        {
            KActivations.QuantizeRow(x.AsSpan(t * cols, cols), q, d);
            for (int r = 0; r < rows; r++)
            {
                double e = 0, bound = 0;
                for (int c = 0; c < cols; c++)
                {
                    e += (double)x[t * cols + c] * wf[r * cols + c];
                    bound += d[c / 256] / 2 * Math.Abs(wf[r * cols + c]);
                }
                Assert.True(Math.Abs(e - actual[t * rows + r]) <= bound * 1.001 + 1e-6, $"{type} t={t} r={r}: fp32 {e}, int8 {actual[t * rows + r]}, bound {bound}");
            }
        }
    }

    /// <summary>The fp32 panel path (large batches) on the exactly widened weights: the dequantized scalar twin up to summation order.</summary>
    [Theory]
    [InlineData(DType.Q2_K)]
    [InlineData(DType.Q3_K)]
    [InlineData(DType.Q4_K)]
    [InlineData(DType.Q5_K)]
    [InlineData(DType.Q6_K)]
    public void OuterMatchesDequantizedScalar(DType type)
    {
        foreach (var (rows, cols, tokens) in new[] { (7, 256, 1), (33, 768, 5), (20, 512, 100) })
        {
            using var w = Random(type, rows, cols, seed: rows + cols);
            var x = NativeWeights.Floats(tokens * cols, seed: tokens);
            var expected = new float[tokens * rows];
            MatMul.Scalar(w.W, x, expected, tokens);
            var wf = w.Dequantized();
            var mag = new float[tokens * rows];
            for (int t = 0; t < tokens; t++)
                for (int r = 0; r < rows; r++)
                    for (int c = 0; c < cols; c++) mag[t * rows + r] += Math.Abs(x[t * cols + c] * wf[r * cols + c]);
            var actual = new float[tokens * rows];
            fixed (float* px = x, py = actual)
            {
                switch (type)
                {
                    case DType.Q2_K: QuantMatMul.Outer<Q2_KFormat>(w.W, px, py, tokens); break;
                    case DType.Q3_K: QuantMatMul.Outer<Q3_KFormat>(w.W, px, py, tokens); break;
                    case DType.Q4_K: QuantMatMul.Outer<Q4_KFormat>(w.W, px, py, tokens); break;
                    case DType.Q5_K: QuantMatMul.Outer<Q5_KFormat>(w.W, px, py, tokens); break;
                    default: QuantMatMul.Outer<Q6_KFormat>(w.W, px, py, tokens); break;
                }
            }
            MatMulTests.AssertClose(expected, actual, mag, $"{type} {rows}x{cols} tokens={tokens} outer");
            if (tokens < QuantMatMul.OuterMinTokens(type)) continue;
            var viaMatMul = new float[tokens * rows];
            MatMul.Forward(w.W, x, viaMatMul, tokens);
            MatMulTests.AssertClose(expected, viaMatMul, mag, $"{type} {rows}x{cols} tokens={tokens} MatMul.Forward");
        }
    }

    /// <summary>MatMul.WidenRow (the embedding lookup's path) gives BlockQuant's values bit for bit.</summary>
    [Theory]
    [InlineData(DType.Q2_K)]
    [InlineData(DType.Q3_K)]
    [InlineData(DType.Q4_K)]
    [InlineData(DType.Q5_K)]
    [InlineData(DType.Q6_K)]
    public void WidenRowEqualsReference(DType type)
    {
        using var w = Random(type, 3, 512, seed: 3);
        var want = w.Dequantized();
        var row = new float[512];
        for (int r = 0; r < 3; r++)
        {
            MatMul.WidenRow(w.W, r, row);
            for (int c = 0; c < 512; c++)
                Assert.Equal(BitConverter.SingleToUInt32Bits(want[r * 512 + c]), BitConverter.SingleToUInt32Bits(row[c]));
        }
    }

    /// <summary>The fused gate/up + SwiGLU path and the down projection of an expert against the same ops one by one.</summary>
    [Theory]
    [InlineData(DType.Q4_K, 1)]
    [InlineData(DType.Q5_K, 3)]
    [InlineData(DType.Q6_K, 31)]
    [InlineData(DType.Q4_K, 40)]
    [InlineData(DType.Q2_K, 17)]
    public void ExpertFfnMatchesUnfusedOps(DType type, int tokens)
    {
        const int hidden = 256, inter = 512;
        using var gate = Random(type, inter, hidden, 1);
        using var up = Random(type, inter, hidden, 2);
        using var down = Random(DType.Q6_K, hidden, inter, 3);
        var x = NativeWeights.Floats(tokens * hidden, seed: 4);
        var y = new float[tokens * hidden];
        ExpertFfn.Forward(gate.W, up.W, down.W, x, y, tokens, new float[2 * tokens * inter]);
        var g = new float[tokens * inter];
        var u = new float[tokens * inter];
        MatMul.Forward(gate.W, x, g, tokens);
        MatMul.Forward(up.W, x, u, tokens);
        SwiGlu.Forward(g, u);
        var want = new float[tokens * hidden];
        MatMul.Forward(down.W, g, want, tokens);
        for (int i = 0; i < want.Length; i++) Assert.Equal(want[i], y[i], 1e-5f * (1 + Math.Abs(want[i])));
    }

    [Fact]
    public void RowsMustBeWholeSuperBlocks()
    {
        var e = Assert.Throws<ArgumentException>(() => new WeightMatrix(null, DType.Q4_K, 2, 96));
        Assert.Contains("256", e.Message);
    }
}
