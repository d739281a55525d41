using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Daop.Kernels.Cpu.Quant;

/// <summary>
/// One row's quad (four blocks) against one token's, on AVX2: the integer dots of the four blocks reduced to 8
/// int32 lanes (<see cref="Quad"/>), converted once, and added into fp32 lanes with the per-lane product of the
/// row's block scale and the token's d. With AVX-VNNI (<c>vpdpbusd</c>, e.g. Sapphire Rapids) the u8 × s8 dots
/// accumulate straight into int32; otherwise <c>vpmaddubsw</c> (u8 × s8 → s16 pairs) then <c>vpmaddwd</c> with ones.
/// </summary>
/// <remarks>
/// Nothing saturates. The 4- and 5-bit formats' unsigned bytes are at most 31 and |q| ≤ 127, so a vpmaddubsw pair is at
/// most 7874, and a word after the two int16 folds at most 4·7874 = 31496. Q8_0 uses llama.cpp's sign trick: |w| (≤ 128) is
/// the unsigned side and q·sign(w) (|·| ≤ 127) the signed one, so a pair is at most 2·128·127 = 32512 &lt; 2^15.
/// Encoded with VEX, or EVEX where AVX-512VL gives the kernels 32 registers; 512-bit vectors measured no faster on
/// Zen 4 (double-pumped), and AVX-512 has no vphaddd for the lane reduction.
/// </remarks>
internal static unsafe class QuadDot<TB> where TB : struct, IBlockFormat
{
    /// <summary>
    /// A row's quad at <paramref name="p"/>: the unsigned operands u0..u3, for Q8_0 the signed bytes s0..s3 whose signs
    /// move onto the activations (for the unsigned formats s0..s3 are unused), and the block scales (and mins) per reduced lane.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Unpack(byte* p, out Vector256<byte> u0, out Vector256<byte> u1, out Vector256<byte> u2, out Vector256<byte> u3,
        out Vector256<sbyte> s0, out Vector256<sbyte> s1, out Vector256<sbyte> s2, out Vector256<sbyte> s3, out Vector256<float> scale,
        out Vector256<float> min)
    {
        TB.Unpack4(p, out u0, out u1, out u2, out u3, out scale);
        min = TB.Mins4(p);
        if (!Quad.Unsigned<TB>())
        {
            s0 = u0.AsSByte(); s1 = u1.AsSByte(); s2 = u2.AsSByte(); s3 = u3.AsSByte();
            u0 = Avx2.Abs(s0); u1 = Avx2.Abs(s1); u2 = Avx2.Abs(s2); u3 = Avx2.Abs(s3);
        }
        else
        {
            s0 = s1 = s2 = s3 = default;
        }
    }

    /// <summary>
    /// <paramref name="acc"/> + cvt(dot lanes) · scale · d (+ min · d·Σq/2 per lane for the formats with a min) for the
    /// token whose quad values are at <paramref name="x"/> and lane data at <paramref name="lanes"/>; <paramref name="scale"/>
    /// and <paramref name="min"/> hold the row's block scales and mins per lane.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Dot(Vector256<byte> u0, Vector256<byte> u1, Vector256<byte> u2, Vector256<byte> u3,
        Vector256<sbyte> s0, Vector256<sbyte> s1, Vector256<sbyte> s2, Vector256<sbyte> s3,
        byte* x, byte* lanes, Vector256<float> scale, Vector256<float> min, Vector256<float> acc)
    {
        Vector256<int> i;
        if (Quad.Unsigned<TB>())
        {
            var x0 = Vector256.Load((sbyte*)x); var x1 = Vector256.Load((sbyte*)x + 32);
            var x2 = Vector256.Load((sbyte*)x + 64); var x3 = Vector256.Load((sbyte*)x + 96);
            if (AvxVnni.IsSupported)
            {
                var ab = AvxVnni.MultiplyWideningAndAdd(AvxVnni.MultiplyWideningAndAdd(Vector256<int>.Zero, u0, x0), u1, x1);
                var cd = AvxVnni.MultiplyWideningAndAdd(AvxVnni.MultiplyWideningAndAdd(Vector256<int>.Zero, u2, x2), u3, x3);
                i = Avx2.HorizontalAdd(ab, cd);
            }
            else
            {
                // Words of ab: block a in the low half, b in the high; folding ab and cd word pairs (vphaddw) and then
                // word pairs again (vpmaddwd) gives [a a c c | b b d d]. A word stays ≤ 4·2·24·127 = 24384.
                var ab = Avx2.MultiplyAddAdjacent(u0, x0) + Avx2.MultiplyAddAdjacent(u1, x1);
                var cd = Avx2.MultiplyAddAdjacent(u2, x2) + Avx2.MultiplyAddAdjacent(u3, x3);
                i = Avx2.MultiplyAddAdjacent(Avx2.HorizontalAdd(ab, cd), Vector256.Create((short)1));
            }
            if (TB.Offset != 0) i += Vector256.Load((int*)(lanes + 32));
        }
        else
        {
            var p0 = Signed(u0, s0, x); var p1 = Signed(u1, s1, x + 32);
            var p2 = Signed(u2, s2, x + 64); var p3 = Signed(u3, s3, x + 96);
            i = Avx2.HorizontalAdd(Avx2.HorizontalAdd(p0, p1), Avx2.HorizontalAdd(p2, p3));
        }
        acc = TB.AddMins(min, lanes + 32, acc);
        return Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(i), scale * Vector256.Load((float*)lanes), acc);
    }

    /// <summary>Σ |w|·(q·sign w) per int32 lane of one Q8_0 block.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<int> Signed(Vector256<byte> abs, Vector256<sbyte> w, byte* x)
    {
        var xs = Avx2.Sign(Vector256.Load((sbyte*)x), w);
        return AvxVnni.IsSupported
            ? AvxVnni.MultiplyWideningAndAdd(Vector256<int>.Zero, abs, xs)
            : Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(abs, xs), Vector256.Create((short)1));
    }
}
