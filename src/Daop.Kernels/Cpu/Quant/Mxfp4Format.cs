using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Daop.Kernels.Cpu.Gemm;
using Daop.Kernels.Quant;

namespace Daop.Kernels.Cpu.Quant;

/// <summary>
/// <see cref="DType.MXFP4"/>: an E8M0 exponent e and 16 bytes of E2M1 codes laid out as in Q4_0; w = 2^(e−128) · v
/// with v the doubled E2M1 value (<see cref="BlockQuant.Fp4Doubled"/>, −12..12). The unpacked bytes are v + 12
/// (<see cref="Offset"/> 12), looked up from the codes with a byte shuffle.
/// </summary>
internal unsafe struct Mxfp4Format : IBlockFormat
{
    public static DType Type => DType.MXFP4;
    public static int BlockBytes => 17;
    public static int Offset => 12;
    public static bool Interleaved => false;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Scale(byte* block) => BlockQuant.E8m0Half(*block);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Value(byte* block, int j) => BlockQuant.Fp4Doubled[j < 16 ? block[1 + j] & 15 : block[1 + j - 16] >> 4];

    public static float Widen(byte* row, int c)
    {
        byte* block = row + (nint)(c / 32) * 17;
        return Scale(block) * Value(block, c % 32);
    }

    public static void WidenRow(byte* row, Span<float> dst) => BlockWidening.Row<Mxfp4Format>(row, dst);

    public static void WidenPanel<TS, TV>(byte* row, int cols, int kb, int kl, float* d) where TS : struct, ISimd<TV> where TV : struct =>
        BlockWidening.Panel<Mxfp4Format>(row, cols, kb, kl, d);

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
    public static Vector512<byte> Unpack2(byte* p, out Vector512<float> scale)
    {
        // z: the pair's 34 bytes without reading past them: [0, 32) from p, then block 1's codes at [32, 48), zeros.
        var z = Vector512.Create(Vector256.Load(p), Vector128.Load(p + 18).ToVector256());
        var codes = Avx512Vbmi.PermuteVar64x8(z, Codes);
        codes = Avx512BW.ShiftRightLogicalVariable(codes.AsUInt16(), CodeShifts).AsByte() & Vector512.Create((byte)15);
        // e in the top byte of each lane, shifted to the fp32 exponent: 2^(e−127), with e = 0 patched to 2^−127 (a
        // subnormal), then halved (exact) to the format's 2^(e−128).
        var bits = Avx512Vbmi.PermuteVar64x8(z, Exponents).AsUInt32() >> 1;
        bits = Vector512.ConditionalSelect(Vector512.Equals(bits, Vector512<uint>.Zero), Vector512.Create(0x00400000u), bits);
        scale = bits.AsSingle() * Vector512.Create(0.5f);
        var lut = Vector256.Create(Lut, Lut);
        return Avx512BW.Shuffle(Vector512.Create(lut, lut), codes);
    }

    /// <summary>The doubled E2M1 value + 12 for each code.</summary>
    static Vector128<byte> Lut => Vector128.Create((byte)12, 13, 14, 15, 16, 18, 20, 24, 12, 11, 10, 9, 8, 6, 4, 0);

    /// <summary>Block 0's code bytes twice (low then high nibbles), then block 1's twice.</summary>
    static Vector512<byte> Codes => Vector512.Create(
        (byte)1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
        32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47);

    static Vector512<ushort> CodeShifts => Vector512.Create(
        (ushort)0, 0, 0, 0, 0, 0, 0, 0, 4, 4, 4, 4, 4, 4, 4, 4, 0, 0, 0, 0, 0, 0, 0, 0, 4, 4, 4, 4, 4, 4, 4, 4);

    /// <summary>Each int32 lane: three zero bytes (byte 63 of z), then its block's exponent byte.</summary>
    static Vector512<byte> Exponents => Vector512.Create(
        (byte)63, 63, 63, 0, 63, 63, 63, 0, 63, 63, 63, 0, 63, 63, 63, 0, 63, 63, 63, 0, 63, 63, 63, 0, 63, 63, 63, 0, 63, 63, 63, 0,
        63, 63, 63, 17, 63, 63, 63, 17, 63, 63, 63, 17, 63, 63, 63, 17, 63, 63, 63, 17, 63, 63, 63, 17, 63, 63, 63, 17, 63, 63, 63, 17);
}
