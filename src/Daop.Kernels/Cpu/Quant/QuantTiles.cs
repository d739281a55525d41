using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Daop.Kernels.Cpu.Gemm;

namespace Daop.Kernels.Cpu.Quant;

/// <summary>
/// Register-tiled int8 quad dots on AVX2 (<see cref="QuadDot{TB}"/>): 4 weight rows (1 for leftovers) × 1, 2 or 4
/// tokens over <c>quads</c> quads. Each row's quad (values and scales) is unpacked once and applied to all the
/// tile's tokens. Results go to s[t·4 + r].
/// </summary>
/// <remarks>
/// <c>w</c> is row 0 at the first quad, <c>ws</c> bytes to the next row of the tile; <c>x</c> and <c>xl</c> are token
/// 0's values and lane data at the first quad (<see cref="QuantizedActivations"/>), <c>xs</c> bytes to the next token.
/// Generated shapes; keep them in step with each other.
/// </remarks>
internal static unsafe class QuantTiles<TB> where TB : struct, IBlockFormat
{
    /// <summary>Bytes ahead of the current quad that the 4-row tiles prefetch each row (as <see cref="Gemm.Tiles{TF, TS, TV}"/>).</summary>
    const int PF = 2048;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Prefetch(byte* p0, byte* p1, byte* p2, byte* p3)
    {
        Prefetch(p0, p1);
        Prefetch(p2, p3);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Prefetch(byte* p0, byte* p1)
    {
        if (!Sse.IsSupported) return;
        for (int o = 0; o < 4 * TB.BlockBytes; o += 64)
        {
            Sse.Prefetch0(p0 + PF + o); Sse.Prefetch0(p1 + PF + o);
        }
    }

    /// <summary>4 rows × 1 token (the decode GEMV).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void T4x1(byte* w, nint ws, byte* x, byte* xl, nint xs, int quads, float* s)
    {
        byte* p0 = w, p1 = p0 + ws, p2 = p1 + ws, p3 = p2 + ws;
        Vector256<float> c00 = default, c01 = default, c02 = default, c03 = default;
        nint qb = 4 * TB.BlockBytes;
        for (int k = 0; k < quads; k++)
        {
            nint o = k * qb;
            byte* xq0 = x + (nint)k * 128, xk0 = xl + (nint)k * 64;
            Prefetch(p0 + o, p1 + o, p2 + o, p3 + o);
            QuadDot<TB>.Unpack(p0 + o, out var u0, out var u1, out var u2, out var u3, out var s0, out var s1, out var s2, out var s3, out var sr, out var sm);
            c00 = QuadDot<TB>.Dot(u0, u1, u2, u3, s0, s1, s2, s3, xq0, xk0, sr, sm, c00);
            QuadDot<TB>.Unpack(p1 + o, out u0, out u1, out u2, out u3, out s0, out s1, out s2, out s3, out sr, out sm);
            c01 = QuadDot<TB>.Dot(u0, u1, u2, u3, s0, s1, s2, s3, xq0, xk0, sr, sm, c01);
            QuadDot<TB>.Unpack(p2 + o, out u0, out u1, out u2, out u3, out s0, out s1, out s2, out s3, out sr, out sm);
            c02 = QuadDot<TB>.Dot(u0, u1, u2, u3, s0, s1, s2, s3, xq0, xk0, sr, sm, c02);
            QuadDot<TB>.Unpack(p3 + o, out u0, out u1, out u2, out u3, out s0, out s1, out s2, out s3, out sr, out sm);
            c03 = QuadDot<TB>.Dot(u0, u1, u2, u3, s0, s1, s2, s3, xq0, xk0, sr, sm, c03);
        }
        Simd256.Sum4(c00, c01, c02, c03, s + 0);
    }

    /// <summary>4 rows × 2 tokens.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void T4x2(byte* w, nint ws, byte* x, byte* xl, nint xs, int quads, float* s)
    {
        byte* p0 = w, p1 = p0 + ws, p2 = p1 + ws, p3 = p2 + ws;
        Vector256<float> c00 = default, c01 = default, c02 = default, c03 = default, c10 = default, c11 = default, c12 = default, c13 = default;
        nint qb = 4 * TB.BlockBytes;
        for (int k = 0; k < quads; k++)
        {
            nint o = k * qb;
            byte* xq0 = x + (nint)k * 128, xk0 = xl + (nint)k * 64;
            byte* xq1 = xq0 + xs, xk1 = xk0 + xs;
            Prefetch(p0 + o, p1 + o, p2 + o, p3 + o);
            QuadDot<TB>.Unpack(p0 + o, out var u0, out var u1, out var u2, out var u3, out var s0, out var s1, out var s2, out var s3, out var sr, out var sm);
            c00 = QuadDot<TB>.Dot(u0, u1, u2, u3, s0, s1, s2, s3, xq0, xk0, sr, sm, c00);
            c10 = QuadDot<TB>.Dot(u0, u1, u2, u3, s0, s1, s2, s3, xq1, xk1, sr, sm, c10);
            QuadDot<TB>.Unpack(p1 + o, out u0, out u1, out u2, out u3, out s0, out s1, out s2, out s3, out sr, out sm);
            c01 = QuadDot<TB>.Dot(u0, u1, u2, u3, s0, s1, s2, s3, xq0, xk0, sr, sm, c01);
            c11 = QuadDot<TB>.Dot(u0, u1, u2, u3, s0, s1, s2, s3, xq1, xk1, sr, sm, c11);
            QuadDot<TB>.Unpack(p2 + o, out u0, out u1, out u2, out u3, out s0, out s1, out s2, out s3, out sr, out sm);
            c02 = QuadDot<TB>.Dot(u0, u1, u2, u3, s0, s1, s2, s3, xq0, xk0, sr, sm, c02);
            c12 = QuadDot<TB>.Dot(u0, u1, u2, u3, s0, s1, s2, s3, xq1, xk1, sr, sm, c12);
            QuadDot<TB>.Unpack(p3 + o, out u0, out u1, out u2, out u3, out s0, out s1, out s2, out s3, out sr, out sm);
            c03 = QuadDot<TB>.Dot(u0, u1, u2, u3, s0, s1, s2, s3, xq0, xk0, sr, sm, c03);
            c13 = QuadDot<TB>.Dot(u0, u1, u2, u3, s0, s1, s2, s3, xq1, xk1, sr, sm, c13);
        }
        Simd256.Sum4(c00, c01, c02, c03, s + 0);
        Simd256.Sum4(c10, c11, c12, c13, s + 4);
    }

    /// <summary>
    /// 4 rows × 4 tokens, as two 2-row halves (<see cref="T2x4"/>): unrolled whole, the tile's 4 unpacks and 16 dots ran
    /// past the JIT's inlining budget and some dots stayed calls (IQ4_NL's tile ran at half Q4_0's speed).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void T4x4(byte* w, nint ws, byte* x, byte* xl, nint xs, int quads, float* s)
    {
        T2x4(w, ws, x, xl, xs, quads, s);
        T2x4(w + 2 * ws, ws, x, xl, xs, quads, s + 2);
    }

    /// <summary>2 rows × 4 tokens into s[t·4 + r] (r = 0, 1).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void T2x4(byte* w, nint ws, byte* x, byte* xl, nint xs, int quads, float* s)
    {
        byte* p0 = w, p1 = p0 + ws;
        Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default, c30 = default, c31 = default;
        nint qb = 4 * TB.BlockBytes;
        for (int k = 0; k < quads; k++)
        {
            nint o = k * qb;
            byte* xq0 = x + (nint)k * 128, xk0 = xl + (nint)k * 64;
            byte* xq1 = xq0 + xs, xk1 = xk0 + xs;
            byte* xq2 = xq1 + xs, xk2 = xk1 + xs;
            byte* xq3 = xq2 + xs, xk3 = xk2 + xs;
            Prefetch(p0 + o, p1 + o);
            QuadDot<TB>.Unpack(p0 + o, out var u0, out var u1, out var u2, out var u3, out var s0, out var s1, out var s2, out var s3, out var sr, out var sm);
            c00 = QuadDot<TB>.Dot(u0, u1, u2, u3, s0, s1, s2, s3, xq0, xk0, sr, sm, c00);
            c10 = QuadDot<TB>.Dot(u0, u1, u2, u3, s0, s1, s2, s3, xq1, xk1, sr, sm, c10);
            c20 = QuadDot<TB>.Dot(u0, u1, u2, u3, s0, s1, s2, s3, xq2, xk2, sr, sm, c20);
            c30 = QuadDot<TB>.Dot(u0, u1, u2, u3, s0, s1, s2, s3, xq3, xk3, sr, sm, c30);
            QuadDot<TB>.Unpack(p1 + o, out u0, out u1, out u2, out u3, out s0, out s1, out s2, out s3, out sr, out sm);
            c01 = QuadDot<TB>.Dot(u0, u1, u2, u3, s0, s1, s2, s3, xq0, xk0, sr, sm, c01);
            c11 = QuadDot<TB>.Dot(u0, u1, u2, u3, s0, s1, s2, s3, xq1, xk1, sr, sm, c11);
            c21 = QuadDot<TB>.Dot(u0, u1, u2, u3, s0, s1, s2, s3, xq2, xk2, sr, sm, c21);
            c31 = QuadDot<TB>.Dot(u0, u1, u2, u3, s0, s1, s2, s3, xq3, xk3, sr, sm, c31);
        }
        s[0] = Vector256.Sum(c00); s[1] = Vector256.Sum(c01);
        s[4] = Vector256.Sum(c10); s[5] = Vector256.Sum(c11);
        s[8] = Vector256.Sum(c20); s[9] = Vector256.Sum(c21);
        s[12] = Vector256.Sum(c30); s[13] = Vector256.Sum(c31);
    }

    /// <summary>1 row × 1 token, for the rows left over after 4-row tiles.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float T1x1(byte* w, byte* x, byte* xl, int quads)
    {
        Vector256<float> c = default;
        nint qb = 4 * TB.BlockBytes;
        for (int k = 0; k < quads; k++)
        {
            QuadDot<TB>.Unpack(w + k * qb, out var u0, out var u1, out var u2, out var u3, out var s0, out var s1, out var s2, out var s3, out var sr, out var sm);
            c = QuadDot<TB>.Dot(u0, u1, u2, u3, s0, s1, s2, s3, x + (nint)k * 128, xl + (nint)k * 64, sr, sm, c);
        }
        return Simd256.Sum(c);
    }
}
