using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Daop.Kernels.Cpu.Gemm;

/// <summary>
/// In-register f16 → fp32 without F16C (which .NET does not expose). The half's exponent and mantissa are
/// shifted into fp32 position, reinterpreted (a value 2^-112 times too small, subnormal halves landing on fp32
/// subnormals) and scaled by 2^112, which is exact for every finite half; Inf/NaN are patched by exponent.
/// </summary>
internal static class HalfBits
{
    /// <summary>The half's 15 magnitude bits after shifting them left by 13.</summary>
    public const uint MagMask = 0x7FFFu << 13;
    /// <summary>Half exponent all ones (Inf/NaN) after the shift.</summary>
    const uint InfBits = 0x7C00u << 13;
    const uint Scale = (127 + 112) << 23;

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

    /// <summary>A finite half's bits → fp32, exactly (the scalar form of <see cref="WidenFinite(Vector512{uint})"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ToSingleFinite(ushort h) =>
        BitConverter.UInt32BitsToSingle((uint)((short)h << 16 >> 3) & 0x8FFFE000u) * BitConverter.UInt32BitsToSingle(Scale);

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
