using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Daop.Kernels.Cpu.Gemm;

/// <summary>
/// In-register f16 → fp32 without F16C (which .NET does not expose). The half's exponent and mantissa are
/// shifted into fp32 position, reinterpreted (a value 2^-112 times too small, subnormal halves landing on fp32
/// subnormals) and scaled by 2^112, which is exact for every finite half; Inf/NaN are patched by exponent.
/// </summary>
/// <remarks>
/// A multiply with an fp32 subnormal operand runs as a microcode assist on x86. The vector forms keep the multiply:
/// in f16 weights a subnormal lane is rare, and on the dev machine (Zen 5) the F16 one-token expert took 8.7–10.7 ms with
/// it against 12.5 ms with an exact select on every vector and 15.4 ms with a branch to one. The scalar form
/// (<see cref="ToSingleFinite(ushort)"/>) converts K-quant super-block scales, which often sit below fp16's smallest normal
/// (d = largest sub-block scale / 63), so it never computes on a subnormal: there the multiply made Q4_K decode 2x slower.
/// </remarks>
internal static class HalfBits
{
    /// <summary>The half's 15 magnitude bits after shifting them left by 13.</summary>
    public const uint MagMask = 0x7FFFu << 13;
    /// <summary>Half exponent all ones (Inf/NaN) after the shift.</summary>
    const uint InfBits = 0x7C00u << 13;
    const uint Scale = (127 + 112) << 23;
    /// <summary>(127 − 15) in the fp32 exponent field: a normal half's rebias.</summary>
    const uint Rebias = 112u << 23;
    /// <summary>2^-14, the smallest normal half, as fp32 bits: the offset that renormalizes zero and subnormal halves.</summary>
    const uint MinNormal = 113u << 23;
    /// <summary>The exponent field of a half in fp32 position.</summary>
    const uint ExpBits = 0x1Fu << 23;

    /// <summary>
    /// A finite half in the top 16 bits of each lane → fp32. An arithmetic shift by 3 puts exponent and mantissa
    /// in fp32 position while copying the sign down; the mask keeps one sign bit, and the scale fixes the bias.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> WidenFinite(Vector512<uint> top)
    {
        var v = Vector512.ShiftRightArithmetic(top.AsInt32(), 3).AsUInt32() & Vector512.Create(0x8FFFE000u);
        return v.AsSingle() * Vector512.Create(Scale).AsSingle();
    }

    /// <summary>The 256-bit form of <see cref="WidenFinite(Vector512{uint})"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> WidenFinite(Vector256<uint> top)
    {
        var v = Vector256.ShiftRightArithmetic(top.AsInt32(), 3).AsUInt32() & Vector256.Create(0x8FFFE000u);
        return v.AsSingle() * Vector256.Create(Scale).AsSingle();
    }

    /// <summary>
    /// A finite half's bits → fp32, exactly, with no subnormal arithmetic: a normal half's exponent is rebiased by an
    /// integer add; a zero or subnormal half is (2^-14 + m·2^-24) − 2^-14, a subtraction of normal floats, with its sign
    /// put back (so −0 stays −0). A select, not a branch: super-blocks mix both kinds unpredictably.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ToSingleFinite(ushort h)
    {
        uint v = (uint)((short)h << 16 >> 3) & 0x8FFFE000u, sign = v & 0x80000000u;
        uint sub = BitConverter.SingleToUInt32Bits(BitConverter.UInt32BitsToSingle(v + MinNormal) - BitConverter.UInt32BitsToSingle(sign | MinNormal));
        return BitConverter.UInt32BitsToSingle((v & ExpBits) != 0 ? v + Rebias : sub | sign);
    }

    /// <summary>
    /// <see cref="ToSingleFinite(ushort)"/> on the halves in the top 16 bits of each lane: the same integer rebias and
    /// normal-float subtraction, with a select; for the K-quants' d and dmin, two lanes of one register.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> ToSingleFinite(Vector128<uint> top)
    {
        var v = Vector128.ShiftRightArithmetic(top.AsInt32(), 3).AsUInt32() & Vector128.Create(0x8FFFE000u);
        var sign = v & Vector128.Create(0x80000000u);
        var sub = ((v + Vector128.Create(MinNormal)).AsSingle() - (sign | Vector128.Create(MinNormal)).AsSingle()).AsUInt32() | sign;
        var normal = v + Vector128.Create(Rebias);
        return Vector128.ConditionalSelect(Vector128.Equals(v & Vector128.Create(ExpBits), Vector128<uint>.Zero), sub, normal).AsSingle();
    }

    /// <summary>The 128-bit form of <see cref="WidenFinite(Vector256{uint})"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> WidenFinite(Vector128<uint> top)
    {
        var v = Vector128.ShiftRightArithmetic(top.AsInt32(), 3).AsUInt32() & Vector128.Create(0x8FFFE000u);
        return v.AsSingle() * Vector128.Create(Scale).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Widen(Vector512<uint> mag, Vector512<uint> sign)
    {
        var f = (mag.AsSingle() * Vector512.Create(Scale).AsSingle()).AsUInt32();
        var special = Vector512.GreaterThanOrEqual(mag.AsInt32(), Vector512.Create((int)InfBits)).AsUInt32();
        f = Vector512.ConditionalSelect(special, mag | Vector512.Create(0x7F800000u), f);
        return (f | sign).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Widen(Vector256<uint> mag, Vector256<uint> sign)
    {
        var f = (mag.AsSingle() * Vector256.Create(Scale).AsSingle()).AsUInt32();
        var special = Vector256.GreaterThanOrEqual(mag.AsInt32(), Vector256.Create((int)InfBits)).AsUInt32();
        f = Vector256.ConditionalSelect(special, mag | Vector256.Create(0x7F800000u), f);
        return (f | sign).AsSingle();
    }
}
