using System.Runtime.CompilerServices;
using ILGPU;

namespace Daop.Kernels.Gpu;

/// <summary>
/// Dot products of block-format weight rows (<see cref="BlockLayout"/>) with fp32 activations: what the decode GEMV
/// (<see cref="GemvKernels"/>) and the row kernels (<see cref="GpuMath"/>'s row dot) run (the tile kernels:
/// <see cref="BlockTiles"/>) when their format type argument has <see cref="IWeightFormat.BlockChunks"/> &gt; 0, so one kernel per op serves
/// every format through <see cref="Formats"/>. Lanes stride over a row's value chunks (lane, lane + lanes, ...): per
/// chunk one 16-byte weight load, one 16-byte load of its group's scales (shared by the group's lanes), and per part a
/// <see cref="Float4"/> of activations that the neighbouring lanes' loads continue; codes are widened exactly to fp32
/// (no int-to-float conversions: magic-number floats, or fp16 for MXFP4), each part's 4-term dot is scaled by its
/// block's scale (plus the block's min times the part's activation sum, for Q4_K) and accumulated in fp32. Blocks after
/// the last whole group are read with bounds checks (the last may be partial). The scalar twin is
/// <see cref="BlockLayout.Element"/> with a plain dot product.
/// </summary>
internal static class BlockDots
{
    /// <summary>
    /// The lane's share of W[row]·x[xRow..] (one token, the decode path); <paramref name="valid"/> false contributes 0.
    /// <paramref name="xRow"/> must be a multiple of 4. Up to four chunks in flight per lane (<typeparamref name="TU"/>; 8 runs as 4).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float Row<TW, TU>(ArrayView<Chunk16> w, long row, bool valid, ArrayView<float> x, ArrayView<Float4> x4,
        long xRow, int cols, int lane, int lanes) where TW : struct, IWeightFormat where TU : struct, IUnroll
    {
        int bc = Bc<TW>(), v = 8 * bc, u = default(TU).Loads;
        int blocks = (cols + 31) >> 5;
        int full = valid ? (blocks >> 3) * v : 0, all = valid ? blocks * bc : 0;
        long scales = row + (long)blocks * bc;
        var xv = x4.SubView(xRow >> 2);
        float a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        int j = lane;
        if (u > 1)
        {
            int n = u > 2 ? 4 : 2;
            for (; j + (n - 1) * lanes < full; j += n * lanes)
            {
                Chunk16 c0 = w[row + j], c1 = w[row + j + lanes], c2 = default, c3 = default;
                Chunk16 s0 = w[scales + ScaleChunk<TW>(j)], s1 = w[scales + ScaleChunk<TW>(j + lanes)], s2 = default, s3 = default;
                if (n > 2)
                {
                    c2 = w[row + j + 2 * lanes]; c3 = w[row + j + 3 * lanes];
                    s2 = w[scales + ScaleChunk<TW>(j + 2 * lanes)]; s3 = w[scales + ScaleChunk<TW>(j + 3 * lanes)];
                }
                a0 = Full<TW>(a0, c0, s0, j, xv);
                a1 = Full<TW>(a1, c1, s1, j + lanes, xv);
                if (n > 2)
                {
                    a2 = Full<TW>(a2, c2, s2, j + 2 * lanes, xv);
                    a3 = Full<TW>(a3, c3, s3, j + 3 * lanes, xv);
                }
            }
        }
        for (; j < full; j += lanes) a0 = Full<TW>(a0, w[row + j], w[scales + ScaleChunk<TW>(j)], j, xv);
        for (; j < all; j += lanes) a1 += Tail<TW>(w, row, scales, j, full, x, x4, xRow, cols, 1);
        return (a0 + a1) + (a2 + a3);
    }

    /// <summary>
    /// The lane's shares of Wg[rowG]·x and Wu[rowU]·x in one pass (chunk offsets of the two rows; the decode gate/up, or two
    /// rows of one matrix): formats with the same chunk geometry read each activation <see cref="Float4"/> once for both.
    /// Two chunks of each in flight. <paramref name="xRow"/> must be a multiple of 4.
    /// </summary>
    internal static Acc2 Row2<TG, TU>(ArrayView<Chunk16> wg, ArrayView<Chunk16> wu, long rowG, long rowU, bool valid, ArrayView<float> x,
        ArrayView<Float4> x4, long xRow, int cols, int lane, int lanes) where TG : struct, IWeightFormat where TU : struct, IWeightFormat
    {
        int bc = Bc<TG>(), v = 8 * bc;
        int blocks = (cols + 31) >> 5;
        int full = valid ? (blocks >> 3) * v : 0, all = valid ? blocks * bc : 0;
        long scalesG = rowG + (long)blocks * bc, scalesU = rowU + (long)blocks * bc;
        var xv = x4.SubView(xRow >> 2);
        Acc2 a0 = default, a1 = default;
        int j = lane;
        for (; j + lanes < full; j += 2 * lanes)
        {
            Chunk16 g0 = wg[rowG + j], g1 = wg[rowG + j + lanes], u0 = wu[rowU + j], u1 = wu[rowU + j + lanes];
            Chunk16 gs0 = wg[scalesG + ScaleChunk<TG>(j)], gs1 = wg[scalesG + ScaleChunk<TG>(j + lanes)];
            Chunk16 us0 = wu[scalesU + ScaleChunk<TU>(j)], us1 = wu[scalesU + ScaleChunk<TU>(j + lanes)];
            a0 = Full2<TG, TU>(a0, g0, gs0, u0, us0, j, xv);
            a1 = Full2<TG, TU>(a1, g1, gs1, u1, us1, j + lanes, xv);
        }
        if (j < full)
            a0 = Full2<TG, TU>(a0, wg[rowG + j], wg[scalesG + ScaleChunk<TG>(j)], wu[rowU + j], wu[scalesU + ScaleChunk<TU>(j)], j, xv);
        for (j = full + lane; j < all; j += lanes)
        {
            a1.G += Tail<TG>(wg, rowG, scalesG, j, full, x, x4, xRow, cols, 1);
            a1.U += Tail<TU>(wu, rowU, scalesU, j, full, x, x4, xRow, cols, 1);
        }
        a0.G += a1.G;
        a0.U += a1.U;
        return a0;
    }

    /// <summary>
    /// The lane's shares of W[row]·x[row k] for k &lt; <paramref name="nt"/> (up to four x rows starting at elements
    /// x0..x3; rows 16-byte aligned when <paramref name="aligned"/> ≠ 0), each chunk decoded once for all of them.
    /// </summary>
    internal static Acc4 Rows<TW>(ArrayView<Chunk16> w, long row, bool valid, ArrayView<float> x, ArrayView<Float4> x4, int cols,
        int aligned, long x0, long x1, long x2, long x3, int nt, int lane, int lanes) where TW : struct, IWeightFormat
    {
        int bc = Bc<TW>();
        int blocks = (cols + 31) >> 5;
        int full = (blocks >> 3) * 8 * bc, all = valid ? blocks * bc : 0;
        long scales = row + (long)blocks * bc;
        Acc4 a;
        a.A0 = 0; a.A1 = 0; a.A2 = 0; a.A3 = 0;
        for (int j = lane; j < all; j += lanes)
        {
            Locate<TW>(j, full, out int col, out int step, out int sci, out int g, out int i, out int b);
            Chunk16 c = w[row + j], sc = w[scales + sci];
            a = RowsPair<TW>(a, c, sc, g, i, b, 0, x, x4, col, step, cols, aligned, x0, x1, x2, x3, nt);
            a = RowsPair<TW>(a, c, sc, g, i, b, 1, x, x4, col, step, cols, aligned, x0, x1, x2, x3, nt);
            if (bc == 1)
            {
                a = RowsPair<TW>(a, c, sc, g, i, b, 2, x, x4, col, step, cols, aligned, x0, x1, x2, x3, nt);
                a = RowsPair<TW>(a, c, sc, g, i, b, 3, x, x4, col, step, cols, aligned, x0, x1, x2, x3, nt);
            }
        }
        return a;
    }

    // Parts 2q and 2q+1 of one chunk against up to four x rows (q a constant at every call).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Acc4 RowsPair<TW>(Acc4 a, Chunk16 c, Chunk16 sc, int g, int i, int b, int q, ArrayView<float> x, ArrayView<Float4> x4,
        int col, int step, int cols, int aligned, long x0, long x1, long x2, long x3, int nt) where TW : struct, IWeightFormat
    {
        var wv = default(TW).Widen(c, q);
        float d0 = Scale<TW>(sc, g, i, b, 2 * q), d1 = Scale<TW>(sc, g, i, b, 2 * q + 1);
        float m0 = Min<TW>(sc, g, i, b, 2 * q), m1 = Min<TW>(sc, g, i, b, 2 * q + 1);
        int ca = col + 2 * q * step, cb = ca + step;
        a.A0 = Parts<TW>(a.A0, wv, d0, d1, m0, m1, X(x, x4, x0, ca, cols, aligned), X(x, x4, x0, cb, cols, aligned));
        if (nt > 1) a.A1 = Parts<TW>(a.A1, wv, d0, d1, m0, m1, X(x, x4, x1, ca, cols, aligned), X(x, x4, x1, cb, cols, aligned));
        if (nt > 2) a.A2 = Parts<TW>(a.A2, wv, d0, d1, m0, m1, X(x, x4, x2, ca, cols, aligned), X(x, x4, x2, cb, cols, aligned));
        if (nt > 3) a.A3 = Parts<TW>(a.A3, wv, d0, d1, m0, m1, X(x, x4, x3, ca, cols, aligned), X(x, x4, x3, cb, cols, aligned));
        return a;
    }

    /// <summary>Element <paramref name="c"/> of the row at chunk <paramref name="row"/> (the embedding lookup).</summary>
    internal static float Element<TW>(ArrayView<Chunk16> w, long row, int cols, int c) where TW : struct, IWeightFormat
    {
        var f = default(TW);
        int bc = Bc<TW>(), v = 8 * bc;
        int blocks = (cols + 31) >> 5, fullBlocks = blocks >> 3 << 3;
        int b = c >> 5, p4 = (c & 31) >> 2, r = c & 3;
        int chunk, k;
        if (b < fullBlocks)
        {
            int p = 8 * (b & 7) + p4;
            chunk = (b >> 3) * v + p % v;
            k = p / v;
        }
        else
        {
            chunk = b * bc + p4 % bc;
            k = p4 / bc;
        }
        var wv = f.Widen(w[row + chunk], k >> 1);
        var sc = w[row + (long)blocks * bc + ((b * f.ScaleBytes) >> 4)];
        return Value<TW>(Pick(wv, 4 * (k & 1) + r), f.BlockScale(sc, b, k), f.BlockMin(sc, b, k));
    }

    // Value chunks per block, never 0: ILGPU folds constants in the dead block branches of the unblocked formats' kernels too.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static int Bc<TW>() where TW : struct, IWeightFormat => default(TW).BlockChunks > 0 ? default(TW).BlockChunks : 1;

    // a + Σ over value chunk j of a whole group: part k of chunk i of group g reads the Float4 64g + i + V·k of the row.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float Full<TW>(float a, Chunk16 c, Chunk16 sc, int j, ArrayView<Float4> xv) where TW : struct, IWeightFormat
    {
        var f = default(TW);
        int v = 8 * Bc<TW>(), g = j / v, i = j - g * v;
        int o = 64 * g + i;
        a = GroupPair<TW>(a, f.Widen(c, 0), sc, g, i, 0, xv[o], xv[o + v]);
        a = GroupPair<TW>(a, f.Widen(c, 1), sc, g, i, 1, xv[o + 2 * v], xv[o + 3 * v]);
        if (Bc<TW>() == 1)
        {
            a = GroupPair<TW>(a, f.Widen(c, 2), sc, g, i, 2, xv[o + 4 * v], xv[o + 5 * v]);
            a = GroupPair<TW>(a, f.Widen(c, 3), sc, g, i, 3, xv[o + 6 * v], xv[o + 7 * v]);
        }
        return a;
    }

    // Parts 2q and 2q+1 of a whole group's chunk against the activations xa, xb (q a constant at every call).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float GroupPair<TW>(float a, Widened w, Chunk16 sc, int g, int i, int q, Float4 xa, Float4 xb) where TW : struct, IWeightFormat
    {
        var f = default(TW);
        return Parts<TW>(a, w, f.GroupScale(sc, g, i, 2 * q), f.GroupScale(sc, g, i, 2 * q + 1),
            f.GroupMin(sc, g, i, 2 * q), f.GroupMin(sc, g, i, 2 * q + 1), xa, xb);
    }

    // Full for two matrices of one chunk geometry: each activation part loaded once.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Acc2 Full2<TG, TU>(Acc2 a, Chunk16 cg, Chunk16 sg, Chunk16 cu, Chunk16 su, int j, ArrayView<Float4> xv)
        where TG : struct, IWeightFormat where TU : struct, IWeightFormat
    {
        int v = 8 * Bc<TG>(), g = j / v, i = j - g * v;
        int o = 64 * g + i;
        a = Pair2<TG, TU>(a, cg, sg, cu, su, g, i, 0, xv[o], xv[o + v]);
        a = Pair2<TG, TU>(a, cg, sg, cu, su, g, i, 1, xv[o + 2 * v], xv[o + 3 * v]);
        if (Bc<TG>() == 1)
        {
            a = Pair2<TG, TU>(a, cg, sg, cu, su, g, i, 2, xv[o + 4 * v], xv[o + 5 * v]);
            a = Pair2<TG, TU>(a, cg, sg, cu, su, g, i, 3, xv[o + 6 * v], xv[o + 7 * v]);
        }
        return a;
    }

    // Parts 2q and 2q+1 of a gate and an up chunk against the activations xa, xb (q a constant at every call).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Acc2 Pair2<TG, TU>(Acc2 a, Chunk16 cg, Chunk16 sg, Chunk16 cu, Chunk16 su, int g, int i, int q, Float4 xa, Float4 xb)
        where TG : struct, IWeightFormat where TU : struct, IWeightFormat
    {
        a.G = GroupPair<TG>(a.G, default(TG).Widen(cg, q), sg, g, i, q, xa, xb);
        a.U = GroupPair<TU>(a.U, default(TU).Widen(cu, q), su, g, i, q, xa, xb);
        return a;
    }

    // Σ over value chunk j past the whole groups (one block; columns bounds-checked).
    static float Tail<TW>(ArrayView<Chunk16> w, long row, long scales, int j, int full, ArrayView<float> x, ArrayView<Float4> x4,
        long xRow, int cols, int aligned) where TW : struct, IWeightFormat
    {
        Locate<TW>(j, full, out int col, out int step, out int sci, out _, out _, out int b);
        Chunk16 c = w[row + j], sc = w[scales + sci];
        float s = TailPair<TW>(0, c, sc, b, 0, x, x4, xRow, col, step, cols, aligned);
        s = TailPair<TW>(s, c, sc, b, 1, x, x4, xRow, col, step, cols, aligned);
        if (Bc<TW>() == 1)
        {
            s = TailPair<TW>(s, c, sc, b, 2, x, x4, xRow, col, step, cols, aligned);
            s = TailPair<TW>(s, c, sc, b, 3, x, x4, xRow, col, step, cols, aligned);
        }
        return s;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float TailPair<TW>(float s, Chunk16 c, Chunk16 sc, int b, int q, ArrayView<float> x, ArrayView<Float4> x4, long xRow,
        int col, int step, int cols, int aligned) where TW : struct, IWeightFormat
    {
        var f = default(TW);
        int ca = col + 2 * q * step;
        return Parts<TW>(s, f.Widen(c, q), f.BlockScale(sc, b, 2 * q), f.BlockScale(sc, b, 2 * q + 1), f.BlockMin(sc, b, 2 * q),
            f.BlockMin(sc, b, 2 * q + 1), X(x, x4, xRow, ca, cols, aligned), X(x, x4, xRow, ca + step, cols, aligned));
    }

    // The scale chunk (relative to the scale region) of value chunk j of a whole group.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static int ScaleChunk<TW>(int j) where TW : struct, IWeightFormat =>
        (j / (8 * Bc<TW>()) * default(TW).ScaleBytes) >> 1;

    // Where value chunk j reads: part 0's first column, columns between parts, its scale chunk (relative to the scale
    // region), and its group g and index i in it (whole groups; g = -1 past them) or its block b.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Locate<TW>(int j, int full, out int col, out int step, out int scaleChunk, out int g, out int i, out int b)
        where TW : struct, IWeightFormat
    {
        int bc = Bc<TW>(), v = 8 * bc;
        if (j < full)
        {
            g = j / v; i = j - g * v; b = 8 * g;
            col = 256 * g + 4 * i; step = 4 * v;
        }
        else
        {
            int t = j - full;
            g = -1; b = (full / v << 3) + t / bc; i = t - t / bc * bc;
            col = 32 * b + 4 * i; step = 4 * bc;
        }
        scaleChunk = (b * default(TW).ScaleBytes) >> 4;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float Scale<TW>(Chunk16 sc, int g, int i, int b, int k) where TW : struct, IWeightFormat =>
        g >= 0 ? default(TW).GroupScale(sc, g, i, k) : default(TW).BlockScale(sc, b, k);

    // A widened code times its part's scale, plus the min for the formats that have one (no + 0 for the others: a float
    // add of zero is not folded away).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float Value<TW>(float w, float d, float m) where TW : struct, IWeightFormat => default(TW).HasMin ? w * d + m : w * d;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float Min<TW>(Chunk16 sc, int g, int i, int b, int k) where TW : struct, IWeightFormat =>
        !default(TW).HasMin ? 0f : g >= 0 ? default(TW).GroupMin(sc, g, i, k) : default(TW).BlockMin(sc, b, k);

    /// <summary>A gate and an up accumulator.</summary>
    internal struct Acc2
    {
        public float G, U;
    }

    // Four activations from column col of the row at element xRow (zero at and past cols).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Float4 X(ArrayView<float> x, ArrayView<Float4> x4, long xRow, int col, int cols, int aligned)
    {
        long xi = xRow + col;
        if (aligned != 0 && col + 4 <= cols) return x4[xi >> 2];
        Float4 v = default;
        if (col < cols) v.X = x[xi];
        if (col + 1 < cols) v.Y = x[xi + 1];
        if (col + 2 < cols) v.Z = x[xi + 2];
        if (col + 3 < cols) v.W = x[xi + 3];
        return v;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float Lo(Widened w, Float4 p) => w.W0 * p.X + w.W1 * p.Y + w.W2 * p.Z + w.W3 * p.W;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float Hi(Widened w, Float4 p) => w.W4 * p.X + w.W5 * p.Y + w.W6 * p.Z + w.W7 * p.W;

    // a + d0·(parts 2q of w)·p + d1·(part 2q+1)·q, one fused multiply-add per part; formats with a min add m0·Σp + m1·Σq
    // (value = code·d + m, so a part's dot is d·(codes·x) + m·Σx).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float Parts<TW>(float a, Widened w, float d0, float d1, float m0, float m1, Float4 p, Float4 q) where TW : struct, IWeightFormat
    {
        a += d0 * Lo(w, p);
        a += d1 * Hi(w, q);
        if (default(TW).HasMin) a += m0 * ((p.X + p.Y) + (p.Z + p.W)) + m1 * ((q.X + q.Y) + (q.Z + q.W));
        return a;
    }

    static float Pick(Widened w, int e) => e switch
    {
        0 => w.W0, 1 => w.W1, 2 => w.W2, 3 => w.W3, 4 => w.W4, 5 => w.W5, 6 => w.W6, _ => w.W7,
    };
}
