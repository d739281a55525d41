namespace Daop.Kernels.Quant;

/// <summary>
/// The K-quants' reference dequantizers (<see cref="DType.Q2_K"/>, <see cref="DType.Q3_K"/>, <see cref="DType.Q4_K"/>,
/// <see cref="DType.Q5_K"/>, <see cref="DType.Q6_K"/>; their layouts are on the <see cref="DType"/> values). Written from
/// ggml's dequantize_row_q2_K .. q6_K and checked bit
/// for bit against them (tests/Daop.Tests/Kernels/KQuantTests.cs); Daop never writes K-quants.
/// </summary>
/// <remarks>
/// A super-block of 256 is read as 16 runs of 16 weights, x = <c>scale</c> · q − <c>min</c> with integer q: Q4_K and Q5_K
/// give runs 2j and 2j+1 the scale d·s_j and min dmin·m_j of their sub-block j of 32 (q 0..15 or 0..31), Q6_K gives run k
/// d·s_k and no min (q − 32 in −32..31), Q3_K run k d·(s_k − 32) and no min (q − 4 in −4..3), Q2_K run k d·s_k and
/// dmin·m_k (q 0..3). The fp32 products are ggml's: d·s_j first, then times q, then minus the min.
/// </remarks>
public static partial class BlockQuant
{
    /// <summary>Columns per K-quant super-block.</summary>
    public const int SuperBlock = 256;

    /// <summary>
    /// Run <paramref name="k"/> (0..15, elements 16k..16k+15) of one K-quant super-block: its 16 integers into
    /// <paramref name="q"/>, and the fp32 <paramref name="scale"/> and <paramref name="min"/> with x = scale · q − min.
    /// </summary>
    public static void KRun(DType type, ReadOnlySpan<byte> sb, int k, Span<int> q, out float scale, out float min)
    {
        int j = k >> 1;   // sub-block of 32
        int i0 = 16 * (k & 1);
        switch (type)
        {
            case DType.Q4_K or DType.Q5_K:
            {
                ScaleMin(sb.Slice(4, 12), j, out int s, out int m);
                scale = Scale16(sb) * s;
                min = Scale16(sb[2..]) * m;
                // Sub-block j: nibbles of the 32-byte run j/2, low for even j, high for odd.
                var qs = sb.Slice(type == DType.Q4_K ? 16 : 48 + 0, 128).Slice(32 * (j >> 1), 32);
                for (int i = 0; i < 16; i++)
                {
                    int b = qs[i0 + i];
                    int v = (j & 1) == 0 ? b & 15 : b >> 4;
                    if (type == DType.Q5_K) v |= (sb[16 + i0 + i] >> j & 1) << 4;
                    q[i] = v;
                }
                return;
            }
            case DType.Q6_K:
            {
                // Half h of 128; in it, quarter c of 32 (sub-block j = 4h + c).
                int h = j >> 2, c = j & 3;
                var ql = sb.Slice(64 * h, 64);
                var qh = sb.Slice(128 + 32 * h, 32);
                scale = Scale16(sb[208..]) * (sbyte)sb[192 + k];
                min = 0;
                for (int i = 0; i < 16; i++)
                {
                    int b = ql[i0 + i + 32 * (c & 1)];
                    int lo = c < 2 ? b & 15 : b >> 4;
                    int hi = qh[i0 + i] >> 2 * c & 3;
                    q[i] = (lo | hi << 4) - 32;
                }
                return;
            }
            case DType.Q3_K:
            {
                // Half h of 128, quarter c (sub-block j = 4h + c): low bits 2c, 2c+1 of the pair bytes, third bit j of hmask.
                int h = j >> 2, c = j & 3;
                scale = Scale16(sb[108..]) * (Q3Scale(sb.Slice(96, 12), k) - 32);
                min = 0;
                for (int i = 0; i < 16; i++)
                {
                    int lo = sb[32 + 32 * h + i0 + i] >> 2 * c & 3;
                    int hi = sb[i0 + i] >> j & 1;
                    q[i] = (lo | hi << 2) - 4;
                }
                return;
            }
            case DType.Q2_K:
            {
                // Half h of 128, quarter c (sub-block j = 4h + c): bits 2c, 2c+1 of the pair bytes at 16; run k's scale
                // byte k holds its scale (low nibble) and min (high).
                int h = j >> 2, c = j & 3;
                scale = Scale16(sb[80..]) * (sb[k] & 15);
                min = Scale16(sb[82..]) * (sb[k] >> 4);
                for (int i = 0; i < 16; i++) q[i] = sb[16 + 32 * h + i0 + i] >> 2 * c & 3;
                return;
            }
            default:
                throw new ArgumentException($"{type.Name()} is not a K-quant", nameof(type));
        }
    }

    /// <summary>
    /// The 6-bit scale <paramref name="s"/> and min <paramref name="m"/> of sub-block <paramref name="j"/> (0..7) from the
    /// 12 packed bytes of a Q4_K or Q5_K super-block (ggml's get_scale_min_k4).
    /// </summary>
    public static void ScaleMin(ReadOnlySpan<byte> packed, int j, out int s, out int m)
    {
        if (j < 4)
        {
            s = packed[j] & 63;
            m = packed[j + 4] & 63;
        }
        else
        {
            s = (packed[j + 4] & 15) | (packed[j - 4] >> 6) << 4;
            m = (packed[j + 4] >> 4) | (packed[j] >> 6) << 4;
        }
    }

    /// <summary>Q3_K's 6-bit scale <paramref name="k"/> (0..15, stored + 32) from its 12 packed bytes (ggml's aux shuffle).</summary>
    public static int Q3Scale(ReadOnlySpan<byte> packed, int k) =>
        (k < 8 ? packed[k & 7] & 15 : packed[k & 7] >> 4) | (packed[8 + (k & 3)] >> 2 * (k >> 2) & 3) << 4;

    static void DequantizeK(DType type, ReadOnlySpan<byte> src, Span<float> dst)
    {
        if (dst.Length % SuperBlock != 0)
            throw new ArgumentException($"a {type.Name()} row is whole super-blocks of {SuperBlock}, not {dst.Length} columns", nameof(dst));
        int bytes = type.BlockBytes();
        Span<int> q = stackalloc int[16];
        for (int b = 0; b < dst.Length / SuperBlock; b++)
        {
            var sb = src.Slice(b * bytes, bytes);
            for (int k = 0; k < 16; k++)
            {
                KRun(type, sb, k, q, out float scale, out float min);
                var o = dst.Slice(b * SuperBlock + 16 * k, 16);
                for (int i = 0; i < 16; i++) o[i] = scale * q[i] - min;
            }
        }
    }
}
