using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;

namespace Daop.Kernels.Cpu.Quant;

/// <summary>
/// Register-tiled int8 block dots: 4 weight rows (1 for leftovers) × 1, 2 or 4 tokens over a row's
/// <c>nb</c> blocks. Each step unpacks every row once and applies it to all the tile's tokens. Results go to
/// s[t·4 + r].
/// </summary>
/// <remarks>
/// <c>w</c> is row 0 at block 0, <c>ws</c> bytes to the next row of the tile; <c>x</c> is token 0's q plane,
/// <c>xs</c> bytes to the next token, <c>pd</c> the plane distance (<see cref="QuantizedActivations"/>).
/// Generated shapes; keep them in step with each other.
/// </remarks>
internal static unsafe class QuantTiles<TB, TQ, TW, TV>
    where TB : struct, IBlockFormat where TQ : struct, IQuantSimd<TW, TV> where TW : struct where TV : struct
{
    /// <summary>Bytes ahead of the current step that the 4-row tiles prefetch each row (see <see cref="Gemm.Tiles{TF, TS, TV}"/>).</summary>
    const int PF = 2048;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Prefetch(byte* p0, byte* p1, byte* p2, byte* p3)
    {
        if (!Sse.IsSupported) return;
        Sse.Prefetch0(p0 + PF); Sse.Prefetch0(p1 + PF); Sse.Prefetch0(p2 + PF); Sse.Prefetch0(p3 + PF);
    }

    /// <summary>4 rows × 1 token.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void T4x1(byte* w, nint ws, byte* x, nint xs, nint pd, int nb, float* s)
    {
        byte* p0 = w, p1 = p0 + ws, p2 = p1 + ws, p3 = p2 + ws;
        TV c0 = TQ.Zero, c1 = TQ.Zero, c2 = TQ.Zero, c3 = TQ.Zero;
        int bb = TB.BlockBytes, step = TQ.Blocks, b = 0;
        for (; b + step <= nb; b += step)
        {
            nint o = (nint)b * bb;
            byte* x0 = x + (nint)b * 32;
            Prefetch(p0 + o, p1 + o, p2 + o, p3 + o);
            TW w0 = TQ.Load<TB>(p0 + o), w1 = TQ.Load<TB>(p1 + o), w2 = TQ.Load<TB>(p2 + o), w3 = TQ.Load<TB>(p3 + o);
            c0 = TQ.Dot<TB>(w0, x0, pd, c0); c1 = TQ.Dot<TB>(w1, x0, pd, c1);
            c2 = TQ.Dot<TB>(w2, x0, pd, c2); c3 = TQ.Dot<TB>(w3, x0, pd, c3);
        }
        if (b < nb)
        {
            nint o = (nint)b * bb;
            byte* x0 = x + (nint)b * 32;
            c0 = TQ.DotOne<TB>(p0 + o, x0, pd, c0); c1 = TQ.DotOne<TB>(p1 + o, x0, pd, c1);
            c2 = TQ.DotOne<TB>(p2 + o, x0, pd, c2); c3 = TQ.DotOne<TB>(p3 + o, x0, pd, c3);
        }
        TQ.Sum4(c0, c1, c2, c3, s);
    }

    /// <summary>4 rows × 2 tokens.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void T4x2(byte* w, nint ws, byte* x, nint xs, nint pd, int nb, float* s)
    {
        byte* p0 = w, p1 = p0 + ws, p2 = p1 + ws, p3 = p2 + ws;
        TV c00 = TQ.Zero, c01 = TQ.Zero, c02 = TQ.Zero, c03 = TQ.Zero;
        TV c10 = TQ.Zero, c11 = TQ.Zero, c12 = TQ.Zero, c13 = TQ.Zero;
        int bb = TB.BlockBytes, step = TQ.Blocks, b = 0;
        for (; b + step <= nb; b += step)
        {
            nint o = (nint)b * bb;
            byte* x0 = x + (nint)b * 32, x1 = x0 + xs;
            Prefetch(p0 + o, p1 + o, p2 + o, p3 + o);
            TW w0 = TQ.Load<TB>(p0 + o), w1 = TQ.Load<TB>(p1 + o), w2 = TQ.Load<TB>(p2 + o), w3 = TQ.Load<TB>(p3 + o);
            c00 = TQ.Dot<TB>(w0, x0, pd, c00); c01 = TQ.Dot<TB>(w1, x0, pd, c01);
            c02 = TQ.Dot<TB>(w2, x0, pd, c02); c03 = TQ.Dot<TB>(w3, x0, pd, c03);
            c10 = TQ.Dot<TB>(w0, x1, pd, c10); c11 = TQ.Dot<TB>(w1, x1, pd, c11);
            c12 = TQ.Dot<TB>(w2, x1, pd, c12); c13 = TQ.Dot<TB>(w3, x1, pd, c13);
        }
        if (b < nb)
        {
            nint o = (nint)b * bb;
            byte* x0 = x + (nint)b * 32, x1 = x0 + xs;
            c00 = TQ.DotOne<TB>(p0 + o, x0, pd, c00); c01 = TQ.DotOne<TB>(p1 + o, x0, pd, c01);
            c02 = TQ.DotOne<TB>(p2 + o, x0, pd, c02); c03 = TQ.DotOne<TB>(p3 + o, x0, pd, c03);
            c10 = TQ.DotOne<TB>(p0 + o, x1, pd, c10); c11 = TQ.DotOne<TB>(p1 + o, x1, pd, c11);
            c12 = TQ.DotOne<TB>(p2 + o, x1, pd, c12); c13 = TQ.DotOne<TB>(p3 + o, x1, pd, c13);
        }
        TQ.Sum4(c00, c01, c02, c03, s);
        TQ.Sum4(c10, c11, c12, c13, s + 4);
    }

    /// <summary>4 rows × 4 tokens.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void T4x4(byte* w, nint ws, byte* x, nint xs, nint pd, int nb, float* s)
    {
        byte* p0 = w, p1 = p0 + ws, p2 = p1 + ws, p3 = p2 + ws;
        TV c00 = TQ.Zero, c01 = TQ.Zero, c02 = TQ.Zero, c03 = TQ.Zero, c10 = TQ.Zero, c11 = TQ.Zero, c12 = TQ.Zero, c13 = TQ.Zero;
        TV c20 = TQ.Zero, c21 = TQ.Zero, c22 = TQ.Zero, c23 = TQ.Zero, c30 = TQ.Zero, c31 = TQ.Zero, c32 = TQ.Zero, c33 = TQ.Zero;
        int bb = TB.BlockBytes, step = TQ.Blocks, b = 0;
        for (; b + step <= nb; b += step)
        {
            nint o = (nint)b * bb;
            byte* x0 = x + (nint)b * 32, x1 = x0 + xs, x2 = x1 + xs, x3 = x2 + xs;
            Prefetch(p0 + o, p1 + o, p2 + o, p3 + o);
            TW w0 = TQ.Load<TB>(p0 + o), w1 = TQ.Load<TB>(p1 + o), w2 = TQ.Load<TB>(p2 + o), w3 = TQ.Load<TB>(p3 + o);
            c00 = TQ.Dot<TB>(w0, x0, pd, c00); c01 = TQ.Dot<TB>(w1, x0, pd, c01);
            c02 = TQ.Dot<TB>(w2, x0, pd, c02); c03 = TQ.Dot<TB>(w3, x0, pd, c03);
            c10 = TQ.Dot<TB>(w0, x1, pd, c10); c11 = TQ.Dot<TB>(w1, x1, pd, c11);
            c12 = TQ.Dot<TB>(w2, x1, pd, c12); c13 = TQ.Dot<TB>(w3, x1, pd, c13);
            c20 = TQ.Dot<TB>(w0, x2, pd, c20); c21 = TQ.Dot<TB>(w1, x2, pd, c21);
            c22 = TQ.Dot<TB>(w2, x2, pd, c22); c23 = TQ.Dot<TB>(w3, x2, pd, c23);
            c30 = TQ.Dot<TB>(w0, x3, pd, c30); c31 = TQ.Dot<TB>(w1, x3, pd, c31);
            c32 = TQ.Dot<TB>(w2, x3, pd, c32); c33 = TQ.Dot<TB>(w3, x3, pd, c33);
        }
        if (b < nb)
        {
            nint o = (nint)b * bb;
            byte* x0 = x + (nint)b * 32, x1 = x0 + xs, x2 = x1 + xs, x3 = x2 + xs;
            c00 = TQ.DotOne<TB>(p0 + o, x0, pd, c00); c01 = TQ.DotOne<TB>(p1 + o, x0, pd, c01);
            c02 = TQ.DotOne<TB>(p2 + o, x0, pd, c02); c03 = TQ.DotOne<TB>(p3 + o, x0, pd, c03);
            c10 = TQ.DotOne<TB>(p0 + o, x1, pd, c10); c11 = TQ.DotOne<TB>(p1 + o, x1, pd, c11);
            c12 = TQ.DotOne<TB>(p2 + o, x1, pd, c12); c13 = TQ.DotOne<TB>(p3 + o, x1, pd, c13);
            c20 = TQ.DotOne<TB>(p0 + o, x2, pd, c20); c21 = TQ.DotOne<TB>(p1 + o, x2, pd, c21);
            c22 = TQ.DotOne<TB>(p2 + o, x2, pd, c22); c23 = TQ.DotOne<TB>(p3 + o, x2, pd, c23);
            c30 = TQ.DotOne<TB>(p0 + o, x3, pd, c30); c31 = TQ.DotOne<TB>(p1 + o, x3, pd, c31);
            c32 = TQ.DotOne<TB>(p2 + o, x3, pd, c32); c33 = TQ.DotOne<TB>(p3 + o, x3, pd, c33);
        }
        TQ.Sum4(c00, c01, c02, c03, s);
        TQ.Sum4(c10, c11, c12, c13, s + 4);
        TQ.Sum4(c20, c21, c22, c23, s + 8);
        TQ.Sum4(c30, c31, c32, c33, s + 12);
    }

    /// <summary>1 row × 1 token, for the rows left over after 4-row tiles.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float T1x1(byte* w, byte* x, nint pd, int nb)
    {
        TV c = TQ.Zero;
        int bb = TB.BlockBytes, step = TQ.Blocks, b = 0;
        for (; b + step <= nb; b += step) c = TQ.Dot<TB>(TQ.Load<TB>(w + (nint)b * bb), x + (nint)b * 32, pd, c);
        if (b < nb) c = TQ.DotOne<TB>(w + (nint)b * bb, x + (nint)b * 32, pd, c);
        return TQ.Sum(c);
    }
}
