using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;

namespace Daop.Kernels.Cpu.Gemm;

/// <summary>
/// Register-tiled dot-product microkernels for small batches: R weight rows × T token rows over prepared columns
/// [k0, k1) (multiples of one step, 2·Width). Weights are widened in registers once per step and used for all T
/// tokens. Results go to s[t·4 + r].
/// </summary>
/// <remarks>
/// Every pointer is at column 0: <c>w</c> row 0 with <c>ws</c> bytes per row, <c>x</c> token 0 of the prepared
/// activations with <c>xs</c> floats per token. Generated shapes; keep them in step with each other.
/// </remarks>
internal static unsafe class Tiles<TF, TS, TV>
    where TF : struct, IWeightFormat where TS : struct, ISimd<TV> where TV : struct
{
    /// <summary>
    /// Bytes ahead of the current step that the 4-row kernels prefetch each row. The hardware prefetcher alone
    /// leaves bandwidth unused once a step carries more work than a plain GEMV (f16 widening, several tokens):
    /// best-of-8 on Zen 5, 14336×4096, 2048 B ahead took f16 GEMV from 42 to 59 GB/s and bf16 at 4 tokens from
    /// 40 to 50 GB/s, and did not slow bf16 GEMV; 4 KB and 8 KB were worse.
    /// </summary>
    const int PF = 2048;

    /// <summary>Prefetches the lines of one step, <see cref="PF"/> bytes ahead, for the four rows.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Prefetch(byte* p0, byte* p1, byte* p2, byte* p3)
    {
        if (!Sse.IsSupported || TS.Width == 1) return;
        for (int line = 0; line < 2 * TS.Width * TF.ElementSize; line += 64)
        {
            Sse.Prefetch0(p0 + PF + line); Sse.Prefetch0(p1 + PF + line);
            Sse.Prefetch0(p2 + PF + line); Sse.Prefetch0(p3 + PF + line);
        }
    }

    /// <summary>4 rows × 1 token: even and odd columns accumulate separately to keep enough FMA chains in flight.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void T4x1(byte* w, nint ws, float* x, nint xs, int k0, int k1, float* s)
    {
        int width = TS.Width, es = TF.ElementSize;
        byte* p0 = w + (nint)k0 * es, p1 = p0 + ws, p2 = p1 + ws, p3 = p2 + ws;
        float* x0 = x + k0;
        TV c00 = TS.Zero, d00 = TS.Zero, c01 = TS.Zero, d01 = TS.Zero, c02 = TS.Zero, d02 = TS.Zero, c03 = TS.Zero, d03 = TS.Zero;
        nint n = k1 - k0, step = 2 * width;
        for (nint k = 0; k < n; k += step)
        {
            nint o = k * es;
            Prefetch(p0 + o, p1 + o, p2 + o, p3 + o);
            TF.Load<TS, TV>(p0 + o, out TV a0, out TV b0);
            TF.Load<TS, TV>(p1 + o, out TV a1, out TV b1);
            TF.Load<TS, TV>(p2 + o, out TV a2, out TV b2);
            TF.Load<TS, TV>(p3 + o, out TV a3, out TV b3);
            TV xa, xb;
            xa = TS.Load(x0 + k); xb = TS.Load(x0 + k + width);
            c00 = TS.Fma(a0, xa, c00); c01 = TS.Fma(a1, xa, c01); c02 = TS.Fma(a2, xa, c02); c03 = TS.Fma(a3, xa, c03);
            d00 = TS.Fma(b0, xb, d00); d01 = TS.Fma(b1, xb, d01); d02 = TS.Fma(b2, xb, d02); d03 = TS.Fma(b3, xb, d03);
        }
        TS.Sum4(TS.Add(c00, d00), TS.Add(c01, d01), TS.Add(c02, d02), TS.Add(c03, d03), s + 0);
    }

    /// <summary>4 rows × 2 tokens: even and odd columns accumulate separately to keep enough FMA chains in flight.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void T4x2(byte* w, nint ws, float* x, nint xs, int k0, int k1, float* s)
    {
        int width = TS.Width, es = TF.ElementSize;
        byte* p0 = w + (nint)k0 * es, p1 = p0 + ws, p2 = p1 + ws, p3 = p2 + ws;
        float* x0 = x + k0, x1 = x0 + xs;
        TV c00 = TS.Zero, d00 = TS.Zero, c01 = TS.Zero, d01 = TS.Zero, c02 = TS.Zero, d02 = TS.Zero, c03 = TS.Zero, d03 = TS.Zero;
        TV c10 = TS.Zero, d10 = TS.Zero, c11 = TS.Zero, d11 = TS.Zero, c12 = TS.Zero, d12 = TS.Zero, c13 = TS.Zero, d13 = TS.Zero;
        nint n = k1 - k0, step = 2 * width;
        for (nint k = 0; k < n; k += step)
        {
            nint o = k * es;
            Prefetch(p0 + o, p1 + o, p2 + o, p3 + o);
            TF.Load<TS, TV>(p0 + o, out TV a0, out TV b0);
            TF.Load<TS, TV>(p1 + o, out TV a1, out TV b1);
            TF.Load<TS, TV>(p2 + o, out TV a2, out TV b2);
            TF.Load<TS, TV>(p3 + o, out TV a3, out TV b3);
            TV xa, xb;
            xa = TS.Load(x0 + k); xb = TS.Load(x0 + k + width);
            c00 = TS.Fma(a0, xa, c00); c01 = TS.Fma(a1, xa, c01); c02 = TS.Fma(a2, xa, c02); c03 = TS.Fma(a3, xa, c03);
            d00 = TS.Fma(b0, xb, d00); d01 = TS.Fma(b1, xb, d01); d02 = TS.Fma(b2, xb, d02); d03 = TS.Fma(b3, xb, d03);
            xa = TS.Load(x1 + k); xb = TS.Load(x1 + k + width);
            c10 = TS.Fma(a0, xa, c10); c11 = TS.Fma(a1, xa, c11); c12 = TS.Fma(a2, xa, c12); c13 = TS.Fma(a3, xa, c13);
            d10 = TS.Fma(b0, xb, d10); d11 = TS.Fma(b1, xb, d11); d12 = TS.Fma(b2, xb, d12); d13 = TS.Fma(b3, xb, d13);
        }
        TS.Sum4(TS.Add(c00, d00), TS.Add(c01, d01), TS.Add(c02, d02), TS.Add(c03, d03), s + 0);
        TS.Sum4(TS.Add(c10, d10), TS.Add(c11, d11), TS.Add(c12, d12), TS.Add(c13, d13), s + 4);
    }

    /// <summary>4 rows × 3 tokens: one accumulator per (row, token).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void T4x3(byte* w, nint ws, float* x, nint xs, int k0, int k1, float* s)
    {
        int width = TS.Width, es = TF.ElementSize;
        byte* p0 = w + (nint)k0 * es, p1 = p0 + ws, p2 = p1 + ws, p3 = p2 + ws;
        float* x0 = x + k0, x1 = x0 + xs, x2 = x1 + xs;
        TV c00 = TS.Zero, c01 = TS.Zero, c02 = TS.Zero, c03 = TS.Zero, c10 = TS.Zero, c11 = TS.Zero, c12 = TS.Zero, c13 = TS.Zero;
        TV c20 = TS.Zero, c21 = TS.Zero, c22 = TS.Zero, c23 = TS.Zero;
        nint n = k1 - k0, step = 2 * width;
        for (nint k = 0; k < n; k += step)
        {
            nint o = k * es;
            Prefetch(p0 + o, p1 + o, p2 + o, p3 + o);
            TF.Load<TS, TV>(p0 + o, out TV a0, out TV b0);
            TF.Load<TS, TV>(p1 + o, out TV a1, out TV b1);
            TF.Load<TS, TV>(p2 + o, out TV a2, out TV b2);
            TF.Load<TS, TV>(p3 + o, out TV a3, out TV b3);
            TV xa, xb;
            xa = TS.Load(x0 + k); xb = TS.Load(x0 + k + width);
            c00 = TS.Fma(a0, xa, c00); c01 = TS.Fma(a1, xa, c01); c02 = TS.Fma(a2, xa, c02); c03 = TS.Fma(a3, xa, c03);
            c00 = TS.Fma(b0, xb, c00); c01 = TS.Fma(b1, xb, c01); c02 = TS.Fma(b2, xb, c02); c03 = TS.Fma(b3, xb, c03);
            xa = TS.Load(x1 + k); xb = TS.Load(x1 + k + width);
            c10 = TS.Fma(a0, xa, c10); c11 = TS.Fma(a1, xa, c11); c12 = TS.Fma(a2, xa, c12); c13 = TS.Fma(a3, xa, c13);
            c10 = TS.Fma(b0, xb, c10); c11 = TS.Fma(b1, xb, c11); c12 = TS.Fma(b2, xb, c12); c13 = TS.Fma(b3, xb, c13);
            xa = TS.Load(x2 + k); xb = TS.Load(x2 + k + width);
            c20 = TS.Fma(a0, xa, c20); c21 = TS.Fma(a1, xa, c21); c22 = TS.Fma(a2, xa, c22); c23 = TS.Fma(a3, xa, c23);
            c20 = TS.Fma(b0, xb, c20); c21 = TS.Fma(b1, xb, c21); c22 = TS.Fma(b2, xb, c22); c23 = TS.Fma(b3, xb, c23);
        }
        TS.Sum4(c00, c01, c02, c03, s + 0);
        TS.Sum4(c10, c11, c12, c13, s + 4);
        TS.Sum4(c20, c21, c22, c23, s + 8);
    }

    /// <summary>4 rows × 4 tokens: one accumulator per (row, token).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void T4x4(byte* w, nint ws, float* x, nint xs, int k0, int k1, float* s)
    {
        int width = TS.Width, es = TF.ElementSize;
        byte* p0 = w + (nint)k0 * es, p1 = p0 + ws, p2 = p1 + ws, p3 = p2 + ws;
        float* x0 = x + k0, x1 = x0 + xs, x2 = x1 + xs, x3 = x2 + xs;
        TV c00 = TS.Zero, c01 = TS.Zero, c02 = TS.Zero, c03 = TS.Zero, c10 = TS.Zero, c11 = TS.Zero, c12 = TS.Zero, c13 = TS.Zero;
        TV c20 = TS.Zero, c21 = TS.Zero, c22 = TS.Zero, c23 = TS.Zero, c30 = TS.Zero, c31 = TS.Zero, c32 = TS.Zero, c33 = TS.Zero;
        nint n = k1 - k0, step = 2 * width;
        for (nint k = 0; k < n; k += step)
        {
            nint o = k * es;
            Prefetch(p0 + o, p1 + o, p2 + o, p3 + o);
            TF.Load<TS, TV>(p0 + o, out TV a0, out TV b0);
            TF.Load<TS, TV>(p1 + o, out TV a1, out TV b1);
            TF.Load<TS, TV>(p2 + o, out TV a2, out TV b2);
            TF.Load<TS, TV>(p3 + o, out TV a3, out TV b3);
            TV xa, xb;
            xa = TS.Load(x0 + k); xb = TS.Load(x0 + k + width);
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
        TS.Sum4(c00, c01, c02, c03, s + 0);
        TS.Sum4(c10, c11, c12, c13, s + 4);
        TS.Sum4(c20, c21, c22, c23, s + 8);
        TS.Sum4(c30, c31, c32, c33, s + 12);
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
