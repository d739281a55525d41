using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Daop.Kernels.Cpu.Gemm;

namespace Daop.Kernels.Cpu.Quant;

/// <summary>
/// <see cref="DType.Q4_0"/>: an fp16 scale d and 16 bytes of nibbles (element j low in byte j, j+16 high);
/// w = d·(q − 8). The unpacked bytes are the nibbles q themselves (<see cref="Offset"/> 8).
/// </summary>
internal unsafe struct Q4_0Format : IBlockFormat<Q4_0Format>
{
    public static DType Type => DType.Q4_0;
    public static int BlockBytes => 18;
    public static int Offset => 8;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Scale(byte* block) => HalfBits.ToSingleFinite(*(ushort*)block);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Value(byte* block, int j) => (j < 16 ? block[2 + j] & 15 : block[2 + j - 16] >> 4) - 8;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<byte> Unpack1(byte* p, out Vector256<float> scale)
    {
        scale = Vector256.Create(Scale(p));
        var q = Vector128.Load(p + 2);
        return Vector256.Create(q, Vector128.ShiftRightLogical(q.AsUInt16(), 4).AsByte()) & Vector256.Create((byte)15);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Unpack4(byte* p, out Vector256<byte> u0, out Vector256<byte> u1, out Vector256<byte> u2, out Vector256<byte> u3,
        out Vector256<float> scale)
    {
        var ab = Vector256.Create(Vector128.Load(p + 2), Vector128.Load(p + 20));
        var cd = Vector256.Create(Vector128.Load(p + 38), Vector128.Load(p + 56));
        var m = Vector256.Create((byte)15);
        u0 = ab & m;
        u2 = cd & m;
        u1 = Nibbles.High(ab);
        u3 = Nibbles.High(cd);
        // Scales: bytes 0–31 hold a's at 0 and b's at 18 (16 + 2), bytes 36–67 c's at 36 and d's at 54 (16 + 2 on);
        // a per-lane byte shuffle puts each in the top half of its two int32 lanes, zeros elsewhere.
        var s = Avx2.Shuffle(Vector256.Load(p), ScalesAB) | Avx2.Shuffle(Vector256.Load(p + 36), ScalesCD);
        scale = HalfBits.WidenFinite(s.AsUInt32());
    }

    /// <summary>[a a 0 0 | b b 0 0] from bytes 0–31 of the quad (each half in a lane's top 16 bits).</summary>
    static Vector256<byte> ScalesAB
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => Vector256.Create(
            (byte)0x80, 0x80, 0, 1, 0x80, 0x80, 0, 1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
            0x80, 0x80, 2, 3, 0x80, 0x80, 2, 3, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80);
    }

    /// <summary>[0 0 c c | 0 0 d d] from bytes 36–67.</summary>
    static Vector256<byte> ScalesCD
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => Vector256.Create(
            (byte)0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0, 1, 0x80, 0x80, 0, 1,
            0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 2, 3, 0x80, 0x80, 2, 3);
    }
}
