using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Daop.Kernels.Cpu.Gemm;

namespace Daop.Kernels.Cpu.Quant;

/// <summary>
/// A K-quant weight format (<see cref="DType.Q2_K"/> .. <see cref="DType.Q6_K"/>) as the int8 kernels of
/// <see cref="KQuantGemm{TK}"/> see it: sub-block j (32 columns) of a super-block is 32 unsigned integers
/// (<see cref="Quants"/>) and its scales (<see cref="Scales"/>); weight i is d·s·(q − <see cref="Offset"/>) − min, with s
/// per sub-block (Q4_K, Q5_K: 6-bit, and a min dmin·m) or per run of 16 (Q6_K: int8, offset 32, no min; Q3_K: 6-bit,
/// offset 4; Q2_K: 4-bit, and a 4-bit min per run).
/// </summary>
internal unsafe interface IKQuantFormat : IPanelFormat
{
    /// <summary>The descriptor value.</summary>
    static abstract DType Type { get; }

    /// <summary>Bytes per super-block.</summary>
    static abstract int BlockBytes { get; }

    /// <summary>Whether weights carry a min (Q4_K, Q5_K) rather than an offset (Q6_K).</summary>
    static abstract bool HasMin { get; }

    /// <summary>Subtracted from each unsigned integer: 0, or 32 for Q6_K.</summary>
    static abstract int Offset { get; }

    /// <summary>Whether each run of 16 has its own scale (Q6_K, Q3_K, Q2_K) rather than each sub-block of 32 (Q4_K, Q5_K).</summary>
    static abstract bool PerRun { get; }

    /// <summary>Sub-block <paramref name="j"/> (0..7) of the super-block at <paramref name="sb"/>: its 32 unsigned integers in column order.</summary>
    static abstract Vector256<byte> Quants(byte* sb, int j);

    /// <summary>
    /// Sub-blocks 2<paramref name="r"/> and 2r+1 (r 0..3) as 64 unsigned integers in column order: <see cref="Quants"/> of
    /// both in one 512-bit register (AVX-512BW; only called where <see cref="KQuantGemm{TK}"/> runs its 512-bit path).
    /// </summary>
    static abstract Vector512<byte> QuantPair(byte* sb, int r);

    /// <summary>
    /// The super-block's scales as <see cref="KScaleSet"/> lays them out.
    /// </summary>
    static abstract void Scales(byte* sb, out KScaleSet s);

    /// <summary>K-quant formats yield columns in order.</summary>
    static bool IPanelFormat.Interleaved => false;
}

/// <summary>
/// A K-quant format that names itself (<typeparamref name="TSelf"/>, the struct), so that the row widening every K-quant
/// shares (<see cref="KWidening"/>) is written once here rather than forwarded from each struct (as
/// <see cref="IBlockFormat{TSelf}"/> for the 32-blocks).
/// </summary>
internal unsafe interface IKQuantFormat<TSelf> : IKQuantFormat where TSelf : struct, IKQuantFormat<TSelf>
{
    static float IPanelFormat.Widen(byte* row, int c) => KWidening.Element<TSelf>(row, c);

    static void IPanelFormat.WidenRow(byte* row, Span<float> dst) => KWidening.Row<TSelf>(row, dst);

    static void IPanelFormat.WidenPanel<TS, TV>(byte* row, int cols, int kb, int kl, float* d) => KWidening.Panel<TSelf>(row, kb, kl, d);
}

/// <summary>
/// A super-block's scales for the int8 dot, as int16. A, the dot's scale words: word j of each 128-bit half holds sub-block
/// j's scale for its two runs: Q4_K/Q5_K [s0..s7 | s0..s7], the per-run formats (Q6_K, Q3_K, Q2_K) [s0 s2 .. s14 | s1 s3
/// .. s15]. B, what multiplies the activation sums: Q4_K/Q5_K the sub-block mins [m0..m7 | 0], Q2_K the run mins [m0 ..
/// m15], Q6_K/Q3_K the run scales [s0 .. s15] (for the offset's correction). D = d, DMin = dmin. Four fields, so the JIT
/// keeps it in registers.
/// </summary>
internal struct KScaleSet
{
    public Vector256<short> A, B;
    public float D, DMin;

    /// <summary>The integer scale of run <paramref name="k"/> (0..15; both runs of a sub-block share one in Q4_K/Q5_K).</summary>
    public readonly int RunScale<TK>(int k) where TK : struct, IKQuantFormat => A.GetElement(TK.PerRun ? (k & 1) * 8 + (k >> 1) : k >> 1);

    /// <summary>Run <paramref name="k"/>'s min dmin·m (Q4_K/Q5_K: its sub-block's; Q2_K: its own); 0 without mins.</summary>
    public readonly float RunMin<TK>(int k) where TK : struct, IKQuantFormat => TK.HasMin ? DMin * B.GetElement(TK.PerRun ? k : k >> 1) : 0f;
}

/// <summary>The 6-bit scales and mins shared by Q4_K and Q5_K.</summary>
internal static unsafe class KScales
{
    /// <summary>
    /// d, dmin and the 12 packed scale bytes at <paramref name="sb"/> (ggml's get_scale_min_k4, four sub-blocks at a time:
    /// bytes 0–3 hold s_0..3 and the top bits of s_4..7, bytes 4–7 the same for the mins, bytes 8–11 the low nibbles of
    /// s_4..7 and m_4..7).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Read(byte* sb, out KScaleSet s)
    {
        if (Avx2.IsSupported)
        {
            // in vector registers: v = [d | dmin, a, b, c] (a, b, c: the scale bytes 0–3, 4–7, 8–11)
            var v = Vector128.Load((uint*)sb);
            // d and dmin to the top halves of lanes 0 and 1 (vpshufb; index 0x80 writes zero), widened together
            var dd = HalfBits.ToSingleFinite(Ssse3.Shuffle(v.AsByte(), Vector128.Create((byte)0x80, 0x80, 0, 1, 0x80, 0x80, 2, 3, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80)).AsUInt32());
            s.D = dd.ToScalar();
            s.DMin = dd.GetElement(1);
            var ab = Vector128.Shuffle(v, Vector128.Create(1u, 2, 1, 2));
            var cc = Avx2.ShiftRightLogicalVariable(Vector128.Shuffle(v, Vector128.Create(3u, 3, 3, 3)), Vector128.Create(0u, 4, 0, 4));
            var lo = ab & Vector128.Create(0x3F3F3F3Fu);                                                        // [s0–3, m0–3]
            var hi = (cc & Vector128.Create(0x0F0F0F0Fu)) | (Vector128.ShiftRightLogical(ab, 2) & Vector128.Create(0x30303030u)); // [s4–7, m4–7]
            var sm = Avx2.ConvertToVector256Int16(Sse2.UnpackLow(lo, hi).AsByte());                              // [s0–7 | m0–7]
            s.A = Avx2.Permute4x64(sm.AsInt64(), 0b01_00_01_00).AsInt16();
            s.B = Avx2.Permute2x128(sm, sm, 0x81);
            return;
        }
        s.D = HalfBits.ToSingleFinite(*(ushort*)sb);
        s.DMin = HalfBits.ToSingleFinite(*(ushort*)(sb + 2));
        uint a = Unsafe.ReadUnaligned<uint>(sb + 4), b = Unsafe.ReadUnaligned<uint>(sb + 8), c = Unsafe.ReadUnaligned<uint>(sb + 12);
        ulong sc = (a & 0x3F3F3F3Fu) | (ulong)((c & 0x0F0F0F0Fu) | (a >> 2 & 0x30303030u)) << 32;
        ulong mins = (b & 0x3F3F3F3Fu) | (ulong)((c >> 4 & 0x0F0F0F0Fu) | (b >> 2 & 0x30303030u)) << 32;
        var s8 = Bytes(sc);
        s.A = Vector256.Create(s8, s8);
        s.B = Vector256.Create(Bytes(mins), Vector128<short>.Zero);
    }

    /// <summary>
    /// 16 int8 run scales (Q6_K, Q3_K) as <see cref="KScaleSet"/> lays them out: B = [s0 .. s15], A = [s0 s2 .. s14 | s1 s3
    /// .. s15]; D and DMin zero (the caller sets D).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Runs(Vector128<sbyte> sc, out KScaleSet s)
    {
        s.D = s.DMin = 0;
        if (Avx2.IsSupported)
        {
            s.B = Avx2.ConvertToVector256Int16(sc);
            s.A = Avx2.ConvertToVector256Int16(Vector128.Shuffle(sc, Vector128.Create((sbyte)0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15)));
            return;
        }
        s.B = Vector256.Create((short)sc[0], (short)sc[1], (short)sc[2], (short)sc[3], (short)sc[4], (short)sc[5], (short)sc[6], (short)sc[7], (short)sc[8], (short)sc[9], (short)sc[10], (short)sc[11], (short)sc[12], (short)sc[13], (short)sc[14], (short)sc[15]);
        s.A = Vector256.Create((short)sc[0], (short)sc[2], (short)sc[4], (short)sc[6], (short)sc[8], (short)sc[10], (short)sc[12], (short)sc[14], (short)sc[1], (short)sc[3], (short)sc[5], (short)sc[7], (short)sc[9], (short)sc[11], (short)sc[13], (short)sc[15]);
    }

    /// <summary>16 unsigned bytes as 16 int16 lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<short> Words(Vector128<byte> v) =>
        Avx2.IsSupported ? Avx2.ConvertToVector256Int16(v).AsInt16()
            : Vector256.Create(Vector128.WidenLower(v).AsInt16(), Vector128.WidenUpper(v).AsInt16());

    /// <summary>The 8 bytes of <paramref name="v"/> as 8 int16 lanes.</summary>
    static Vector128<short> Bytes(ulong v) => Vector128.Create((short)(v & 0xFF), (short)(v >> 8 & 0xFF), (short)(v >> 16 & 0xFF), (short)(v >> 24 & 0xFF),
        (short)(v >> 32 & 0xFF), (short)(v >> 40 & 0xFF), (short)(v >> 48 & 0xFF), (short)(v >> 56));
}

/// <summary>
/// Widening for the K-quants (rows, panels, elements): BlockQuant's fp32 products, d·s first, times q − offset, minus the
/// min, bit for bit, so the fp32 panel GEMM computes on exactly the reference weights.
/// </summary>
internal static unsafe class KWidening
{
    /// <summary>A whole row of dst.Length columns (a multiple of 256).</summary>
    public static void Row<TK>(byte* row, Span<float> dst) where TK : struct, IKQuantFormat
    {
        fixed (float* d = dst) Blocks<TK>(row, 0, dst.Length / 256, d);
    }

    /// <summary>
    /// <see cref="IPanelFormat.WidenPanel"/>: the super-blocks of columns [<paramref name="kb"/>, kb + <paramref name="kl"/>)
    /// (kb a multiple of 256, the panel width of the fp32 GEMM) at d[kb..].
    /// </summary>
    public static void Panel<TK>(byte* row, int kb, int kl, float* d) where TK : struct, IKQuantFormat =>
        Blocks<TK>(row, kb / 256, (kb + kl + 255) / 256, d);

    /// <summary>Element <paramref name="c"/> of a row.</summary>
    public static float Element<TK>(byte* row, int c) where TK : struct, IKQuantFormat
    {
        byte* sb = row + (nint)(c / 256) * TK.BlockBytes;
        int i = c % 256, j = i / 32;
        TK.Scales(sb, out var s);
        return s.D * s.RunScale<TK>(i / 16) * (TK.Quants(sb, j).GetElement(i % 32) - TK.Offset) - s.RunMin<TK>(i / 16);
    }

    /// <summary>Super-blocks [<paramref name="b0"/>, <paramref name="b1"/>) of a row at d[256·b0 ..].</summary>
    static void Blocks<TK>(byte* row, int b0, int b1, float* d) where TK : struct, IKQuantFormat
    {
        var offset = Vector256.Create((float)TK.Offset);
        for (int b = b0; b < b1; b++)
        {
            byte* sb = row + (nint)b * TK.BlockBytes;
            TK.Scales(sb, out var s);
            float* o = d + 256 * (nint)b;
            for (int j = 0; j < 8; j++)
            {
                var (q0, q1) = Vector256.Widen(TK.Quants(sb, j));   // runs 2j and 2j+1 as 16 ushorts each
                var ma = Vector256.Create(s.RunMin<TK>(2 * j));
                var mc = Vector256.Create(s.RunMin<TK>(2 * j + 1));
                var sa = Vector256.Create(s.D * s.RunScale<TK>(2 * j));
                var sc = Vector256.Create(s.D * s.RunScale<TK>(2 * j + 1));
                var (a0, a1) = Vector256.Widen(q0);
                var (c0, c1) = Vector256.Widen(q1);
                // separate multiply and subtract (no fma), as the reference rounds twice
                (sa * (Vector256.ConvertToSingle(a0.AsInt32()) - offset) - ma).Store(o + 32 * j);
                (sa * (Vector256.ConvertToSingle(a1.AsInt32()) - offset) - ma).Store(o + 32 * j + 8);
                (sc * (Vector256.ConvertToSingle(c0.AsInt32()) - offset) - mc).Store(o + 32 * j + 16);
                (sc * (Vector256.ConvertToSingle(c1.AsInt32()) - offset) - mc).Store(o + 32 * j + 24);
            }
        }
    }
}
