using System.Runtime.CompilerServices;
using ILGPU;

namespace Daop.Kernels.Gpu;

/// <summary>
/// The batched (prefill) tile kernels' 4×4 micro-tile on block-format weights: what <see cref="TileKernels"/> runs for a
/// format with <see cref="IWeightFormat.BlockChunks"/> &gt; 0. Each thread walks whole rows chunk by chunk (whole groups,
/// then the blocks past them, bounds-checked), decoding each weight chunk and its scales once for four activation rows;
/// fp32 FMA, like the dense tiles (the tensor cores stay bf16's).
/// </summary>
internal static class BlockTiles
{
    /// <summary>
    /// The 4×4 block of weight rows (chunk offsets <paramref name="rows"/>) · x rows (element offsets <paramref name="xr"/>)
    /// over whole rows, for the batched tile kernels: each chunk and scale loaded and decoded once for four x rows.
    /// </summary>
    internal static TileKernels.Acc16 Micro<TW>(ArrayView<Chunk16> w, TileKernels.Four rows, ArrayView<float> x, ArrayView<Float4> x4,
        TileKernels.Four xr, int cols, int aligned) where TW : struct, IWeightFormat
    {
        int bc = BlockDots.Bc<TW>();
        int blocks = (cols + 31) >> 5;
        int full = (blocks >> 3) * 8 * bc, all = blocks * bc;
        TileKernels.Acc16 acc = default;
        for (int j = 0; j < all; j++)
        {
            BlockDots.Locate<TW>(j, full, out int col, out int step, out int sci, out int g, out int i, out int b);
            Chunk16 c0 = w[rows.V0 + j], c1 = w[rows.V1 + j], c2 = w[rows.V2 + j], c3 = w[rows.V3 + j];
            Chunk16 s0 = w[rows.V0 + all + sci], s1 = w[rows.V1 + all + sci], s2 = w[rows.V2 + all + sci], s3 = w[rows.V3 + all + sci];
            acc = MicroPair<TW>(acc, c0, c1, c2, c3, s0, s1, s2, s3, g, i, b, 0, x, x4, xr, col, step, cols, aligned);
            acc = MicroPair<TW>(acc, c0, c1, c2, c3, s0, s1, s2, s3, g, i, b, 1, x, x4, xr, col, step, cols, aligned);
            if (bc == 1)
            {
                acc = MicroPair<TW>(acc, c0, c1, c2, c3, s0, s1, s2, s3, g, i, b, 2, x, x4, xr, col, step, cols, aligned);
                acc = MicroPair<TW>(acc, c0, c1, c2, c3, s0, s1, s2, s3, g, i, b, 3, x, x4, xr, col, step, cols, aligned);
            }
        }
        return acc;
    }

    // Parts 2q and 2q+1 of four weight rows' chunks against four x rows (q a constant at every call).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static TileKernels.Acc16 MicroPair<TW>(TileKernels.Acc16 acc, Chunk16 c0, Chunk16 c1, Chunk16 c2, Chunk16 c3, Chunk16 s0, Chunk16 s1,
        Chunk16 s2, Chunk16 s3, int g, int i, int b, int q, ArrayView<float> x, ArrayView<Float4> x4, TileKernels.Four xr, int col, int step,
        int cols, int aligned) where TW : struct, IWeightFormat
    {
        var f = default(TW);
        int ca = col + 2 * q * step, cb = ca + step;
        Scaled4 p0 = Part4<TW>(f.Widen(c0, q), s0, g, i, b, q), p1 = Part4<TW>(f.Widen(c1, q), s1, g, i, b, q);
        Scaled4 p2 = Part4<TW>(f.Widen(c2, q), s2, g, i, b, q), p3 = Part4<TW>(f.Widen(c3, q), s3, g, i, b, q);
        acc.T0 = Fma<TW>(acc.T0, p0, p1, p2, p3, BlockDots.X(x, x4, xr.V0, ca, cols, aligned), BlockDots.X(x, x4, xr.V0, cb, cols, aligned));
        acc.T1 = Fma<TW>(acc.T1, p0, p1, p2, p3, BlockDots.X(x, x4, xr.V1, ca, cols, aligned), BlockDots.X(x, x4, xr.V1, cb, cols, aligned));
        acc.T2 = Fma<TW>(acc.T2, p0, p1, p2, p3, BlockDots.X(x, x4, xr.V2, ca, cols, aligned), BlockDots.X(x, x4, xr.V2, cb, cols, aligned));
        acc.T3 = Fma<TW>(acc.T3, p0, p1, p2, p3, BlockDots.X(x, x4, xr.V3, ca, cols, aligned), BlockDots.X(x, x4, xr.V3, cb, cols, aligned));
        return acc;
    }

    /// <summary>Parts 2q and 2q+1 of one weight row with their scales.</summary>
    struct Scaled4
    {
        public Widened W;
        public float D0, D1, M0, M1;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Scaled4 Part4<TW>(Widened w, Chunk16 sc, int g, int i, int b, int q) where TW : struct, IWeightFormat
    {
        Scaled4 p;
        p.W = w;
        p.D0 = BlockDots.Scale<TW>(sc, g, i, b, 2 * q);
        p.D1 = BlockDots.Scale<TW>(sc, g, i, b, 2 * q + 1);
        p.M0 = BlockDots.Min<TW>(sc, g, i, b, 2 * q);
        p.M1 = BlockDots.Min<TW>(sc, g, i, b, 2 * q + 1);
        return p;
    }

    // Rows 0..3 (A0..A3) of one x row's accumulators += the four rows' scaled parts · that x row's two Float4s.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Acc4 Fma<TW>(Acc4 a, Scaled4 p0, Scaled4 p1, Scaled4 p2, Scaled4 p3, Float4 xa, Float4 xb) where TW : struct, IWeightFormat
    {
        a.A0 = BlockDots.Parts<TW>(a.A0, p0.W, p0.D0, p0.D1, p0.M0, p0.M1, xa, xb);
        a.A1 = BlockDots.Parts<TW>(a.A1, p1.W, p1.D0, p1.D1, p1.M0, p1.M1, xa, xb);
        a.A2 = BlockDots.Parts<TW>(a.A2, p2.W, p2.D0, p2.D1, p2.M0, p2.M1, xa, xb);
        a.A3 = BlockDots.Parts<TW>(a.A3, p3.W, p3.D0, p3.D1, p3.M0, p3.M1, xa, xb);
        return a;
    }
}
