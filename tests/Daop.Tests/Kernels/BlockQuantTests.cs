using Daop.Kernels;
using Daop.Kernels.Quant;

namespace Daop.Tests.Kernels;

public class BlockQuantTests
{
    static float[] Row(int n, int seed, float amplitude = 1)
    {
        var rnd = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => (float)(rnd.NextDouble() * 2 - 1) * amplitude).ToArray();
    }

    [Theory]
    [InlineData(DType.Q8_0, 34, 8.5)]
    [InlineData(DType.Q4_0, 18, 4.5)]
    [InlineData(DType.MXFP4, 17, 4.25)]
    public void Descriptor(DType t, int blockBytes, double bits)
    {
        Assert.Equal(32, t.BlockSize());
        Assert.Equal(blockBytes, t.BlockBytes());
        Assert.Equal(bits, t.BitsPerWeight());
        Assert.Equal(4096 / 32 * blockBytes, t.RowBytes(4096));
        Assert.Equal(5 * blockBytes, t.RowBytes(136)); // 4 whole blocks and a padded fifth
        Assert.True(DTypes.TryParse(t.Name(), out var back) && back == t);
        Assert.Throws<ArgumentException>(() => t.SizeOf());
    }

    /// <summary>Each element within its format's bound of the block's largest magnitude (see BlockQuant's remarks).</summary>
    [Theory]
    [InlineData(DType.Q8_0, 1 / 254.0 + 1e-3)]
    [InlineData(DType.Q4_0, 1 / 8.0 + 1e-3)]  // a/16 by rounding, up to a/8 where q clamps at 15 on the side opposite the extreme
    [InlineData(DType.MXFP4, 1 / 3.0)]
    public void RoundTripErrorIsBounded(DType t, double bound)
    {
        foreach (int n in new[] { 32, 64, 136, 4096 })
        {
            var x = Row(n, n, 0.05f);
            var q = new byte[t.RowBytes(n)];
            var y = new float[n];
            BlockQuant.QuantizeRow(t, x, q);
            BlockQuant.DequantizeRow(t, q, y);
            for (int b = 0; b < n; b += 32)
            {
                float amax = 0;
                for (int j = b; j < Math.Min(n, b + 32); j++) amax = Math.Max(amax, Math.Abs(x[j]));
                for (int j = b; j < Math.Min(n, b + 32); j++)
                    Assert.True(Math.Abs(x[j] - y[j]) <= bound * amax, $"{t} n={n} j={j}: {x[j]} -> {y[j]} (amax {amax})");
            }
        }
    }

    /// <summary>
    /// The vectorized Q8_0 quantizer writes the reference's bytes: random rows (a partial last block included), halves
    /// exactly on the rounding boundary (amax 127, so d = 1 and x·(1/d) = k + ½: away from zero, as roundf), zeros and signed zeros.
    /// </summary>
    [Theory]
    [InlineData(32)]
    [InlineData(40)]
    [InlineData(296)]
    [InlineData(14336)]
    public void VectorQ8_0EqualsTheReference(int cols)
    {
        var rng = new Random(cols);
        var x = new float[cols];
        for (int i = 0; i < cols; i++) x[i] = (float)(rng.NextDouble() * 2 - 1) * MathF.Pow(2, rng.Next(-20, 8));
        x[0] = 127;
        for (int i = 1; i < Math.Min(32, cols); i++) x[i] = (i % 2 == 0 ? 1 : -1) * (i + 0.5f);  // ties: ±(k + ½)
        if (cols > 64) { Array.Clear(x, 32, 32); x[33] = -0f; }                              // an all-zero block
        var want = new byte[DType.Q8_0.RowBytes(cols)];
        var got = new byte[want.Length];
        BlockQuant.QuantizeRow(DType.Q8_0, x, want);
        BlockQuant.QuantizeQ8_0(x, got);
        Assert.Equal(want, got);
        Assert.Equal(3, (sbyte)got[2 + 2]);    // 2.5 → 3, away from zero
        Assert.Equal(-4, (sbyte)got[2 + 3]);   // −3.5 → −4
    }

    [Fact]
    public void Q8_0HandComputed()
    {
        var x = new float[32];
        x[0] = 1.27f; x[1] = -0.635f; x[2] = 0.005f; x[3] = 0.015f;
        var q = new byte[34];
        BlockQuant.QuantizeRow(DType.Q8_0, x, q);
        Assert.Equal((Half)0.01f, BitConverter.UInt16BitsToHalf(BitConverter.ToUInt16(q, 0)));
        Assert.Equal(127, (sbyte)q[2]);
        Assert.Equal(-64, (sbyte)q[3]);  // −63.5 rounds away from zero
        Assert.Equal(1, (sbyte)q[4]);    //  0.5 rounds away from zero
        Assert.Equal(2, (sbyte)q[5]);    //  1.5
    }

    [Fact]
    public void Q4_0HandComputed()
    {
        var x = new float[32];
        x[0] = -0.8f;  // the signed extreme: d = −0.8 / −8 = 0.1, so it maps to q = 0
        x[1] = 0.7f;   // 0.7 / 0.1 + 8.5 = 15.5 → 15
        x[16] = 0.31f; // 3.1 + 8.5 = 11.6 → 11, high nibble of byte 0
        var q = new byte[18];
        BlockQuant.QuantizeRow(DType.Q4_0, x, q);
        Assert.Equal((Half)0.1f, BitConverter.UInt16BitsToHalf(BitConverter.ToUInt16(q, 0)));
        Assert.Equal(0 | 11 << 4, q[2]);
        Assert.Equal(15 | 8 << 4, q[3]);
        var y = new float[32];
        BlockQuant.DequantizeRow(DType.Q4_0, q, y);
        Assert.Equal(-0.8f, y[0], 3);
        Assert.Equal(0.7f, y[1], 3);
        Assert.Equal(0.3f, y[16], 3);
    }

    [Fact]
    public void Mxfp4HandComputed()
    {
        var x = new float[32];
        x[0] = 6f;      // amax 6: e = floor(log2 6) − 2 + 127 = 127, scale 1 (doubled codes, halved scale 0.5)
        x[1] = -1.4f;   // nearest of ±{0, .5, 1, 1.5, 2, 3, 4, 6}: −1.5, code 8 + 3 = 11
        x[17] = 2.6f;   // 3, code 5, high nibble of byte 1
        var q = new byte[17];
        BlockQuant.QuantizeRow(DType.MXFP4, x, q);
        Assert.Equal(127, q[0]);
        Assert.Equal(7, q[1] & 0xF);          // 6 = 12 · 0.5
        Assert.Equal(11 | 5 << 4, q[2]);
        var y = new float[32];
        BlockQuant.DequantizeRow(DType.MXFP4, q, y);
        Assert.Equal([6f, -1.5f], y[..2]);
        Assert.Equal(3f, y[17]);
        Assert.Equal(0f, y[5]);
    }

    [Fact]
    public void ZeroBlocksStayZero()
    {
        foreach (var t in new[] { DType.Q8_0, DType.Q4_0, DType.MXFP4 })
        {
            var q = new byte[t.RowBytes(40)];
            var y = new float[40];
            BlockQuant.QuantizeRow(t, new float[40], q);
            BlockQuant.DequantizeRow(t, q, y);
            Assert.All(y, v => Assert.Equal(0f, v));
        }
    }
}

/// <summary>MXFP4's shortened nearest-code scan chooses what ggml's full scan of all 16 codes chooses, ties and edges included.</summary>
public class Mxfp4NearestTests
{
    // ggml's best_index_mxfp4 as written: the first code of smallest |x − d·v| over all 16.
    static int FullScan(float d, float x)
    {
        var values = BlockQuant.Fp4Doubled;
        float best = MathF.Abs(x - d * values[0]);
        int index = 0;
        for (int j = 1; j < 16; j++)
        {
            float diff = MathF.Abs(x - d * values[j]);
            if (diff < best) { best = diff; index = j; }
        }
        return index;
    }

    // QuantizeRow's codes of a block: element j's nibble.
    static int[] Codes(float[] block)
    {
        var q = new byte[17];
        BlockQuant.QuantizeRow(DType.MXFP4, block, q);
        return Enumerable.Range(0, 32).Select(j => j < 16 ? q[1 + j] & 0xF : q[1 + j - 16] >> 4).ToArray();
    }

    [Fact]
    public void MatchesTheFullScan()
    {
        var rnd = new Random(7);
        var values = BlockQuant.Fp4Doubled.ToArray();
        for (int trial = 0; trial < 20_000; trial++)
        {
            var block = new float[32];
            float scale = MathF.Pow(2, rnd.Next(-20, 20));
            for (int j = 0; j < 32; j++)
            {
                // Random values, exact midpoints between codes (ties), exact code values, zeros of both signs.
                int v1 = values[rnd.Next(16)], v2 = values[rnd.Next(16)];
                block[j] = rnd.Next(6) switch
                {
                    0 => (v1 + v2) / 4f * scale,
                    1 => v1 / 2f * scale,
                    2 => rnd.Next(2) == 0 ? 0f : -0f,
                    3 => (v1 / 2f + 0.25f) * scale * (1 + 1e-7f * rnd.Next(-2, 3)),
                    _ => (float)(rnd.NextDouble() * 2 - 1) * 6 * scale,
                };
            }
            block[rnd.Next(32)] = 6 * scale * (rnd.Next(2) == 0 ? 1 : -1);
            var q = new byte[17];
            BlockQuant.QuantizeRow(DType.MXFP4, block, q);
            float d = BlockQuant.E8m0Half(q[0]);
            var got = Codes(block);
            for (int j = 0; j < 32; j++)
                Assert.True(FullScan(d, block[j]) == got[j], $"x={block[j]:R} d={d:R}: full scan {FullScan(d, block[j])}, got {got[j]}");
        }
    }
}
