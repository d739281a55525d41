using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Daop.Kernels.Cpu.Gemm;

namespace Daop.Kernels.Cpu.Quant;

/// <summary>
/// <see cref="DType.Q5_0"/>: fp16 d, the 32 fifth bits as a little-endian word at byte 2, nibbles at 6 as in Q4_0;
/// w = d·(q − 16). The unpacked bytes are q itself (<see cref="Offset"/> 16).
/// </summary>
internal unsafe struct Q5_0Format : ILegacyBlockFormat<Q5_0Format>
{
    public static DType Type => DType.Q5_0;
    public static int BlockBytes => 22;
    public static int Offset => 16;
    public static int NibblesAt => 6;
    public static int BitsAt => 2;
}

/// <summary>
/// <see cref="DType.Q4_1"/>: fp16 d and min m, nibbles at 4 as in Q4_0; w = d·q + m. The unpacked bytes are q (Offset 0,
/// with a min).
/// </summary>
internal unsafe struct Q4_1Format : ILegacyMinFormat<Q4_1Format>
{
    public static DType Type => DType.Q4_1;
    public static int BlockBytes => 20;
    public static int NibblesAt => 4;
    public static int BitsAt => -1;
}

/// <summary>
/// <see cref="DType.Q5_1"/>: fp16 d and min m, the fifth bits at 4 and nibbles at 8 as in Q5_0; w = d·q + m with q in
/// 0..31 (Offset 0, with a min).
/// </summary>
internal unsafe struct Q5_1Format : ILegacyMinFormat<Q5_1Format>
{
    public static DType Type => DType.Q5_1;
    public static int BlockBytes => 24;
    public static int NibblesAt => 8;
    public static int BitsAt => 4;
}

/// <summary>
/// GGUF's older 32-blocks (Q4_1, Q5_0, Q5_1), whose members differ only in where a block keeps its nibbles and fifth
/// bits: an fp16 scale at byte 0, integers unpacked by <see cref="LegacyBlocks"/>. A struct gives its constants; the
/// JIT folds them into these members for each struct.
/// </summary>
internal unsafe interface ILegacyBlockFormat<TSelf> : IBlockFormat<TSelf> where TSelf : struct, ILegacyBlockFormat<TSelf>
{
    /// <summary>Byte of a block where its 16 bytes of nibbles start.</summary>
    static abstract int NibblesAt { get; }

    /// <summary>Byte of a block holding the fifth bits as a little-endian word; −1 for the 4-bit Q4_1.</summary>
    static abstract int BitsAt { get; }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float IBlockFormat.Scale(byte* block) => HalfBits.ToSingleFinite(*(ushort*)block);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static int IBlockFormat.Value(byte* block, int j) => LegacyBlocks.Integer(block, TSelf.NibblesAt, TSelf.BitsAt, j) - TSelf.Offset;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<byte> IBlockFormat.Unpack1(byte* p, out Vector256<float> scale)
    {
        scale = Vector256.Create(TSelf.Scale(p));
        return LegacyBlocks.Unpack1(p, TSelf.NibblesAt, TSelf.BitsAt);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void IBlockFormat.Unpack4(byte* p, out Vector256<byte> u0, out Vector256<byte> u1, out Vector256<byte> u2, out Vector256<byte> u3,
        out Vector256<float> scale)
    {
        LegacyBlocks.Unpack4(p, TSelf.BlockBytes, TSelf.NibblesAt, TSelf.BitsAt, out u0, out u1, out u2, out u3);
        scale = LegacyBlocks.Fp16Lanes(p, TSelf.BlockBytes);
    }
}

/// <summary>The older 32-blocks with a min (Q4_1, Q5_1): an fp16 min at byte 2 added to each weight, unsigned integers (Offset 0).</summary>
internal unsafe interface ILegacyMinFormat<TSelf> : ILegacyBlockFormat<TSelf> where TSelf : struct, ILegacyMinFormat<TSelf>
{
    static int IBlockFormat.Offset => 0;

    static bool IBlockFormat.HasMin => true;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float IBlockFormat.Min(byte* block) => HalfBits.ToSingleFinite(*(ushort*)(block + 2));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<float> IBlockFormat.Mins4(byte* p) => LegacyBlocks.Fp16Lanes(p + 2, TSelf.BlockBytes);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<float> IBlockFormat.AddMins(Vector256<float> mins, byte* sums, Vector256<float> acc) =>
        Vector256.FusedMultiplyAdd(mins, Vector256.Load((float*)sums), acc);
}

/// <summary>
/// The unpacking shared by GGUF's older 32-blocks (Q4_1, Q5_0, Q5_1): 16 bytes of nibbles at byte <c>nibbles</c> of a
/// block (element j low in byte j, j + 16 high), and for the 5-bit ones a word at byte <c>bits</c> whose bit j is element
/// j's 16s bit (<c>bits</c> &lt; 0: none). Block sizes and offsets are constants at every call, so the JIT folds them.
/// </summary>
internal static unsafe class LegacyBlocks
{
    /// <summary>The unsigned integer j (0..31) of a block.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Integer(byte* block, int nibbles, int bits, int j)
    {
        int q = j < 16 ? block[nibbles + j] & 15 : block[nibbles + j - 16] >> 4;
        return bits < 0 ? q : q | (int)(Unsafe.ReadUnaligned<uint>(block + bits) >> j & 1) << 4;
    }

    /// <summary>One block's 32 integers in column order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<byte> Unpack1(byte* p, int nibbles, int bits)
    {
        var q = Vector128.Load(p + nibbles);
        var v = Vector256.Create(q, Vector128.ShiftRightLogical(q.AsUInt16(), 4).AsByte()) & Vector256.Create((byte)15);
        return bits < 0 ? v : v | Sixteens(Unsafe.ReadUnaligned<uint>(p + bits));
    }

    /// <summary>
    /// Four blocks of <paramref name="bb"/> bytes in the quad layout: u0 = [a 0–15 | b 0–15], u1 = [a 16–31 | b 16–31], u2
    /// and u3 the same for c, d.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Unpack4(byte* p, int bb, int nibbles, int bits,
        out Vector256<byte> u0, out Vector256<byte> u1, out Vector256<byte> u2, out Vector256<byte> u3)
    {
        var ab = Vector256.Create(Vector128.Load(p + nibbles), Vector128.Load(p + bb + nibbles));
        var cd = Vector256.Create(Vector128.Load(p + 2 * bb + nibbles), Vector128.Load(p + 3 * bb + nibbles));
        var m = Vector256.Create((byte)15);
        u0 = ab & m;
        u2 = cd & m;
        u1 = Quant.Nibbles.High(ab);
        u3 = Quant.Nibbles.High(cd);
        if (bits < 0) return;
        uint a = Unsafe.ReadUnaligned<uint>(p + bits), b = Unsafe.ReadUnaligned<uint>(p + bb + bits);
        uint c = Unsafe.ReadUnaligned<uint>(p + 2 * bb + bits), d = Unsafe.ReadUnaligned<uint>(p + 3 * bb + bits);
        // a block's low 16 elements take bits 0–15 of its word, its high 16 bits 16–31
        u0 |= Sixteens((a & 0xFFFF) | b << 16);
        u1 |= Sixteens(a >> 16 | (b & 0xFFFF0000u));
        u2 |= Sixteens((c & 0xFFFF) | d << 16);
        u3 |= Sixteens(c >> 16 | (d & 0xFFFF0000u));
    }

    /// <summary>For each bit j of <paramref name="m"/>: byte j is 16 where it is set, else 0 (AVX2; the vector unpacks run only there).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<byte> Sixteens(uint m)
    {
        // byte j/8 of the word into byte j (a per-lane shuffle: each 128-bit lane holds the whole broadcast word)
        var v = Avx2.Shuffle(Vector256.Create(m).AsByte(),
            Vector256.Create((byte)0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3));
        var bit = Vector256.Create(0x8040201008040201ul).AsByte();
        return Vector256.Equals(v & bit, bit) & Vector256.Create((byte)16);
    }

    /// <summary>
    /// The fp16 at <paramref name="p"/> of four blocks <paramref name="bb"/> bytes apart, exactly widened, in the unsigned
    /// quad's reduced-lane order [a a c c b b d d].
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Fp16Lanes(byte* p, int bb)
    {
        var acbd = Vector128.Create((uint)*(ushort*)p, *(ushort*)(p + 2 * bb), *(ushort*)(p + bb), *(ushort*)(p + 3 * bb)) << 16;
        return HalfBits.WidenFinite(Vector256.Create(Sse2.UnpackLow(acbd, acbd), Sse2.UnpackHigh(acbd, acbd)));
    }
}
