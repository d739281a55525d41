using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Daop.Kernels.Cpu.Gemm;

namespace Daop.Kernels.Cpu.Quant;

/// <summary>
/// <see cref="DType.Q4_0"/>: an fp16 scale d and 16 bytes of nibbles (element j low in byte j, j+16 high);
/// w = d·(q − 8). The unpacked bytes are the nibbles q themselves (<see cref="Offset"/> 8).
/// </summary>
internal unsafe struct Q4_0Format : IBlockFormat
{
    public static DType Type => DType.Q4_0;
    public static int BlockBytes => 18;
    public static int Offset => 8;
    public static bool Interleaved => false;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Scale(byte* block) => HalfBits.ToSingleFinite(*(ushort*)block);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Value(byte* block, int j) => (j < 16 ? block[2 + j] & 15 : block[2 + j - 16] >> 4) - 8;

    public static float Widen(byte* row, int c)
    {
        byte* block = row + (nint)(c / 32) * 18;
        return Scale(block) * Value(block, c % 32);
    }

    public static void WidenRow(byte* row, Span<float> dst) => BlockWidening.Row<Q4_0Format>(row, dst);

    public static void WidenPanel<TS, TV>(byte* row, int cols, int kb, int kl, float* d) where TS : struct, ISimd<TV> where TV : struct =>
        BlockWidening.Panel<Q4_0Format>(row, cols, kb, kl, d);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<byte> Unpack1(byte* p, out Vector256<float> scale)
    {
        scale = Vector256.Create(Scale(p));
        var q = Vector128.Load(p + 2);
        return Vector256.Create(q, Vector128.ShiftRightLogical(q.AsUInt16(), 4).AsByte()) & Vector256.Create((byte)15);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<byte> Unpack2(byte* p, out Vector512<float> scale)
    {
        // z: the pair's 36 bytes without reading past them: [0, 32) from p, then block 1's nibbles at [32, 48), zeros.
        var z = Vector512.Create(Vector256.Load(p), Vector128.Load(p + 20).ToVector256());
        var q = Avx512Vbmi.PermuteVar64x8(z, Nibbles);
        q = Avx512BW.ShiftRightLogicalVariable(q.AsUInt16(), NibbleShifts).AsByte() & Vector512.Create((byte)15);
        scale = HalfBits.WidenFinite(Avx512Vbmi.PermuteVar64x8(z, Scales).AsUInt32());
        return q;
    }

    /// <summary>Block 0's nibble bytes twice (low then high nibbles), then block 1's twice.</summary>
    static Vector512<byte> Nibbles => Vector512.Create(
        (byte)2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17,
        32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47);

    /// <summary>Word shifts that bring the high nibbles down in the second and fourth quarters.</summary>
    static Vector512<ushort> NibbleShifts => Vector512.Create(
        (ushort)0, 0, 0, 0, 0, 0, 0, 0, 4, 4, 4, 4, 4, 4, 4, 4, 0, 0, 0, 0, 0, 0, 0, 0, 4, 4, 4, 4, 4, 4, 4, 4);

    /// <summary>Each int32 lane: a zero word (byte 63 of z), then the fp16 scale of its block.</summary>
    static Vector512<byte> Scales => Vector512.Create(
        (byte)63, 63, 0, 1, 63, 63, 0, 1, 63, 63, 0, 1, 63, 63, 0, 1, 63, 63, 0, 1, 63, 63, 0, 1, 63, 63, 0, 1, 63, 63, 0, 1,
        63, 63, 18, 19, 63, 63, 18, 19, 63, 63, 18, 19, 63, 63, 18, 19, 63, 63, 18, 19, 63, 63, 18, 19, 63, 63, 18, 19, 63, 63, 18, 19);
}
