using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Daop.Kernels.Cpu.Quant;

/// <summary>
/// One row's quad (four blocks) against one token's, on AVX2: the integer dots of the four blocks reduced to 8
/// int32 lanes (<see cref="Quad"/>), converted once, and added into fp32 lanes with the per-lane product of the
/// row's block scale and the token's d. With AVX-VNNI (<c>vpdpbusd</c>, e.g. Sapphire Rapids) the u8 × s8 dots
/// accumulate straight into int32; otherwise <c>vpmaddubsw</c> (u8 × s8 → s16 pairs) then <c>vpmaddwd</c> with ones.
/// With AVX-VNNI the signed formats run biased (<see cref="Quad.Biased{TB}"/>): the activations are the unsigned side.
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
    /// A row's quad at <paramref name="p"/>: the unsigned operands u0..u3, for the signed formats with the sign trick the
    /// signed bytes s0..s3 whose signs move onto the activations (otherwise s0..s3 are unused), and the block scales per
    /// reduced lane; <paramref name="min"/> holds the block mins (<see cref="IBlockFormat.HasMin"/>) or, for the biased
    /// signed formats (<see cref="Quad.Biased{TB}"/>), whose u0..u3 are the signed weights in the half layout, the
    /// int32 bits of 128·Σw per reduced lane (each block's two lanes together: 128 times the block's sum).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Unpack(byte* p, out Vector256<byte> u0, out Vector256<byte> u1, out Vector256<byte> u2, out Vector256<byte> u3,
        out Vector256<sbyte> s0, out Vector256<sbyte> s1, out Vector256<sbyte> s2, out Vector256<sbyte> s3, out Vector256<float> scale,
        out Vector256<float> min)
    {
        // Each path is a method of its own: the JIT imports only the one that runs, so the quad tiles, which inline
        // 4 unpacks and 16 dots, stay within its inlining budget (when they did not, the dots were calls).
        TB.Unpack4(p, out u0, out u1, out u2, out u3, out scale);
        s0 = s1 = s2 = s3 = default;
        if (Quad.Biased<TB>()) min = Correction(u0, u1, u2, u3);
        else if (Quad.Unsigned<TB>()) min = TB.Mins4(p);
        else
        {
            min = default;
            SignTrick(ref u0, ref u1, ref u2, ref u3, out s0, out s1, out s2, out s3);
        }
    }

    /// <summary>The biased formats' 128·Σw per reduced lane (<see cref="Quad.Biased{TB}"/>), as int32 bits.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<float> Correction(Vector256<byte> u0, Vector256<byte> u1, Vector256<byte> u2, Vector256<byte> u3)
    {
        var ones = Vector256.Create((byte)1);
        var ab = AvxVnni.MultiplyWideningAndAdd(AvxVnni.MultiplyWideningAndAdd(Vector256<int>.Zero, ones, u0.AsSByte()), ones, u1.AsSByte());
        var cd = AvxVnni.MultiplyWideningAndAdd(AvxVnni.MultiplyWideningAndAdd(Vector256<int>.Zero, ones, u2.AsSByte()), ones, u3.AsSByte());
        return Vector256.ShiftLeft(Avx2.HorizontalAdd(ab, cd), 7).AsSingle();
    }

    /// <summary>The sign trick's operands: the signed bytes move to s0..s3 and u0..u3 become their magnitudes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void SignTrick(ref Vector256<byte> u0, ref Vector256<byte> u1, ref Vector256<byte> u2, ref Vector256<byte> u3,
        out Vector256<sbyte> s0, out Vector256<sbyte> s1, out Vector256<sbyte> s2, out Vector256<sbyte> s3)
    {
        s0 = u0.AsSByte(); s1 = u1.AsSByte(); s2 = u2.AsSByte(); s3 = u3.AsSByte();
        u0 = Avx2.Abs(s0); u1 = Avx2.Abs(s1); u2 = Avx2.Abs(s2); u3 = Avx2.Abs(s3);
    }

    /// <summary>
    /// <paramref name="acc"/> + cvt(dot lanes) · scale · d (+ min · d·Σq/2 per lane for the formats with a min) for the
    /// token whose quad values are at <paramref name="x"/> and lane data at <paramref name="lanes"/>; <paramref name="scale"/>
    /// and <paramref name="min"/> hold the row's block scales and mins (or the biased formats' correction) per lane.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Dot(Vector256<byte> u0, Vector256<byte> u1, Vector256<byte> u2, Vector256<byte> u3,
        Vector256<sbyte> s0, Vector256<sbyte> s1, Vector256<sbyte> s2, Vector256<sbyte> s3,
        byte* x, byte* lanes, Vector256<float> scale, Vector256<float> min, Vector256<float> acc)
    {
        Vector256<int> i;
        if (Quad.Unsigned<TB>())
        {
            i = UnsignedDot(u0, u1, u2, u3, x);
            if (TB.Offset != 0) i += Vector256.Load((int*)(lanes + 32));
            acc = TB.AddMins(min, lanes + 32, acc);
        }
        else if (Quad.Biased<TB>()) i = BiasedDot(u0, u1, u2, u3, x) - min.AsInt32();
        else i = SignedDot(u0, u1, u2, u3, s0, s1, s2, s3, x);
        return Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(i), scale * Vector256.Load((float*)lanes), acc);
    }

    /// <summary>The unsigned formats' integer dot in the reduced lanes [a a c c b b d d].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<int> UnsignedDot(Vector256<byte> u0, Vector256<byte> u1, Vector256<byte> u2, Vector256<byte> u3, byte* x)
    {
        var x0 = Vector256.Load((sbyte*)x); var x1 = Vector256.Load((sbyte*)x + 32);
        var x2 = Vector256.Load((sbyte*)x + 64); var x3 = Vector256.Load((sbyte*)x + 96);
        if (AvxVnni.IsSupported)
        {
            var ab = AvxVnni.MultiplyWideningAndAdd(AvxVnni.MultiplyWideningAndAdd(Vector256<int>.Zero, u0, x0), u1, x1);
            var cd = AvxVnni.MultiplyWideningAndAdd(AvxVnni.MultiplyWideningAndAdd(Vector256<int>.Zero, u2, x2), u3, x3);
            return Avx2.HorizontalAdd(ab, cd);
        }
        // Words of ab: block a in the low half, b in the high; folding ab and cd word pairs (vphaddw) and then
        // word pairs again (vpmaddwd) gives [a a c c | b b d d]. A word stays ≤ 4·2·24·127 = 24384.
        var wab = Avx2.MultiplyAddAdjacent(u0, x0) + Avx2.MultiplyAddAdjacent(u1, x1);
        var wcd = Avx2.MultiplyAddAdjacent(u2, x2) + Avx2.MultiplyAddAdjacent(u3, x3);
        return Avx2.MultiplyAddAdjacent(Avx2.HorizontalAdd(wab, wcd), Vector256.Create((short)1));
    }

    /// <summary>The biased formats' Σ (q + 128)·w per reduced lane, exact in int32 (<c>vpdpbusd</c> does not saturate).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<int> BiasedDot(Vector256<byte> w0, Vector256<byte> w1, Vector256<byte> w2, Vector256<byte> w3, byte* x)
    {
        var x0 = Vector256.Load(x); var x1 = Vector256.Load(x + 32);
        var x2 = Vector256.Load(x + 64); var x3 = Vector256.Load(x + 96);
        var ab = AvxVnni.MultiplyWideningAndAdd(AvxVnni.MultiplyWideningAndAdd(Vector256<int>.Zero, x0, w0.AsSByte()), x1, w1.AsSByte());
        var cd = AvxVnni.MultiplyWideningAndAdd(AvxVnni.MultiplyWideningAndAdd(Vector256<int>.Zero, x2, w2.AsSByte()), x3, w3.AsSByte());
        return Avx2.HorizontalAdd(ab, cd);
    }

    /// <summary>The sign trick's integer dot in the reduced lanes [a b c d a b c d].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<int> SignedDot(Vector256<byte> u0, Vector256<byte> u1, Vector256<byte> u2, Vector256<byte> u3,
        Vector256<sbyte> s0, Vector256<sbyte> s1, Vector256<sbyte> s2, Vector256<sbyte> s3, byte* x)
    {
        var p0 = Signed(u0, s0, x); var p1 = Signed(u1, s1, x + 32);
        var p2 = Signed(u2, s2, x + 64); var p3 = Signed(u3, s3, x + 96);
        return Avx2.HorizontalAdd(Avx2.HorizontalAdd(p0, p1), Avx2.HorizontalAdd(p2, p3));
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
