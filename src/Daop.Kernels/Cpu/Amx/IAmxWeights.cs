using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Daop.Kernels.Cpu.Gemm;
using Daop.Kernels.Cpu.Quant;

namespace Daop.Kernels.Cpu.Amx;

/// <summary>
/// A weight format as <see cref="AmxBlockGemm{TU}"/> reads it: rows of blocks of 32 (or 16) columns, each of signed
/// integers q with a scale d and optionally a min m, w = d·q + m.
/// </summary>
internal unsafe interface IAmxWeights
{
    /// <summary>The descriptor value.</summary>
    static abstract DType Type { get; }

    /// <summary>The width must be a multiple of this (32, or a K-quant's 256-column super-block).</summary>
    static abstract int Columns { get; }

    /// <summary>Whether the tiles take this format here (a format can be switched off, or not supported at all).</summary>
    static abstract bool Enabled { get; }

    /// <summary>Columns per scale: 32, or 16 (Q6_K, Q3_K).</summary>
    static abstract int BlockColumns { get; }

    /// <summary>Whether blocks carry a min (only with 32-column blocks: x's sums are per 32).</summary>
    static abstract bool HasMin { get; }

    /// <summary>Whether a block's 32 values are signed bytes as stored, read by the tiles in place (Q8_0).</summary>
    static abstract bool Direct { get; }

    /// <summary><see cref="Direct"/> formats: bytes from one block's values to the next.</summary>
    static abstract int DirectStep { get; }

    /// <summary><see cref="Direct"/> formats: the values of block <paramref name="b0"/> of the row at <paramref name="row"/>.</summary>
    static abstract byte* DirectValues(byte* row, int b0);

    /// <summary>
    /// Columns [32·b0, 32·(b0 + nb)) of the row at <paramref name="row"/> (<paramref name="b0"/> a multiple of 8, nb ≤ 8):
    /// the scales of their blocks (of <see cref="BlockColumns"/>) to <paramref name="d"/> and mins to <paramref name="m"/>,
    /// and unless <see cref="Direct"/> their integers to <paramref name="q"/> in column order.
    /// </summary>
    static abstract void Prepare(byte* row, int b0, int nb, sbyte* q, float* d, float* m);
}

/// <summary>The 32-block formats: <see cref="IBlockFormat.Unpack1"/> less <see cref="IBlockFormat.Offset"/>; Q8_0 in place.</summary>
internal unsafe struct AmxBlocks<TB> : IAmxWeights where TB : struct, IBlockFormat
{
    static readonly Vector256<int> s_q8Scales = Vector256.Create(0, 34, 68, 102, 136, 170, 204, 238);

    public static DType Type => TB.Type;
    public static bool Enabled => true;
    public static int Columns => 32;
    public static int BlockColumns => 32;
    public static bool HasMin => TB.HasMin;
    public static bool Direct => TB.Type == DType.Q8_0;
    public static int DirectStep => TB.BlockBytes;
    public static byte* DirectValues(byte* row, int b0) => row + b0 * TB.BlockBytes + 2;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Prepare(byte* row, int b0, int nb, sbyte* q, float* d, float* m)
    {
        byte* blk = row + b0 * TB.BlockBytes;
        if (Direct)
        {
            if (nb == 8 && Avx2.IsSupported) // the 8 fp16 scales, 34 bytes apart, to the top halves of 8 lanes
                HalfBits.WidenFinite(Avx2.GatherVector256((int*)blk, s_q8Scales, 1).AsUInt32() << 16).Store(d);
            else
                for (int j = 0; j < nb; j++) d[j] = TB.Scale(blk + j * TB.BlockBytes);
            return;
        }
        for (int j = 0; j < nb; j++)
        {
            byte* b = blk + j * TB.BlockBytes;
            if (Avx2.IsSupported)
            {
                var v = TB.Unpack1(b, out var scale);
                if (TB.Offset != 0) v -= Vector256.Create((byte)TB.Offset);
                v.AsSByte().Store(q + 32 * j);
                d[j] = scale.ToScalar();
            }
            else
            {
                for (int k = 0; k < 32; k++) q[32 * j + k] = (sbyte)TB.Value(b, k);
                d[j] = TB.Scale(b);
            }
            if (TB.HasMin) m[j] = TB.Min(b);
        }
    }
}

/// <summary>
/// The K-quants by scale: Q4_K and Q5_K per sub-block of 32 (q unsigned ≤ 31, d = d_super·s_j, m = −dmin·m_j), Q6_K
/// and Q3_K per run of 16 (q less the offset, d = d_super·s_run, no min). Eight 32-column blocks are one super-block,
/// which is why <see cref="AmxBlockGemm{TU}"/> takes 8 a call. (Q2_K's per-run mins would need x's sums per 16; it stays
/// on the AVX paths.)
/// </summary>
internal unsafe struct AmxKBlocks<TK> : IAmxWeights where TK : struct, IKQuantFormat
{
    public static DType Type => TK.Type;
    public static int Columns => 256;
    public static int BlockColumns => TK.PerRun ? 16 : 32;
    public static bool HasMin => TK.HasMin;
    public static bool Direct => false;
    public static int DirectStep => 0;
    public static byte* DirectValues(byte* row, int b0) => null;

    /// <summary>
    /// Switched on (<see cref="AmxSupport.KQuants"/>) and not Q2_K, whose per-run mins would need x's sums per 16.
    /// </summary>
    public static bool Enabled => AmxSupport.KQuants && !(TK.PerRun && TK.HasMin);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Prepare(byte* row, int b0, int nb, sbyte* q, float* d, float* m)
    {
        byte* sb = row + (b0 >> 3) * TK.BlockBytes;
        TK.Scales(sb, out var s);
        for (int j = 0; j < 8; j++)
        {
            var v = TK.Quants(sb, j);
            if (TK.Offset != 0) v -= Vector256.Create((byte)TK.Offset);
            v.Store((byte*)q + 32 * j);
            if (TK.PerRun)
            {
                d[2 * j] = s.D * s.RunScale<TK>(2 * j);
                d[2 * j + 1] = s.D * s.RunScale<TK>(2 * j + 1);
            }
            else
            {
                d[j] = s.D * s.RunScale<TK>(2 * j);
                m[j] = -s.RunMin<TK>(2 * j);
            }
        }
    }
}
