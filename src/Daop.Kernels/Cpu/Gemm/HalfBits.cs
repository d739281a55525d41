using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Daop.Kernels.Cpu.Gemm;

/// <summary>
/// In-register f16 → fp32 without F16C (which .NET does not expose). The half's exponent and mantissa are shifted into
/// fp32 position and the exponent rebiased by an integer add (exact for every normal half); a zero or subnormal half
/// (exponent 0) is renormalized as (2^-14 + m·2^-24) − 2^-14, a subtraction of normal floats. No step computes on an fp32
/// subnormal: x86 cores take a microcode assist for each such operation, and K-quant super-block scales sit at fp16's
/// subnormal boundary (a 2^-112 multiply here made Q4_K decode 2x slower on Zen 5). Inf/NaN are patched by exponent.
/// </summary>
internal static class HalfBits
{
    /// <summary>The half's 15 magnitude bits after shifting them left by 13.</summary>
    public const uint MagMask = 0x7FFFu << 13;
    /// <summary>Half exponent all ones (Inf/NaN) after the shift.</summary>
    const uint InfBits = 0x7C00u << 13;
    /// <summary>(127 − 15) in the fp32 exponent field: a normal half's rebias.</summary>
    const uint Rebias = 112u << 23;
    /// <summary>2^-14 (the smallest normal half) as fp32 bits: the renormalizing offset for zero and subnormal halves.</summary>
    const uint MinNormal = 113u << 23;
    /// <summary>The exponent field of a positioned half.</summary>
    const uint ExpBits = 0x1Fu << 23;

    /// <summary>
    /// A finite half in the top 16 bits of each lane → fp32. An arithmetic shift by 3 puts exponent and mantissa
    /// in fp32 position while copying the sign down; the mask keeps one sign bit.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> WidenFinite(Vector512<uint> top) =>
        Positioned(Vector512.ShiftRightArithmetic(top.AsInt32(), 3).AsUInt32() & Vector512.Create(0x8FFFE000u));

    /// <summary>The 256-bit form of <see cref="WidenFinite(Vector512{uint})"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> WidenFinite(Vector256<uint> top) =>
        Positioned(Vector256.ShiftRightArithmetic(top.AsInt32(), 3).AsUInt32() & Vector256.Create(0x8FFFE000u));

    /// <summary>The 128-bit form of <see cref="WidenFinite(Vector256{uint})"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> WidenFinite(Vector128<uint> top) =>
        Positioned(Vector128.ShiftRightArithmetic(top.AsInt32(), 3).AsUInt32() & Vector128.Create(0x8FFFE000u));

    /// <summary>
    /// Block scales of Q4_0 and Q8_0 (a finite half in the top 16 bits of each lane) → fp32 by the 2^112 multiply: exact,
    /// and cheaper than <see cref="WidenFinite(Vector256{uint})"/> in the quad loops, but a subnormal scale costs an
    /// assist. Such a scale needs a block whose largest |w| is below 2^-14·8 ≈ 4.9e-4 (Q4_0), which real weights rarely
    /// have; K-quant super-block scales (d = largest sub-block scale / 63) often do, so they take the exact form.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> WidenBlockScale(Vector256<uint> top)
    {
        var v = Vector256.ShiftRightArithmetic(top.AsInt32(), 3).AsUInt32() & Vector256.Create(0x8FFFE000u);
        return v.AsSingle() * Vector256.Create(Rebias + (127u << 23)).AsSingle();
    }

    /// <summary>A finite half's bits → fp32, exactly (the scalar form of <see cref="WidenFinite(Vector512{uint})"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ToSingleFinite(ushort h)
    {
        uint v = (uint)((short)h << 16 >> 3) & 0x8FFFE000u, sign = v & 0x80000000u;
        uint sub = BitConverter.SingleToUInt32Bits(BitConverter.UInt32BitsToSingle(v + MinNormal) - BitConverter.UInt32BitsToSingle(sign | MinNormal));
        return BitConverter.UInt32BitsToSingle((v & ExpBits) != 0 ? v + Rebias : sub | sign);
    }

    // v: sign | the half's exponent and mantissa in fp32 position. Normal: rebias the exponent. Zero or subnormal:
    // ±(2^-14 + m·2^-24) ∓ 2^-14 = ±m·2^-24, exact; the sign is put back so −0 stays −0.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<float> Positioned(Vector512<uint> v)
    {
        var exp = v & Vector512.Create(ExpBits);
        var sign = v & Vector512.Create(0x80000000u);
        var sub = (v + Vector512.Create(MinNormal)).AsSingle() - (sign | Vector512.Create(MinNormal)).AsSingle();
        var zeroExp = Vector512.Equals(exp, Vector512<uint>.Zero);
        return Vector512.ConditionalSelect(zeroExp, sub.AsUInt32() | sign, v + Vector512.Create(Rebias)).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<float> Positioned(Vector256<uint> v)
    {
        var exp = v & Vector256.Create(ExpBits);
        var sign = v & Vector256.Create(0x80000000u);
        var sub = (v + Vector256.Create(MinNormal)).AsSingle() - (sign | Vector256.Create(MinNormal)).AsSingle();
        var zeroExp = Vector256.Equals(exp, Vector256<uint>.Zero);
        return Vector256.ConditionalSelect(zeroExp, sub.AsUInt32() | sign, v + Vector256.Create(Rebias)).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector128<float> Positioned(Vector128<uint> v)
    {
        var exp = v & Vector128.Create(ExpBits);
        var sign = v & Vector128.Create(0x80000000u);
        var sub = (v + Vector128.Create(MinNormal)).AsSingle() - (sign | Vector128.Create(MinNormal)).AsSingle();
        var zeroExp = Vector128.Equals(exp, Vector128<uint>.Zero);
        return Vector128.ConditionalSelect(zeroExp, sub.AsUInt32() | sign, v + Vector128.Create(Rebias)).AsSingle();
    }

    /// <summary>Any half: <paramref name="mag"/> its magnitude bits in fp32 position, <paramref name="sign"/> its sign bit.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Widen(Vector512<uint> mag, Vector512<uint> sign)
    {
        var f = Positioned(mag).AsUInt32();
        var special = Vector512.GreaterThanOrEqual(mag.AsInt32(), Vector512.Create((int)InfBits)).AsUInt32();
        f = Vector512.ConditionalSelect(special, mag | Vector512.Create(0x7F800000u), f);
        return (f | sign).AsSingle();
    }

    /// <summary>The 256-bit form of <see cref="Widen(Vector512{uint}, Vector512{uint})"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Widen(Vector256<uint> mag, Vector256<uint> sign)
    {
        var f = Positioned(mag).AsUInt32();
        var special = Vector256.GreaterThanOrEqual(mag.AsInt32(), Vector256.Create((int)InfBits)).AsUInt32();
        f = Vector256.ConditionalSelect(special, mag | Vector256.Create(0x7F800000u), f);
        return (f | sign).AsSingle();
    }
}
