using System.Runtime.CompilerServices;

namespace Daop.Kernels.Cpu;

/// <summary>bfloat16 ↔ fp32. A bf16 is the upper half of an fp32, so widening is a 16-bit shift.</summary>
public static class Bf16
{
    /// <summary>Widens one bf16.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ToFloat(ushort b) => BitConverter.Int32BitsToSingle(b << 16);

    /// <summary>Rounds one fp32 to bf16 (round to nearest even, NaN kept quiet).</summary>
    public static ushort FromFloat(float f)
    {
        uint u = BitConverter.SingleToUInt32Bits(f);
        if ((u & 0x7FFFFFFF) > 0x7F800000) return (ushort)((u >> 16) | 0x40);
        u += 0x7FFF + ((u >> 16) & 1);
        return (ushort)(u >> 16);
    }

    /// <summary>Widens <paramref name="src"/> into <paramref name="dst"/>.</summary>
    public static void ToFloat(ReadOnlySpan<ushort> src, Span<float> dst)
    {
        if (dst.Length < src.Length) throw new ArgumentException("destination too short", nameof(dst));
        for (int i = 0; i < src.Length; i++) dst[i] = ToFloat(src[i]);
    }
}
