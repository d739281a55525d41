using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Daop.Kernels.Cpu.Gemm;

namespace Daop.Kernels.Cpu.Quant;

/// <summary>
/// A K-quant weight format (<see cref="DType.Q4_K"/>, <see cref="DType.Q5_K"/>, <see cref="DType.Q6_K"/>) as the int8
/// kernels of <see cref="KQuantGemm{TK}"/> see it: a super-block of 256 unpacks into <see cref="KUnpacked"/> (unsigned
/// integers, per-run scales as int16 words, mins), which is then dotted with each token's activations.
/// </summary>
internal unsafe interface IKQuantFormat
{
    /// <summary>The descriptor value.</summary>
    static abstract DType Type { get; }

    /// <summary>Bytes per super-block.</summary>
    static abstract int BlockBytes { get; }

    /// <summary>Whether weights carry a min (x = d·s·q − dmin·m: Q4_K, Q5_K) rather than an offset of 32 (Q6_K).</summary>
    static abstract bool HasMin { get; }

    /// <summary>The super-block at <paramref name="sb"/> into <paramref name="u"/>.</summary>
    static abstract void Unpack(byte* sb, KUnpacked* u);
}

/// <summary>
/// One K-quant super-block made ready for int8 dots: weight i of sub-block j (32 columns) is
/// D · W(run) · (U[32j + i] − Offset) − Min[j], where run 2j covers i &lt; 16 and 2j+1 the rest, Offset is 32 for Q6_K
/// (0 with Min for Q4_K and Q5_K).
/// </summary>
internal unsafe struct KUnpacked
{
    /// <summary>The 256 unsigned integers (0..15, 0..31 or 0..63) in column order.</summary>
    public fixed byte U[256];
    /// <summary>Per sub-block j, 16 int16 words: its first run's integer scale 8 times, then its second run's.</summary>
    public fixed short W[128];
    /// <summary>Q6_K: the 16 run scales (for the −32·Σx correction).</summary>
    public fixed short S16[16];
    /// <summary>Q4_K, Q5_K: dmin·m_j per sub-block.</summary>
    public fixed float Min[8];
    /// <summary>The super-block scale d.</summary>
    public float D;

    /// <summary>Writes sub-block j's scale words for one scale on both runs.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void SetScale(int j, int s)
    {
        fixed (short* w = W) Vector256.Create((short)s).Store(w + 16 * j);
    }

    /// <summary>Writes sub-block j's scale words for two runs' scales.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void SetScales(int j, int s0, int s1)
    {
        fixed (short* w = W) Vector256.Create(Vector128.Create((short)s0), Vector128.Create((short)s1)).Store(w + 16 * j);
    }
}

/// <summary>The 6-bit scales and mins shared by Q4_K and Q5_K.</summary>
internal static unsafe class KScales
{
    /// <summary>
    /// Reads d, dmin and the 12 packed scale bytes at <paramref name="sb"/> into <paramref name="u"/> (ggml's
    /// get_scale_min_k4, four sub-blocks at a time: bytes 0–3 hold s_0..3 and the top bits of s_4..7, bytes 4–7 the same
    /// for the mins, bytes 8–11 the low nibbles of s_4..7 and m_4..7).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Unpack(byte* sb, KUnpacked* u)
    {
        uint a = Unsafe.ReadUnaligned<uint>(sb + 4), b = Unsafe.ReadUnaligned<uint>(sb + 8), c = Unsafe.ReadUnaligned<uint>(sb + 12);
        uint s03 = a & 0x3F3F3F3F, m03 = b & 0x3F3F3F3F;
        uint s47 = (c & 0x0F0F0F0F) | (a >> 2 & 0x30303030), m47 = (c >> 4 & 0x0F0F0F0F) | (b >> 2 & 0x30303030);
        float d = HalfBits.ToSingleFinite(*(ushort*)sb), dmin = HalfBits.ToSingleFinite(*(ushort*)(sb + 2));
        u->D = d;
        for (int j = 0; j < 4; j++)
        {
            u->SetScale(j, (int)(s03 >> 8 * j & 0xFF));
            u->SetScale(j + 4, (int)(s47 >> 8 * j & 0xFF));
            u->Min[j] = dmin * (m03 >> 8 * j & 0xFF);
            u->Min[j + 4] = dmin * (m47 >> 8 * j & 0xFF);
        }
    }
}

/// <summary>Row widening for the K-quants, through <see cref="IKQuantFormat.Unpack"/>: BlockQuant's fp32 products, bit for bit.</summary>
internal static unsafe class KWidening
{
    /// <summary>A whole row of dst.Length columns (a multiple of 256).</summary>
    [SkipLocalsInit]
    public static void Row<TK>(byte* row, Span<float> dst) where TK : struct, IKQuantFormat
    {
        KUnpacked u;
        int offset = TK.HasMin ? 0 : 32;
        for (int b = 0; b < dst.Length / 256; b++)
        {
            TK.Unpack(row + (nint)b * TK.BlockBytes, &u);
            var o = dst.Slice(256 * b, 256);
            for (int k = 0; k < 16; k++)
            {
                float scale = u.D * u.W[8 * k], min = TK.HasMin ? u.Min[k >> 1] : 0f;
                for (int i = 0; i < 16; i++) o[16 * k + i] = scale * (u.U[16 * k + i] - offset) - min;
            }
        }
    }
}
