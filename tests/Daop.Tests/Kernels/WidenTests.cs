using System.Runtime.Intrinsics;
using Daop.Kernels.Cpu;
using Daop.Kernels.Cpu.Gemm;

namespace Daop.Tests.Kernels;

/// <summary>The in-register widening of every 16-bit pattern is exact (the kernels' tolerance assumes it).</summary>
public unsafe class WidenTests
{
    static void AssertSame(float expected, float actual, int bits, string what)
    {
        if (float.IsNaN(expected)) Assert.True(float.IsNaN(actual), $"{what} 0x{bits:X4}: expected NaN, got {actual}");
        else Assert.True(BitConverter.SingleToInt32Bits(expected) == BitConverter.SingleToInt32Bits(actual),
            $"{what} 0x{bits:X4}: expected {expected}, got {actual}");
    }

    /// <summary>
    /// The scale conversions (K-quant super-block d and dmin, Q4_0/Q8_0 block scales) give every finite half exactly,
    /// subnormals and both zeros included, in the scalar form (integer rebias and renormalization) and the vector forms
    /// (the 2^112 multiply).
    /// </summary>
    [Fact]
    public void FiniteHalfScalesAllPatterns()
    {
        for (int i = 0; i < 65536; i += 8)
        {
            var top = Vector256.Create((uint)i << 16, (uint)(i + 1) << 16, (uint)(i + 2) << 16, (uint)(i + 3) << 16,
                (uint)(i + 4) << 16, (uint)(i + 5) << 16, (uint)(i + 6) << 16, (uint)(i + 7) << 16);
            var wide = HalfBits.WidenFinite(top);
            var narrow = HalfBits.WidenFinite(top.GetLower());
            var wider = HalfBits.WidenFinite(Vector512.Create(top, top));
            for (int k = 0; k < 8; k++)
            {
                int bits = i + k;
                if ((bits & 0x7C00) == 0x7C00) continue; // Inf/NaN: the finite forms do not take them
                float want = (float)BitConverter.UInt16BitsToHalf((ushort)bits);
                AssertSame(want, HalfBits.ToSingleFinite((ushort)bits), bits, "scalar");
                AssertSame(want, wide[k], bits, "256");
                AssertSame(want, wider[k], bits, "512");
                if (k < 4) AssertSame(want, narrow[k], bits, "128");
                if (k < 4) AssertSame(want, HalfBits.ToSingleFinite(top.GetLower())[k], bits, "128 exact");
            }
        }
    }

    [Fact]
    public void F16AllPatterns()
    {
        var h = new ushort[65536];
        for (int i = 0; i < h.Length; i++) h[i] = (ushort)i;
        fixed (ushort* p = h)
        {
            for (int i = 0; i < h.Length; i += 32)
            {
                Simd512.F16((byte*)(p + i), out var e, out var o);
                for (int k = 0; k < 16; k++)
                {
                    AssertSame((float)BitConverter.UInt16BitsToHalf(h[i + 2 * k]), e[k], i + 2 * k, "512 even");
                    AssertSame((float)BitConverter.UInt16BitsToHalf(h[i + 2 * k + 1]), o[k], i + 2 * k + 1, "512 odd");
                }
                Simd256.F16((byte*)(p + i), out var e8, out var o8);
                for (int k = 0; k < 8; k++)
                {
                    AssertSame((float)BitConverter.UInt16BitsToHalf(h[i + 2 * k]), e8[k], i + 2 * k, "256 even");
                    AssertSame((float)BitConverter.UInt16BitsToHalf(h[i + 2 * k + 1]), o8[k], i + 2 * k + 1, "256 odd");
                }
            }
        }
    }

    [Fact]
    public void Bf16AllPatterns()
    {
        var h = new ushort[65536];
        for (int i = 0; i < h.Length; i++) h[i] = (ushort)i;
        fixed (ushort* p = h)
        {
            for (int i = 0; i < h.Length; i += 32)
            {
                Simd512.Bf16((byte*)(p + i), out var e, out var o);
                for (int k = 0; k < 16; k++)
                {
                    AssertSame(Bf16.ToFloat(h[i + 2 * k]), e[k], i + 2 * k, "even");
                    AssertSame(Bf16.ToFloat(h[i + 2 * k + 1]), o[k], i + 2 * k + 1, "odd");
                }
            }
        }
    }

    [Fact]
    public void DeinterleaveSplitsEvenAndOdd()
    {
        var src = new float[32];
        var dst = new float[32];
        for (int i = 0; i < 32; i++) src[i] = i;
        fixed (float* s = src, d = dst) Simd512.Deinterleave(s, d);
        for (int k = 0; k < 16; k++) { Assert.Equal(2 * k, dst[k]); Assert.Equal(2 * k + 1, dst[16 + k]); }
        fixed (float* s = src, d = dst) Simd256.Deinterleave(s, d);
        for (int k = 0; k < 8; k++) { Assert.Equal(2 * k, dst[k]); Assert.Equal(2 * k + 1, dst[8 + k]); }
    }
}
