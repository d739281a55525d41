using System.Runtime.CompilerServices;
using Daop.Kernels.Cpu.Gemm;

namespace Daop.Kernels.Generated;

/// <summary>The dot-product microkernels of the shaped expert, with row length and token count as type parameters.</summary>
internal static unsafe partial class ShapedExpertFfn<TShape, TF, TS, TV>
{
    /// <summary>A row length known at JIT time: lets one dot kernel serve both projections with constant bounds.</summary>
    internal interface IColumns
    {
        static abstract int Cols { get; }
    }

    /// <summary>Gate/up rows: Hidden columns.</summary>
    internal struct HiddenCols : IColumns
    {
        public static int Cols => TShape.Hidden;
    }

    /// <summary>Down rows: Inter columns.</summary>
    internal struct InterCols : IColumns
    {
        public static int Cols => TShape.Inter;
    }

    /// <summary>
    /// dst[t·ds + j] = row j (of 4 at <paramref name="w"/>, TD.Cols weights each) · token t, for t &lt; TT.Count ≤ 3.
    /// <paramref name="xp"/> ([tokens, xps]) is x in kernel column order for the vector part, <paramref name="x"/>
    /// ([tokens, xs]) the natural order for the scalar tail.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Dot4<TD, TT>(byte* w, float* xp, nint xps, float* x, nint xs, float* dst, nint ds)
        where TD : struct, IColumns where TT : struct, ITokens
    {
        int width = TS.Width, es = TF.ElementSize, cols = TD.Cols, main = MainCols<TD>(), n = TT.Count;
        nint ws = (nint)cols * es;
        byte* p0 = w, p1 = p0 + ws, p2 = p1 + ws, p3 = p2 + ws;
        if (n == 1)
        {
            // One token: separate even/odd accumulators give eight independent FMA chains to hide FMA latency.
            TV c0 = TS.Zero, c1 = TS.Zero, c2 = TS.Zero, c3 = TS.Zero;
            TV d0 = TS.Zero, d1 = TS.Zero, d2 = TS.Zero, d3 = TS.Zero;
            for (nint k = 0; k < main; k += 2 * width)
            {
                nint o = k * es;
                TV xa = TS.Load(xp + k), xb = TS.Load(xp + k + width);
                TF.Load<TS, TV>(p0 + o, out TV a0, out TV b0);
                c0 = TS.Fma(a0, xa, c0); d0 = TS.Fma(b0, xb, d0);
                TF.Load<TS, TV>(p1 + o, out TV a1, out TV b1);
                c1 = TS.Fma(a1, xa, c1); d1 = TS.Fma(b1, xb, d1);
                TF.Load<TS, TV>(p2 + o, out TV a2, out TV b2);
                c2 = TS.Fma(a2, xa, c2); d2 = TS.Fma(b2, xb, d2);
                TF.Load<TS, TV>(p3 + o, out TV a3, out TV b3);
                c3 = TS.Fma(a3, xa, c3); d3 = TS.Fma(b3, xb, d3);
            }
            TS.Sum4(TS.Add(c0, d0), TS.Add(c1, d1), TS.Add(c2, d2), TS.Add(c3, d3), dst);
        }
        else
        {
            // 2–3 tokens: each weight step is widened once and used for every token, so the weights are streamed
            // once per call; the 4·n accumulators are independent chains. Activations come from L1 (they are
            // n · TD.Cols floats) as memory operands of the FMAs, which keeps this within 16 vector registers.
            float* x0 = xp, x1 = x0 + xps, x2 = x1 + xps;
            TV c00 = TS.Zero, c01 = TS.Zero, c02 = TS.Zero;
            TV c10 = TS.Zero, c11 = TS.Zero, c12 = TS.Zero;
            TV c20 = TS.Zero, c21 = TS.Zero, c22 = TS.Zero;
            TV c30 = TS.Zero, c31 = TS.Zero, c32 = TS.Zero;
            for (nint k = 0; k < main; k += 2 * width)
            {
                nint o = k * es, kb = k + width;
                TF.Load<TS, TV>(p0 + o, out TV a, out TV b);
                c00 = TS.Fma(b, TS.Load(x0 + kb), TS.Fma(a, TS.Load(x0 + k), c00));
                c01 = TS.Fma(b, TS.Load(x1 + kb), TS.Fma(a, TS.Load(x1 + k), c01));
                if (n > 2) c02 = TS.Fma(b, TS.Load(x2 + kb), TS.Fma(a, TS.Load(x2 + k), c02));
                TF.Load<TS, TV>(p1 + o, out a, out b);
                c10 = TS.Fma(b, TS.Load(x0 + kb), TS.Fma(a, TS.Load(x0 + k), c10));
                c11 = TS.Fma(b, TS.Load(x1 + kb), TS.Fma(a, TS.Load(x1 + k), c11));
                if (n > 2) c12 = TS.Fma(b, TS.Load(x2 + kb), TS.Fma(a, TS.Load(x2 + k), c12));
                TF.Load<TS, TV>(p2 + o, out a, out b);
                c20 = TS.Fma(b, TS.Load(x0 + kb), TS.Fma(a, TS.Load(x0 + k), c20));
                c21 = TS.Fma(b, TS.Load(x1 + kb), TS.Fma(a, TS.Load(x1 + k), c21));
                if (n > 2) c22 = TS.Fma(b, TS.Load(x2 + kb), TS.Fma(a, TS.Load(x2 + k), c22));
                TF.Load<TS, TV>(p3 + o, out a, out b);
                c30 = TS.Fma(b, TS.Load(x0 + kb), TS.Fma(a, TS.Load(x0 + k), c30));
                c31 = TS.Fma(b, TS.Load(x1 + kb), TS.Fma(a, TS.Load(x1 + k), c31));
                if (n > 2) c32 = TS.Fma(b, TS.Load(x2 + kb), TS.Fma(a, TS.Load(x2 + k), c32));
            }
            TS.Sum4(c00, c10, c20, c30, dst);
            TS.Sum4(c01, c11, c21, c31, dst + ds);
            if (n > 2) TS.Sum4(c02, c12, c22, c32, dst + 2 * ds);
        }
        if (main < cols) // a constant: shapes without a column tail compile none
        {
            for (int t = 0; t < n; t++)
            {
                float* xt = x + t * xs, dt = dst + t * ds;
                for (int c = main; c < cols; c++)
                {
                    float xc = xt[c];
                    dt[0] += xc * TF.Widen(p0, c);
                    dt[1] += xc * TF.Widen(p1, c);
                    dt[2] += xc * TF.Widen(p2, c);
                    dt[3] += xc * TF.Widen(p3, c);
                }
            }
        }
    }

    /// <summary>dst[t·ds] = one row · token t, for the rows after the last 4-row tile (when the row count is not a multiple of 4).</summary>
    static void Dot1<TD, TT>(byte* w, float* xp, nint xps, float* x, nint xs, float* dst, nint ds)
        where TD : struct, IColumns where TT : struct, ITokens
    {
        int width = TS.Width, es = TF.ElementSize, cols = TD.Cols, main = MainCols<TD>();
        for (int t = 0; t < TT.Count; t++)
        {
            float* xpt = xp + t * xps, xt = x + t * xs;
            TV c0 = TS.Zero, d0 = TS.Zero;
            for (nint k = 0; k < main; k += 2 * width)
            {
                TF.Load<TS, TV>(w + k * es, out TV a, out TV b);
                c0 = TS.Fma(a, TS.Load(xpt + k), c0);
                d0 = TS.Fma(b, TS.Load(xpt + k + width), d0);
            }
            float acc = TS.Sum(TS.Add(c0, d0));
            for (int c = main; c < cols; c++) acc += xt[c] * TF.Widen(w, c);
            dst[t * ds] = acc;
        }
    }
}
