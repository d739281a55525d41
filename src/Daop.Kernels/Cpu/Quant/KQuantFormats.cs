using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Daop.Kernels.Cpu.Gemm;

namespace Daop.Kernels.Cpu.Quant;

/// <summary><see cref="DType.Q4_K"/>: run r of the 128 quant bytes (at byte 16) gives sub-block 2r its low nibbles, 2r+1 its high.</summary>
internal unsafe struct Q4_KFormat : IKQuantFormat<Q4_KFormat>
{
    public static DType Type => DType.Q4_K;
    public static int BlockBytes => 144;
    public static bool HasMin => true;
    public static int Offset => 0;
    public static bool PerRun => false;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<byte> Quants(byte* sb, int j)
    {
        var v = Vector256.Load(sb + 16 + 32 * (j >> 1));
        return (j & 1) == 0 ? v & Vector256.Create((byte)15) : Nibbles.High(v);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<byte> QuantPair(byte* sb, int r) => KPairs.Nibbles(sb + 16 + 32 * r);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Scales(byte* sb, out KScaleSet s) => KScales.Read(sb, out s);
}

/// <summary><see cref="DType.Q5_K"/>: Q4_K's nibbles (at byte 48) plus bit j of byte i of the 32 at byte 16 as 16s bit.</summary>
internal unsafe struct Q5_KFormat : IKQuantFormat<Q5_KFormat>
{
    public static DType Type => DType.Q5_K;
    public static int BlockBytes => 176;
    public static bool HasMin => true;
    public static int Offset => 0;
    public static bool PerRun => false;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<byte> Quants(byte* sb, int j)
    {
        var v = Vector256.Load(sb + 48 + 32 * (j >> 1));
        var lo = (j & 1) == 0 ? v & Vector256.Create((byte)15) : Nibbles.High(v);
        return lo | KPairs.Bit(sb + 16, j, 16);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<byte> QuantPair(byte* sb, int r) =>
        KPairs.Nibbles(sb + 48 + 32 * r) | KPairs.HighBits(sb + 16, 2 * r, 2 * r + 1, 4, 0x10);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Scales(byte* sb, out KScaleSet s) => KScales.Read(sb, out s);
}

/// <summary>
/// <see cref="DType.Q6_K"/>: per half h of 128, 64 low-nibble bytes L (at 64h) and 32 high bytes H (at 128 + 32h); quarter
/// c takes the nibbles of L[32·(c &amp; 1) ..] (low for c &lt; 2) and bits 2c, 2c+1 of H; 16 int8 run scales at byte 192,
/// d at 208.
/// </summary>
internal unsafe struct Q6_KFormat : IKQuantFormat<Q6_KFormat>
{
    public static DType Type => DType.Q6_K;
    public static int BlockBytes => 210;
    public static bool HasMin => false;
    public static int Offset => 32;
    public static bool PerRun => true;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<byte> Quants(byte* sb, int j)
    {
        int h = j >> 2, c = j & 3;
        var l = Vector256.Load(sb + 64 * h + 32 * (c & 1));
        var lo = c < 2 ? l & Vector256.Create((byte)15) : Nibbles.High(l);
        var hb = Vector256.Load(sb + 128 + 32 * h).AsUInt16();
        // bits 2c, 2c+1 of each byte to bits 4, 5 (a 16-bit shift; the mask drops what crosses bytes)
        var hi = c switch
        {
            0 => Vector256.ShiftLeft(hb, 4),
            1 => Vector256.ShiftLeft(hb, 2),
            2 => hb,
            _ => Vector256.ShiftRightLogical(hb, 2),
        };
        return lo | (hi.AsByte() & Vector256.Create((byte)0x30));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<byte> QuantPair(byte* sb, int r)
    {
        // sub-blocks 2r, 2r+1: half h = r/2, quarters c = 2(r & 1) and c + 1, whose nibbles are the 64 bytes at 64h
        int h = r >> 1, c = 2 * (r & 1);
        var l = Vector512.Load(sb + 64 * h);
        var lo = (r & 1) == 0 ? l & Vector512.Create((byte)15) : Vector512.ShiftRightLogical(l.AsUInt16(), 4).AsByte() & Vector512.Create((byte)15);
        return lo | KPairs.HighBits(sb + 128 + 32 * h, 2 * c, 2 * c + 2, 4, 0x30);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Scales(byte* sb, out KScaleSet s)
    {
        KScales.Runs(Vector128.Load((sbyte*)(sb + 192)), out s);
        s.D = HalfBits.ToSingleFinite(*(ushort*)(sb + 208));
    }
}

/// <summary>
/// <see cref="DType.Q3_K"/>: per half h of 128, 32 bytes of 2-bit pairs P (at 32 + 32h): quarter c takes bits 2c, 2c+1 of
/// P[i]; sub-block j (= 4h + c) takes bit j of hmask byte i (at 0) as its 4s bit, so q = pair + 4·bit in 0..7, offset 4;
/// 16 scales packed in 12 bytes at 96 (6 bits, stored + 32), d at 108.
/// </summary>
internal unsafe struct Q3_KFormat : IKQuantFormat<Q3_KFormat>
{
    public static DType Type => DType.Q3_K;
    public static int BlockBytes => 110;
    public static bool HasMin => false;
    public static int Offset => 4;
    public static bool PerRun => true;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<byte> Quants(byte* sb, int j) => KPairs.Pairs(sb + 32, j) | KPairs.Bit(sb, j, 4);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<byte> QuantPair(byte* sb, int r) => KPairs.PairsTwice(sb + 32, r) | KPairs.HighBits(sb, 2 * r, 2 * r + 1, 2, 0x04);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Scales(byte* sb, out KScaleSet s)
    {
        // ggml's aux shuffle on the 12 bytes (read as 8 + 4: a 16-byte load would pass the super-block's end)
        ulong ab = Unsafe.ReadUnaligned<ulong>(sb + 96);
        uint a = (uint)ab, b = (uint)(ab >> 32), c = Unsafe.ReadUnaligned<uint>(sb + 104);
        const uint Low = 0x0F0F0F0Fu, Two = 0x03030303u;
        var packed = Vector128.Create((a & Low) | (c & Two) << 4, (b & Low) | (c >> 2 & Two) << 4,
            (a >> 4 & Low) | (c >> 4 & Two) << 4, (b >> 4 & Low) | (c >> 6 & Two) << 4).AsSByte() - Vector128.Create((sbyte)32);
        KScales.Runs(packed, out s);
        s.D = HalfBits.ToSingleFinite(*(ushort*)(sb + 108));
    }
}

/// <summary>
/// <see cref="DType.Q2_K"/>: 16 scale bytes (run k: scale in the low nibble, min in the high), then per half h of 128, 32
/// bytes of 2-bit pairs P (at 16 + 32h): quarter c takes bits 2c, 2c+1 of P[i], so q in 0..3; d at 80, dmin at 82;
/// x = d·s_k·q − dmin·m_k.
/// </summary>
internal unsafe struct Q2_KFormat : IKQuantFormat<Q2_KFormat>
{
    public static DType Type => DType.Q2_K;
    public static int BlockBytes => 84;
    public static bool HasMin => true;
    public static int Offset => 0;
    public static bool PerRun => true;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<byte> Quants(byte* sb, int j) => KPairs.Pairs(sb + 16, j);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<byte> QuantPair(byte* sb, int r) => KPairs.PairsTwice(sb + 16, r);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Scales(byte* sb, out KScaleSet s)
    {
        var bytes = Vector128.Load(sb);
        var scales = bytes & Vector128.Create((byte)15);
        var mins = Vector128.ShiftRightLogical(bytes.AsUInt16(), 4).AsByte() & Vector128.Create((byte)15);
        KScales.Runs(scales.AsSByte(), out s);   // A = [s0 s2 .. | s1 s3 ..] as the other per-run formats
        s.B = KScales.Words(mins);               // B = [m0 .. m15]: the mins go with the run sums
        s.D = HalfBits.ToSingleFinite(*(ushort*)(sb + 80));
        s.DMin = HalfBits.ToSingleFinite(*(ushort*)(sb + 82));
    }
}

/// <summary>
/// Bit unpacking shared by the K-quants: <see cref="Bit"/> for <see cref="IKQuantFormat.Quants"/>, the rest for the 512-bit
/// <see cref="IKQuantFormat.QuantPair"/> (AVX-512F/BW).
/// </summary>
internal static unsafe class KPairs
{
    /// <summary>For each of the 32 bytes at <paramref name="p"/>: <paramref name="value"/> where its bit <paramref name="j"/> is set, else 0.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<byte> Bit(byte* p, int j, byte value)
    {
        var bit = Vector256.Create((byte)(1 << j));
        return Vector256.Equals(Vector256.Load(p) & bit, bit) & Vector256.Create(value);
    }

    /// <summary>
    /// Sub-block <paramref name="j"/> (0..7) of 2-bit pairs stored as Q2_K and Q3_K store them, 64 bytes from
    /// <paramref name="pairs"/>: bits 2(j mod 4), 2(j mod 4)+1 of the 32 bytes of half j / 4, as integers 0..3.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<byte> Pairs(byte* pairs, int j) =>
        Vector256.ShiftRightLogical(Vector256.Load(pairs + 32 * (j >> 2)).AsUInt16(), 2 * (j & 3)).AsByte() & Vector256.Create((byte)3);

    /// <summary><see cref="Pairs"/> of sub-blocks 2r and 2r+1 in one register (the two quarters of the same 32 bytes).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<byte> PairsTwice(byte* pairs, int r)
    {
        ulong a = (ulong)(4 * (r & 1)), b = a + 2;
        return Avx512F.ShiftRightLogicalVariable(Twice(pairs + 32 * (r >> 1)), Vector512.Create(a, a, a, a, b, b, b, b)).AsByte() & Vector512.Create((byte)3);
    }

    /// <summary>The 32 bytes at <paramref name="p"/> as 64 integers: their low nibbles, then their high nibbles.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<byte> Nibbles(byte* p)
    {
        var v = Twice(p);
        return Avx512F.ShiftRightLogicalVariable(v, Vector512.Create(0ul, 0, 0, 0, 4, 4, 4, 4)).AsByte() & Vector512.Create((byte)15);
    }

    /// <summary>
    /// The 32 bytes at <paramref name="p"/> twice, bits from bit <paramref name="lower"/> of each byte in the lower half and
    /// from bit <paramref name="upper"/> in the upper moved to bit <paramref name="to"/> and kept under <paramref name="mask"/>
    /// (0x10: one bit to 4, 0x30: two, 0x04: one bit to 2). A 64-bit rotate by to − bit keeps every bit in its byte or drops
    /// it outside the mask.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<byte> HighBits(byte* p, int lower, int upper, int to, byte mask)
    {
        var v = Twice(p);
        ulong a = (ulong)((to - lower) & 63), b = (ulong)((to - upper) & 63);
        return Avx512F.RotateLeftVariable(v, Vector512.Create(a, a, a, a, b, b, b, b)).AsByte() & Vector512.Create(mask);
    }

    /// <summary>
    /// The 32 bytes at <paramref name="p"/> in both halves. Not <c>Avx512F.BroadcastVector256ToVector512(p)</c>: .NET 10.0.12's
    /// JIT encodes its memory operand's displacement as if it read 16 bytes (EVEX disp8 scaled by 32 at run time), so
    /// [p + 16] loads from p + 32 (caught by the kernel tests against the scalar twin).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<ulong> Twice(byte* p)
    {
        var v = Vector256.Load((ulong*)p);
        return Avx512F.InsertVector256(v.ToVector512Unsafe(), v, 1);
    }
}
