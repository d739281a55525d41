using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Daop.Kernels.Quant;

namespace Daop.Kernels.Cpu.Quant;

/// <summary>
/// <see cref="DType.MXFP4"/>: an E8M0 exponent e and 16 bytes of E2M1 codes laid out as in Q4_0; w = 2^(e−128) · v
/// with v the doubled E2M1 value (<see cref="BlockQuant.Fp4Doubled"/>, −12..12). The unpacked bytes are v + 12
/// (<see cref="Offset"/> 12), looked up from the codes with a byte shuffle.
/// </summary>
internal unsafe struct Mxfp4Format : IBlockFormat<Mxfp4Format>
{
    public static DType Type => DType.MXFP4;
    public static int BlockBytes => 17;
    public static int Offset => 12;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Scale(byte* block) => BlockQuant.E8m0Half(*block);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Value(byte* block, int j) => BlockQuant.Fp4Doubled[j < 16 ? block[1 + j] & 15 : block[1 + j - 16] >> 4];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<byte> Unpack1(byte* p, out Vector256<float> scale)
    {
        scale = Vector256.Create(Scale(p));
        var q = Vector128.Load(p + 1);
        var codes = Vector256.Create(q, Vector128.ShiftRightLogical(q.AsUInt16(), 4).AsByte()) & Vector256.Create((byte)15);
        return Avx2.IsSupported
            ? Avx2.Shuffle(Vector256.Create(Lut, Lut), codes)
            : Vector256.Create(Vector128.ShuffleNative(Lut, codes.GetLower()), Vector128.ShuffleNative(Lut, codes.GetUpper()));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Unpack4(byte* p, out Vector256<byte> u0, out Vector256<byte> u1, out Vector256<byte> u2, out Vector256<byte> u3,
        out Vector256<float> scale)
    {
        var ab = Vector256.Create(Vector128.Load(p + 1), Vector128.Load(p + 18));
        var cd = Vector256.Create(Vector128.Load(p + 35), Vector128.Load(p + 52));
        var lut = Vector256.Create(Lut, Lut);
        if (Avx512Vbmi.VL.IsSupported)
        {
            // vpermb reads index bits 0–4, and the 32-entry table repeats the 16 codes, so no masking is needed.
            u0 = Avx512Vbmi.VL.PermuteVar32x8(lut, ab);
            u1 = Avx512Vbmi.VL.PermuteVar32x8(lut, Vector256.ShiftRightLogical(ab.AsUInt16(), 4).AsByte());
            u2 = Avx512Vbmi.VL.PermuteVar32x8(lut, cd);
            u3 = Avx512Vbmi.VL.PermuteVar32x8(lut, Vector256.ShiftRightLogical(cd.AsUInt16(), 4).AsByte());
        }
        else
        {
            var m = Vector256.Create((byte)15);
            u0 = Avx2.Shuffle(lut, ab & m);
            u1 = Avx2.Shuffle(lut, Nibbles.High(ab));
            u2 = Avx2.Shuffle(lut, cd & m);
            u3 = Avx2.Shuffle(lut, Nibbles.High(cd));
        }
        // Exponents: a's at byte 0 and b's at 17 (16 + 1) of bytes 0–31, c's at 34 and d's at 51 (16 + 1 on) of bytes
        // 34–65, shuffled into the top byte of their two int32 lanes. Shifted down one, e << 23 is 2^(e−127) for e ≥ 1;
        // e = 0 is raised to 2^−127 (a subnormal), and the exact halving makes it 2^(e−128) for every e.
        var e = Avx2.Shuffle(Vector256.Load(p), ExponentsAB) | Avx2.Shuffle(Vector256.Load(p + 34), ExponentsCD);
        var bits = Vector256.Max(Vector256.ShiftRightLogical(e.AsInt32(), 1), Vector256.Create(0x00400000));
        scale = bits.AsSingle() * Vector256.Create(0.5f);
    }

    /// <summary>[a a 0 0 | b b 0 0] from bytes 0–31 of the quad (each exponent in a lane's top byte).</summary>
    static Vector256<byte> ExponentsAB
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => Vector256.Create(
            (byte)0x80, 0x80, 0x80, 0, 0x80, 0x80, 0x80, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
            0x80, 0x80, 0x80, 1, 0x80, 0x80, 0x80, 1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80);
    }

    /// <summary>[0 0 c c | 0 0 d d] from bytes 34–65.</summary>
    static Vector256<byte> ExponentsCD
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => Vector256.Create(
            (byte)0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0, 0x80, 0x80, 0x80, 0,
            0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 1, 0x80, 0x80, 0x80, 1);
    }

    /// <summary>The doubled E2M1 value + 12 for each code.</summary>
    static Vector128<byte> Lut
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => Vector128.Create((byte)12, 13, 14, 15, 16, 18, 20, 24, 12, 11, 10, 9, 8, 6, 4, 0);
    }
}
