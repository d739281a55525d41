using System.Runtime.CompilerServices;

namespace Daop.Kernels.Cpu.Gemm;

/// <summary>
/// Register-tiled dot-product microkernels: R weight rows × T token rows over prepared columns [k0, k1)
/// (multiples of one step, 2·Width). Weights are widened in registers once per step and used for all T tokens.
/// Results go to s[t·4 + r].
/// </summary>
/// <remarks>
/// Every pointer is at column 0: <c>w</c> row 0 with <c>ws</c> bytes per row, <c>x</c> token 0 of the prepared
/// activations with <c>xs</c> floats per token.
/// </remarks>
internal static unsafe class Tiles<TF, TS, TV>
    where TF : struct, IWeightFormat where TS : struct, ISimd<TV> where TV : struct
{
    /// <summary>4 rows × 4 tokens: 16 accumulators, 32 FMAs per 8 weight/16 activation vectors.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void T4x4(byte* w, nint ws, float* x, nint xs, int k0, int k1, float* s)
    {
        int width = TS.Width, es = TF.ElementSize;
        byte* p0 = w + (nint)k0 * es, p1 = p0 + ws, p2 = p1 + ws, p3 = p2 + ws;
        float* x0 = x + k0, x1 = x0 + xs, x2 = x1 + xs, x3 = x2 + xs;
        TV c00 = TS.Zero, c01 = TS.Zero, c02 = TS.Zero, c03 = TS.Zero;
        TV c10 = TS.Zero, c11 = TS.Zero, c12 = TS.Zero, c13 = TS.Zero;
        TV c20 = TS.Zero, c21 = TS.Zero, c22 = TS.Zero, c23 = TS.Zero;
        TV c30 = TS.Zero, c31 = TS.Zero, c32 = TS.Zero, c33 = TS.Zero;
        nint n = k1 - k0, step = 2 * width;
        for (nint k = 0; k < n; k += step)
        {
            nint o = k * es;
            TF.Load<TS, TV>(p0 + o, out TV a0, out TV b0);
            TF.Load<TS, TV>(p1 + o, out TV a1, out TV b1);
            TF.Load<TS, TV>(p2 + o, out TV a2, out TV b2);
            TF.Load<TS, TV>(p3 + o, out TV a3, out TV b3);
            TV xa = TS.Load(x0 + k), xb = TS.Load(x0 + k + width);
            c00 = TS.Fma(a0, xa, c00); c01 = TS.Fma(a1, xa, c01); c02 = TS.Fma(a2, xa, c02); c03 = TS.Fma(a3, xa, c03);
            c00 = TS.Fma(b0, xb, c00); c01 = TS.Fma(b1, xb, c01); c02 = TS.Fma(b2, xb, c02); c03 = TS.Fma(b3, xb, c03);
            xa = TS.Load(x1 + k); xb = TS.Load(x1 + k + width);
            c10 = TS.Fma(a0, xa, c10); c11 = TS.Fma(a1, xa, c11); c12 = TS.Fma(a2, xa, c12); c13 = TS.Fma(a3, xa, c13);
            c10 = TS.Fma(b0, xb, c10); c11 = TS.Fma(b1, xb, c11); c12 = TS.Fma(b2, xb, c12); c13 = TS.Fma(b3, xb, c13);
            xa = TS.Load(x2 + k); xb = TS.Load(x2 + k + width);
            c20 = TS.Fma(a0, xa, c20); c21 = TS.Fma(a1, xa, c21); c22 = TS.Fma(a2, xa, c22); c23 = TS.Fma(a3, xa, c23);
            c20 = TS.Fma(b0, xb, c20); c21 = TS.Fma(b1, xb, c21); c22 = TS.Fma(b2, xb, c22); c23 = TS.Fma(b3, xb, c23);
            xa = TS.Load(x3 + k); xb = TS.Load(x3 + k + width);
            c30 = TS.Fma(a0, xa, c30); c31 = TS.Fma(a1, xa, c31); c32 = TS.Fma(a2, xa, c32); c33 = TS.Fma(a3, xa, c33);
            c30 = TS.Fma(b0, xb, c30); c31 = TS.Fma(b1, xb, c31); c32 = TS.Fma(b2, xb, c32); c33 = TS.Fma(b3, xb, c33);
        }
        TS.Sum4(c00, c01, c02, c03, s);
        TS.Sum4(c10, c11, c12, c13, s + 4);
        TS.Sum4(c20, c21, c22, c23, s + 8);
        TS.Sum4(c30, c31, c32, c33, s + 12);
    }

    /// <summary>4 rows × 1 token (the GEMV kernel): separate even/odd accumulators keep 8 FMA chains in flight.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void T4x1(byte* w, nint ws, float* x, int k0, int k1, float* s)
    {
        int width = TS.Width, es = TF.ElementSize;
        byte* p0 = w + (nint)k0 * es, p1 = p0 + ws, p2 = p1 + ws, p3 = p2 + ws;
        float* x0 = x + k0;
        TV c0 = TS.Zero, c1 = TS.Zero, c2 = TS.Zero, c3 = TS.Zero;
        TV d0 = TS.Zero, d1 = TS.Zero, d2 = TS.Zero, d3 = TS.Zero;
        nint n = k1 - k0, step = 2 * width;
        for (nint k = 0; k < n; k += step)
        {
            nint o = k * es;
            TV xa = TS.Load(x0 + k), xb = TS.Load(x0 + k + width);
            TF.Load<TS, TV>(p0 + o, out TV a0, out TV b0);
            c0 = TS.Fma(a0, xa, c0); d0 = TS.Fma(b0, xb, d0);
            TF.Load<TS, TV>(p1 + o, out TV a1, out TV b1);
            c1 = TS.Fma(a1, xa, c1); d1 = TS.Fma(b1, xb, d1);
            TF.Load<TS, TV>(p2 + o, out TV a2, out TV b2);
            c2 = TS.Fma(a2, xa, c2); d2 = TS.Fma(b2, xb, d2);
            TF.Load<TS, TV>(p3 + o, out TV a3, out TV b3);
            c3 = TS.Fma(a3, xa, c3); d3 = TS.Fma(b3, xb, d3);
        }
        TS.Sum4(TS.Add(c0, d0), TS.Add(c1, d1), TS.Add(c2, d2), TS.Add(c3, d3), s);
    }

    /// <summary>1 row × 4 tokens, for the rows left over after 4-row tiles.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void T1x4(byte* w, float* x, nint xs, int k0, int k1, float* s)
    {
        int width = TS.Width, es = TF.ElementSize;
        byte* p0 = w + (nint)k0 * es;
        float* x0 = x + k0, x1 = x0 + xs, x2 = x1 + xs, x3 = x2 + xs;
        TV c0 = TS.Zero, c1 = TS.Zero, c2 = TS.Zero, c3 = TS.Zero;
        nint n = k1 - k0, step = 2 * width;
        for (nint k = 0; k < n; k += step)
        {
            TF.Load<TS, TV>(p0 + k * es, out TV a, out TV b);
            c0 = TS.Fma(b, TS.Load(x0 + k + width), TS.Fma(a, TS.Load(x0 + k), c0));
            c1 = TS.Fma(b, TS.Load(x1 + k + width), TS.Fma(a, TS.Load(x1 + k), c1));
            c2 = TS.Fma(b, TS.Load(x2 + k + width), TS.Fma(a, TS.Load(x2 + k), c2));
            c3 = TS.Fma(b, TS.Load(x3 + k + width), TS.Fma(a, TS.Load(x3 + k), c3));
        }
        s[0] = TS.Sum(c0); s[4] = TS.Sum(c1); s[8] = TS.Sum(c2); s[12] = TS.Sum(c3);
    }

    /// <summary>1 row × 1 token.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float T1x1(byte* w, float* x, int k0, int k1)
    {
        int width = TS.Width, es = TF.ElementSize;
        byte* p0 = w + (nint)k0 * es;
        float* x0 = x + k0;
        TV c = TS.Zero, d = TS.Zero;
        nint n = k1 - k0, step = 2 * width;
        for (nint k = 0; k < n; k += step)
        {
            TF.Load<TS, TV>(p0 + k * es, out TV a, out TV b);
            c = TS.Fma(a, TS.Load(x0 + k), c);
            d = TS.Fma(b, TS.Load(x0 + k + width), d);
        }
        return TS.Sum(TS.Add(c, d));
    }
}
