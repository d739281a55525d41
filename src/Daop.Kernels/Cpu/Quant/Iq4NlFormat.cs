using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Daop.Kernels.Cpu.Gemm;
using Daop.Kernels.Quant;

namespace Daop.Kernels.Cpu.Quant;

/// <summary>
/// <see cref="DType.IQ4_NL"/>: an fp16 scale d and 16 bytes of 4-bit codes laid out as in Q4_0; w = d · v with v the
/// code's entry of ggml's non-linear table (<see cref="BlockQuant.Iq4NlValues"/>, −127..113). The unpacked bytes are v
/// itself, signed (<see cref="Offset"/> 0, as Q8_0's: the kernels move the signs onto the activations), looked up with
/// a byte shuffle; the quad is laid out as Q8_0's: in halves when biased (<see cref="Quad.Biased{TB}"/>), else block after block.
/// </summary>
internal unsafe struct Iq4NlFormat : IBlockFormat<Iq4NlFormat>
{
    public static DType Type => DType.IQ4_NL;
    public static int BlockBytes => 18;
    public static int Offset => 0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Scale(byte* block) => HalfBits.ToSingleFinite(*(ushort*)block);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Value(byte* block, int j) => BlockQuant.Iq4NlValues[j < 16 ? block[2 + j] & 15 : block[2 + j - 16] >> 4];

    /// <summary>One block's 32 table values in column order (AVX2; the vector unpacks run only there).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<byte> Values(byte* p)
    {
        var q = Vector128.Load(p + 2);
        var codes = Vector256.Create(q, Vector128.ShiftRightLogical(q.AsUInt16(), 4).AsByte()) & Vector256.Create((byte)15);
        return Avx2.Shuffle(Vector256.Create(Lut, Lut), codes);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<byte> Unpack1(byte* p, out Vector256<float> scale)
    {
        scale = Vector256.Create(Scale(p));
        return Values(p);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Unpack4(byte* p, out Vector256<byte> u0, out Vector256<byte> u1, out Vector256<byte> u2, out Vector256<byte> u3,
        out Vector256<float> scale)
    {
        if (Quad.Biased<Iq4NlFormat>())
        {
            // the block layout is Q4_0's: its unpack gives the codes in halves and the scales in their lanes
            Q4_0Format.Unpack4(p, out u0, out u1, out u2, out u3, out scale);
            var lut = Vector256.Create(Lut, Lut);
            u0 = Avx2.Shuffle(lut, u0); u1 = Avx2.Shuffle(lut, u1); u2 = Avx2.Shuffle(lut, u2); u3 = Avx2.Shuffle(lut, u3);
            return;
        }
        u0 = Values(p); u1 = Values(p + 18); u2 = Values(p + 36); u3 = Values(p + 54);
        // the four scales in the signed quad's lane order [a b c d a b c d], each in its lane's top 16 bits
        var h = Vector128.Create((uint)*(ushort*)p, *(ushort*)(p + 18), *(ushort*)(p + 36), *(ushort*)(p + 54)) << 16;
        scale = HalfBits.WidenFinite(Vector256.Create(h, h));
    }

    /// <summary>ggml's kvalues_iq4nl as bytes.</summary>
    static Vector128<byte> Lut
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => Vector128.Create((sbyte)-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113).AsByte();
    }
}
