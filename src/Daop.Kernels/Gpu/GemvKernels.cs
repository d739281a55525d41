using System.Runtime.CompilerServices;
using ILGPU;

namespace Daop.Kernels.Gpu;

/// <summary>
/// Single-token matrix-vector product, the decode hot path: a team of <see cref="RowArgs.Lanes"/> threads (the warp
/// on a GPU) per output row, the dtype (<c>TW</c> of <see cref="Gemv1{TW, TU}"/>) and the loads in
/// flight (<see cref="IUnroll"/>) compile-time constants. Each lane issues <c>Loads</c> independent 16-byte weight
/// loads (chunks lane, lane + lanes, …) before using any, each with its own accumulator; activations are read as
/// <see cref="Float4"/> from the (L1-resident) x vector. The partial last chunk of a row (cols not a multiple of the
/// chunk) is read element by element with bounds checks, outside the hot loop.
/// </summary>
public static class GemvKernels
{
    /// <summary>
    /// y[r] = W[r]·x (+ bias[r]) for r &lt; Rows: one token. x must start 16-byte aligned (a whole buffer). Grid-stride
    /// over rows: any grid covers all work.
    /// </summary>
    public static void Gemv1<TW, TU>(ArrayView<Chunk16> w, ArrayView<float> x, ArrayView<Float4> x4, ArrayView<float> bias,
        ArrayView<float> y, RowArgs a) where TW : struct, IWeightFormat where TU : struct, IUnroll
    {
        if (default(TW).BlockChunks > 0 && a.BlockRows == 2)
        {
            Pairs<TW>(w, x, x4, bias, y, a);
            return;
        }
        int lanes = a.Lanes, gtid = Grid.GlobalIndex.X;
        int team = gtid / lanes, lane = gtid - team * lanes, teams = Grid.DimX * Group.DimX / lanes;
        int iters = (a.Rows + teams - 1) / teams;
        int full = a.Cols / default(TW).PerChunk;
        for (int it = 0; it < iters; it++)
        {
            int r = it * teams + team;
            bool valid = r < a.Rows;
            float s = RowDot<TW, TU>(w, (long)(valid ? r : 0) * a.RowChunks, valid ? full : 0, valid ? a.RowChunks : 0,
                x, x4, 0, a.Cols, lane, lanes);
            s = GpuMath.TeamSum(s, lanes);
            if (valid && lane == 0) y[r] = (a.Flags & RowKernels.FlagBias) != 0 ? s + bias[r] : s;
        }
    }

    /// <summary>
    /// y0 = W0·x, y1 = W1·x, y2 = W2·x (+ b0, b1, b2 with <see cref="RowKernels.FlagBias"/>) for one token in one launch:
    /// the q, k and v projections. The matrices share a dtype and a row layout; W0 has <paramref name="rows0"/> rows, W1
    /// <paramref name="rows1"/> and W2 the rest of Rows; teams run over the rows of all three as <see cref="Gemv1{TW, TU}"/>
    /// over one, so the small k and v matrices fill the GPU beside q instead of each paying a launch of its own.
    /// </summary>
    public static void Gemv3<TW, TU>(ArrayView<Chunk16> w0, ArrayView<Chunk16> w1, ArrayView<Chunk16> w2, ArrayView<float> x,
        ArrayView<Float4> x4, ArrayView<float> b0, ArrayView<float> b1, ArrayView<float> b2, ArrayView<float> y0, ArrayView<float> y1,
        ArrayView<float> y2, RowArgs a, int rows0, int rows1) where TW : struct, IWeightFormat where TU : struct, IUnroll
    {
        int lanes = a.Lanes, gtid = Grid.GlobalIndex.X;
        int team = gtid / lanes, lane = gtid - team * lanes, teams = Grid.DimX * Group.DimX / lanes;
        int iters = (a.Rows + teams - 1) / teams;
        int full = a.Cols / default(TW).PerChunk;
        bool bias = (a.Flags & RowKernels.FlagBias) != 0;
        for (int it = 0; it < iters; it++)
        {
            int r = it * teams + team;
            bool valid = r < a.Rows;
            int m = !valid || r < rows0 ? 0 : r < rows0 + rows1 ? 1 : 2;   // which matrix, and its row
            int row = !valid ? 0 : m == 0 ? r : m == 1 ? r - rows0 : r - rows0 - rows1;
            var w = m == 0 ? w0 : m == 1 ? w1 : w2;
            float s = RowDot<TW, TU>(w, (long)row * a.RowChunks, valid ? full : 0, valid ? a.RowChunks : 0, x, x4, 0, a.Cols, lane, lanes);
            s = GpuMath.TeamSum(s, lanes);
            if (valid && lane == 0)
            {
                if (m == 0) y0[row] = bias ? s + b0[row] : s;
                else if (m == 1) y1[row] = bias ? s + b1[row] : s;
                else y2[row] = bias ? s + b2[row] : s;
            }
        }
    }

    /// <summary>
    /// <see cref="Gemv1{TW, TU}"/> for block formats, a team per two rows (y[r0], y[r0 + 1]) that share each activation load
    /// (<see cref="BlockDots.Row2{TG, TU}"/>): for 4-bit codes a weight byte needs 8 bytes of fp32 activations, so one row per
    /// team would be bound by L1 bandwidth rather than memory's.
    /// </summary>
    static void Pairs<TW>(ArrayView<Chunk16> w, ArrayView<float> x, ArrayView<Float4> x4, ArrayView<float> bias, ArrayView<float> y,
        RowArgs a) where TW : struct, IWeightFormat
    {
        int lanes = a.Lanes, gtid = Grid.GlobalIndex.X;
        int team = gtid / lanes, lane = gtid - team * lanes, teams = Grid.DimX * Group.DimX / lanes;
        int pairs = (a.Rows + 1) >> 1, iters = (pairs + teams - 1) / teams;
        bool hasBias = (a.Flags & RowKernels.FlagBias) != 0;
        for (int it = 0; it < iters; it++)
        {
            int p = it * teams + team;
            bool valid = p < pairs;
            int r0 = valid ? 2 * p : 0, r1 = r0 + 1 < a.Rows ? r0 + 1 : r0;
            var s = BlockDots.Row2<TW, TW>(w, w, (long)r0 * a.RowChunks, (long)r1 * a.RowChunks, valid, x, x4, 0, a.Cols, lane, lanes);
            float s0 = GpuMath.TeamSum(s.G, lanes), s1 = GpuMath.TeamSum(s.U, lanes);
            if (valid && lane == 0)
            {
                y[r0] = hasBias ? s0 + bias[r0] : s0;
                if (r1 != r0) y[r1] = hasBias ? s1 + bias[r1] : s1;
            }
        }
    }

    /// <summary>
    /// This lane's share of W[row]·x[xRow..] over <paramref name="full"/> whole chunks (unrolled, no bounds checks) and
    /// the chunks after them up to <paramref name="all"/> (bounds-checked against <paramref name="cols"/>). xRow must be a
    /// multiple of 4 (16-byte aligned). Block formats take <see cref="BlockDots.Row{TW, TU}"/> (all = 0: no work).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float RowDot<TW, TU>(ArrayView<Chunk16> w, long row, int full, int all, ArrayView<float> x,
        ArrayView<Float4> x4, long xRow, int cols, int lane, int lanes)
        where TW : struct, IWeightFormat where TU : struct, IUnroll
    {
        if (default(TW).BlockChunks > 0) return BlockDots.Row<TW, TU>(w, row, all > 0, x, x4, xRow, cols, lane, lanes);
        int per = default(TW).PerChunk, u = default(TU).Loads;
        var xv = x4.SubView(xRow >> 2);
        float a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0;
        int j = lane;
        for (; j + (u - 1) * lanes < full; j += u * lanes)
        {
            long b = row + j;
            Chunk16 c0 = w[b], c1 = default, c2 = default, c3 = default, c4 = default, c5 = default, c6 = default, c7 = default;
            if (u > 1) c1 = w[b + lanes];
            if (u > 2) { c2 = w[b + 2 * lanes]; c3 = w[b + 3 * lanes]; }
            if (u > 4) { c4 = w[b + 4 * lanes]; c5 = w[b + 5 * lanes]; c6 = w[b + 6 * lanes]; c7 = w[b + 7 * lanes]; }
            a0 += Dot<TW>(c0, xv, j, per);
            if (u > 1) a1 += Dot<TW>(c1, xv, j + lanes, per);
            if (u > 2) { a2 += Dot<TW>(c2, xv, j + 2 * lanes, per); a3 += Dot<TW>(c3, xv, j + 3 * lanes, per); }
            if (u > 4)
            {
                a4 += Dot<TW>(c4, xv, j + 4 * lanes, per); a5 += Dot<TW>(c5, xv, j + 5 * lanes, per);
                a6 += Dot<TW>(c6, xv, j + 6 * lanes, per); a7 += Dot<TW>(c7, xv, j + 7 * lanes, per);
            }
        }
        for (; j < full; j += lanes) a1 += Dot<TW>(w[row + j], xv, j, per);
        for (; j < all; j += lanes) a2 += GpuMath.DotChunk(default(TW).Widen(w[row + j]), x, x4, xRow, j * per, cols, per, 0);
        return ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7));
    }

    // Σ over whole chunk j of w·x[j·per ..], x read as Float4s.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float Dot<TW>(Chunk16 c, ArrayView<Float4> x4, int j, int per) where TW : struct, IWeightFormat
    {
        var v = default(TW).Widen(c);
        if (per == 8)
        {
            Float4 p = x4[2 * j], q = x4[2 * j + 1];
            return (v.W0 * p.X + v.W1 * p.Y + v.W2 * p.Z + v.W3 * p.W) + (v.W4 * q.X + v.W5 * q.Y + v.W6 * q.Z + v.W7 * q.W);
        }
        Float4 f = x4[j];
        return v.W0 * f.X + v.W1 * f.Y + v.W2 * f.Z + v.W3 * f.W;
    }
}
