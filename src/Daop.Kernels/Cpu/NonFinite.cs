using System.Runtime.Intrinsics;

namespace Daop.Kernels.Cpu;

/// <summary>Finds the first NaN or ±∞ in a span: x − x is 0 for every finite x and NaN otherwise.</summary>
public static unsafe class NonFinite
{
    /// <summary>Index of the first non-finite value of <paramref name="x"/>, or −1 when all are finite. Vectorised; no allocation.</summary>
    public static int IndexOf(ReadOnlySpan<float> x)
    {
        int n = x.Length, i = 0;
        fixed (float* p = x)
        {
            if (Vector512.IsHardwareAccelerated)
                for (; i + 16 <= n; i += 16)
                {
                    var v = Vector512.Load(p + i);
                    if (!Vector512.EqualsAll(v - v, Vector512<float>.Zero)) break;
                }
            else if (Vector256.IsHardwareAccelerated)
                for (; i + 8 <= n; i += 8)
                {
                    var v = Vector256.Load(p + i);
                    if (!Vector256.EqualsAll(v - v, Vector256<float>.Zero)) break;
                }
        }
        for (; i < n; i++) if (!float.IsFinite(x[i])) return i;
        return -1;
    }

    /// <summary>
    /// Index of the first NaN or ±∞ among 16-bit floats given as bits, or −1: such a value has every exponent bit set
    /// (<paramref name="exponentMask"/>: 0x7F80 for bf16, 0x7C00 for fp16).
    /// </summary>
    public static int IndexOf16(ReadOnlySpan<ushort> bits, ushort exponentMask)
    {
        int n = bits.Length, i = 0;
        fixed (ushort* p = bits)
        {
            if (Vector512.IsHardwareAccelerated)
            {
                var m = Vector512.Create(exponentMask);
                for (; i + 32 <= n; i += 32)
                    if (Vector512.EqualsAny(Vector512.Load(p + i) & m, m)) break;
            }
            else if (Vector256.IsHardwareAccelerated)
            {
                var m = Vector256.Create(exponentMask);
                for (; i + 16 <= n; i += 16)
                    if (Vector256.EqualsAny(Vector256.Load(p + i) & m, m)) break;
            }
        }
        for (; i < n; i++) if ((bits[i] & exponentMask) == exponentMask) return i;
        return -1;
    }

    /// <summary>Scalar twin of <see cref="IndexOf"/>.</summary>
    public static int Scalar(ReadOnlySpan<float> x)
    {
        for (int i = 0; i < x.Length; i++) if (!float.IsFinite(x[i])) return i;
        return -1;
    }
}
