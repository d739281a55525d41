using System.Runtime.CompilerServices;
using ILGPU;

namespace Daop.Kernels.Gpu;

/// <summary>Four fp32 accumulators of one m16n8 mma tile held by one lane.</summary>
public struct Frag
{
    /// <summary>(row g, col 2t), (row g, col 2t+1), (row g+8, col 2t), (row g+8, col 2t+1).</summary>
    public float C0, C1, C2, C3;
}


/// <summary>
/// bf16 tensor-core kernels for batched (prefill) rows, CUDA only (inline PTX <c>mma.sync.m16n8k16</c>, sm_80+).
/// Activations are first split by <see cref="Split"/> into bf16 hi + lo parts (x ≈ hi + lo to ~2⁻¹⁷ relative), so
/// the products against the exact bf16 weights carry nearly fp32 accuracy at two mma per k-step; accumulation is fp32.
/// Block-format weights (Q8_0, Q4_0, MXFP4) are dequantized in registers to bf16 hi + lo (<see cref="GemmBlocks"/>,
/// activations split in their k order by <see cref="SplitBlocks"/>): three mma per k-step.
/// </summary>
/// <remarks>
/// A warp computes 16 rows × up to 64 positions (one tile). The k order inside an mma does not matter as long as A
/// and B agree, so lane (g = lane/4, t = lane%4) loads whole 16-byte chunks: chunk 4s+t of weight rows g and g+8 and
/// of activation rows g (per n-tile) — each chunk's words X,Y feed the first k16 half and Z,W the second. Weights
/// stream straight from memory into registers (next step prefetched); activations come from L1/L2, shared by the
/// warps of a block, which work on consecutive row blocks of the same tile.
/// </remarks>
public static class MmaKernels
{
    /// <summary>Positions per tile.</summary>
    public const int TileTokens = 64;

    /// <summary>Tiles of <see cref="TileTokens"/> over <paramref name="positions"/> consecutive positions (dense, not grouped).</summary>
    public static int DenseTiles(int positions) => (positions + TileTokens - 1) / TileTokens;

    /// <summary>Rows of x (a.Positions, gathered rows index[p] / TopK when grouped) → bf16 hi chunk rows at 0 and lo at LoOffset.</summary>
    public static void Split(ArrayView<float> x, ArrayView<Float4> x4, ArrayView<int> index, ArrayView<Chunk16> xs, TileArgs a)
    {
        long items = (long)a.Positions * a.RowChunks;
        int threads = Grid.DimX * Group.DimX;
        bool grouped = (a.Flags & RowKernels.FlagGrouped) != 0;
        bool aligned = (a.Flags & RowKernels.FlagAligned) != 0;
        for (long i = Grid.GlobalIndex.X; i < items; i += threads)
        {
            int p = (int)(i / a.RowChunks), c = (int)(i - (long)p * a.RowChunks);
            long src = grouped ? index[p] / a.TopK : p;
            long xi = src * a.Cols + c * 8;
            int n = a.Cols - c * 8;
            Float4 u = default, v = default;
            if (aligned && n >= 8) { u = x4[xi >> 2]; v = x4[(xi >> 2) + 1]; }
            else
            {
                if (n > 0) u.X = x[xi];
                if (n > 1) u.Y = x[xi + 1];
                if (n > 2) u.Z = x[xi + 2];
                if (n > 3) u.W = x[xi + 3];
                if (n > 4) v.X = x[xi + 4];
                if (n > 5) v.Y = x[xi + 5];
                if (n > 6) v.Z = x[xi + 6];
                if (n > 7) v.W = x[xi + 7];
            }
            StoreSplit(xs, (long)p * a.RowChunks + c, a.LoOffset, u, v);
        }
    }

    /// <summary>
    /// <see cref="Split"/> for block-format weights <typeparamref name="TW"/>, in their k order: chunk S·c + q of a split
    /// row (S = 4 / <see cref="IWeightFormat.BlockChunks"/> sub-steps per value chunk) holds the 8 columns of parts 2q
    /// and 2q + 1 of the weights' value chunk c (<see cref="BlockLayout"/>), so a lane's activation chunk lines up with
    /// what <see cref="GemmBlocks"/> dequantizes from its weight chunk. a.RowChunks: 4 · blocks per row.
    /// </summary>
    public static void SplitBlocks<TW>(ArrayView<float> x, ArrayView<Float4> x4, ArrayView<int> index, ArrayView<Chunk16> xs, TileArgs a)
        where TW : struct, IWeightFormat
    {
        long items = (long)a.Positions * a.RowChunks;
        int threads = Grid.DimX * Group.DimX;
        int subs = 4 / BlockDots.Bc<TW>(), blocks = (a.Cols + 31) >> 5, full = (blocks >> 3) * 8 * BlockDots.Bc<TW>();
        bool grouped = (a.Flags & RowKernels.FlagGrouped) != 0;
        int aligned = (a.Flags & RowKernels.FlagAligned) != 0 ? 1 : 0;
        for (long i = Grid.GlobalIndex.X; i < items; i += threads)
        {
            int p = (int)(i / a.RowChunks), j = (int)(i - (long)p * a.RowChunks);
            int c = j / subs, q = j - c * subs;
            BlockDots.Locate<TW>(c, full, out int col, out int step, out _, out _, out _, out _);
            long xr = (grouped ? index[p] / a.TopK : p) * (long)a.Cols;
            int ca = col + 2 * q * step;
            StoreSplit(xs, (long)p * a.RowChunks + j, a.LoOffset, BlockDots.X(x, x4, xr, ca, a.Cols, aligned),
                BlockDots.X(x, x4, xr, ca + step, a.Cols, aligned));
        }
    }

    // Eight activations u, v as a bf16 hi chunk at o and its lo chunk at lo + o.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void StoreSplit(ArrayView<Chunk16> xs, long o, int lo, Float4 u, Float4 v)
    {
        Chunk16 h, l;
        h.X = Pair(u.X, u.Y, out l.X);
        h.Y = Pair(u.Z, u.W, out l.Y);
        h.Z = Pair(v.X, v.Y, out l.Z);
        h.W = Pair(v.Z, v.W, out l.W);
        xs[o] = h;
        xs[lo + o] = l;
    }

    // bf16 (round to nearest even) bits of f.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static uint Bf16(float f)
    {
        uint u = Interop.FloatAsInt(f);
        return (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
    }

    // Two values as packed bf16 hi parts (element 0 in the low half), their bf16 remainders in lo.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static uint Pair(float a, float b, out uint lo)
    {
        uint ha = Bf16(a), hb = Bf16(b);
        uint la = Bf16(a - Interop.IntAsFloat(ha << 16)), lb = Bf16(b - Interop.IntAsFloat(hb << 16));
        lo = la | (lb << 16);
        return ha | (hb << 16);
    }

    /// <summary>y[p, r] = W[r]·x[p] (+ bias[r]) from split activations xs (rows = positions), tiles of 64 positions.</summary>
    public static void Linear<TA, TW>(ArrayView<Chunk16> w, ArrayView<Chunk16> xs, ArrayView<float> bias, ArrayView<float> y, TileArgs a)
        where TA : struct, IMmaAcc<TA> where TW : struct, IWeightFormat
    {
        TA acc = default;
        acc.Declare();
        int lane = Group.IdxX & 31, warps = Grid.DimX * Group.DimX / 32;
        int blocks = (a.Rows + 15) / 16;
        long items = (long)blocks * a.Tiles;
        for (long item = Grid.GlobalIndex.X / 32; item < items; item += warps)
        {
            int tile = (int)(item / blocks), rb = (int)(item - (long)tile * blocks);
            int p0 = tile * TileTokens, n = a.Positions - p0 < TileTokens ? a.Positions - p0 : TileTokens;
            acc = GemmOf<TA, TW>(acc, w, w, false, 0, rb, xs, p0, n, lane, a);
            int g = lane >> 2, t = lane & 3;
            int r = rb * 16 + g;
            bool hasBias = (a.Flags & RowKernels.FlagBias) != 0;
            float b0 = hasBias && r < a.Rows ? bias[r] : 0f, b1 = hasBias && r + 8 < a.Rows ? bias[r + 8] : 0f;
            for (int nt = 0; nt < 8; nt++)
            {
                var f = acc.Read(nt);
                int q = nt * 8 + 2 * t;
                StoreLinear(y, p0, q, n, r, a.Rows, f.C0 + b0, f.C1 + b0);
                StoreLinear(y, p0, q, n, r + 8, a.Rows, f.C2 + b1, f.C3 + b1);
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void StoreLinear(ArrayView<float> y, int p0, int q, int n, int r, int rows, float v0, float v1)
    {
        if (r >= rows) return;
        if (q < n) y[(long)(p0 + q) * rows + r] = v0;
        if (q + 1 < n) y[(long)(p0 + q + 1) * rows + r] = v1;
    }

    /// <summary>
    /// h[p, r] = SiLU(Wg[e]·x[p]) · (Wu[e]·x[p]) from split activations xs (one row per position, already gathered),
    /// tiles from the index view (grouped: expert, first position, count ≤ 64) or consecutive.
    /// </summary>
    public static void GateUp<TA, TW>(ArrayView<Chunk16> wg, ArrayView<Chunk16> wu, ArrayView<Chunk16> xs, ArrayView<int> index,
        ArrayView<float> h, TileArgs a) where TA : struct, IMmaAcc<TA> where TW : struct, IWeightFormat =>
        GateUp<TA, TW, SwiGluEpilogue>(wg, wu, xs, index, h, h, a, default);

    /// <summary>
    /// <see cref="GateUp{TA, TW}"/> of GPT-OSS's experts (grouped): h = the clamped SwiGLU of the biased projections
    /// (<see cref="ClampedSwiGluEpilogue"/>), key e's biases in <paramref name="bias"/> as <paramref name="b"/> says.
    /// </summary>
    public static void GateUpBiased<TA, TW>(ArrayView<Chunk16> wg, ArrayView<Chunk16> wu, ArrayView<Chunk16> xs, ArrayView<int> index,
        ArrayView<float> h, ArrayView<float> bias, TileArgs a, ExpertBiasArgs b) where TA : struct, IMmaAcc<TA> where TW : struct, IWeightFormat =>
        GateUp<TA, TW, ClampedSwiGluEpilogue>(wg, wu, xs, index, h, bias, a, b);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void GateUp<TA, TW, TE>(ArrayView<Chunk16> wg, ArrayView<Chunk16> wu, ArrayView<Chunk16> xs, ArrayView<int> index,
        ArrayView<float> h, ArrayView<float> bias, TileArgs a, ExpertBiasArgs b)
        where TA : struct, IMmaAcc<TA> where TW : struct, IWeightFormat where TE : struct, IExpertEpilogue
    {
        TA acc = default;
        acc.Declare();
        int lane = Group.IdxX & 31, warps = Grid.DimX * Group.DimX / 32;
        int blocks = (a.Rows + 15) / 16;
        long items = (long)blocks * a.Tiles;
        for (long item = Grid.GlobalIndex.X / 32; item < items; item += warps)
        {
            int tile = (int)(item / blocks), rb = (int)(item - (long)tile * blocks);
            Tile(index, a, tile, out int e, out int p0, out int n);
            acc = GemmOf<TA, TW>(acc, wg, wu, true, e, rb, xs, p0, n, lane, a);
            int g = lane >> 2, t = lane & 3;
            int r = rb * 16 + g;
            for (int nt = 0; nt < 8; nt++)
            {
                var fg = acc.Read(nt);
                var fu = acc.Read(8 + nt);
                int q = nt * 8 + 2 * t;
                StoreLinear(h, p0, q, n, r, a.Rows, Hidden<TE>(fg.C0, fu.C0, bias, b, e, r, a.Rows), Hidden<TE>(fg.C1, fu.C1, bias, b, e, r, a.Rows));
                StoreLinear(h, p0, q, n, r + 8, a.Rows, Hidden<TE>(fg.C2, fu.C2, bias, b, e, r + 8, a.Rows),
                    Hidden<TE>(fg.C3, fu.C3, bias, b, e, r + 8, a.Rows));
            }
        }
    }

    // The epilogue's h of row r (r < rows: rows past the matrix are never stored, and their biases are not there).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float Hidden<TE>(float g, float u, ArrayView<float> bias, ExpertBiasArgs b, int e, int r, int rows) where TE : struct, IExpertEpilogue =>
        r < rows ? default(TE).Hidden(g, u, bias, b, e, r) : 0f;

    /// <summary>
    /// Down projection from split activations xs (one row per position): grouped, y[slot, r] = scales[slot] ·
    /// Wd[e]·h[p] with slot = index[p]; else y[p, r] = Wd·h[p].
    /// </summary>
    public static void Down<TA, TW>(ArrayView<Chunk16> wd, ArrayView<Chunk16> xs, ArrayView<int> index, ArrayView<float> scales,
        ArrayView<float> y, TileArgs a) where TA : struct, IMmaAcc<TA> where TW : struct, IWeightFormat =>
        Down<TA, TW, SwiGluEpilogue>(wd, xs, index, scales, y, y, a, default);

    /// <summary><see cref="Down{TA, TW}"/> of GPT-OSS's experts (grouped): y[slot, r] = scales[slot] · (Wd[e]·h[p] + bd[e, r]).</summary>
    public static void DownBiased<TA, TW>(ArrayView<Chunk16> wd, ArrayView<Chunk16> xs, ArrayView<int> index, ArrayView<float> scales,
        ArrayView<float> y, ArrayView<float> bias, TileArgs a, ExpertBiasArgs b) where TA : struct, IMmaAcc<TA> where TW : struct, IWeightFormat =>
        Down<TA, TW, ClampedSwiGluEpilogue>(wd, xs, index, scales, y, bias, a, b);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Down<TA, TW, TE>(ArrayView<Chunk16> wd, ArrayView<Chunk16> xs, ArrayView<int> index, ArrayView<float> scales,
        ArrayView<float> y, ArrayView<float> bias, TileArgs a, ExpertBiasArgs b)
        where TA : struct, IMmaAcc<TA> where TW : struct, IWeightFormat where TE : struct, IExpertEpilogue
    {
        TA acc = default;
        acc.Declare();
        int lane = Group.IdxX & 31, warps = Grid.DimX * Group.DimX / 32;
        int blocks = (a.Rows + 15) / 16;
        long items = (long)blocks * a.Tiles;
        bool grouped = (a.Flags & RowKernels.FlagGrouped) != 0;
        for (long item = Grid.GlobalIndex.X / 32; item < items; item += warps)
        {
            int tile = (int)(item / blocks), rb = (int)(item - (long)tile * blocks);
            Tile(index, a, tile, out int e, out int p0, out int n);
            acc = GemmOf<TA, TW>(acc, wd, wd, false, e, rb, xs, p0, n, lane, a);
            int g = lane >> 2, t = lane & 3;
            int r = rb * 16 + g;
            for (int nt = 0; nt < 8; nt++)
            {
                var f = acc.Read(nt);
                int q = nt * 8 + 2 * t;
                StoreDown<TE>(y, index, scales, bias, b, e, grouped, p0 + q, q < n, r, a.Rows, f.C0, f.C2);
                StoreDown<TE>(y, index, scales, bias, b, e, grouped, p0 + q + 1, q + 1 < n, r, a.Rows, f.C1, f.C3);
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void StoreDown<TE>(ArrayView<float> y, ArrayView<int> index, ArrayView<float> scales, ArrayView<float> bias, ExpertBiasArgs b,
        int e, bool grouped, int p, bool valid, int r, int rows, float v0, float v1) where TE : struct, IExpertEpilogue
    {
        if (!valid) return;
        long o = grouped ? index[p] : p;
        float s = grouped ? scales[(int)o] : 1f;
        bool biased = default(TE).HasDownBias && grouped;
        if (r < rows) y[o * rows + r] = s * (biased ? v0 + default(TE).DownBias(bias, b, e, r) : v0);
        if (r + 8 < rows) y[o * rows + r + 8] = s * (biased ? v1 + default(TE).DownBias(bias, b, e, r + 8) : v1);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Tile(ArrayView<int> index, TileArgs a, int tile, out int expert, out int p0, out int n)
    {
        if ((a.Flags & RowKernels.FlagGrouped) != 0)
        {
            int o = a.TileOffset + 3 * tile;
            expert = index[o]; p0 = index[o + 1]; n = index[o + 2];
        }
        else
        {
            expert = 0; p0 = tile * TileTokens; n = a.Positions - p0 < TileTokens ? a.Positions - p0 : TileTokens;
        }
    }

    // The bf16 k loop or the block formats' (a constant choice per kernel instance).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static TA GemmOf<TA, TW>(TA acc, ArrayView<Chunk16> w0, ArrayView<Chunk16> w1, bool dual, int e, int rb, ArrayView<Chunk16> xs,
        int p0, int n, int lane, TileArgs a) where TA : struct, IMmaAcc<TA> where TW : struct, IWeightFormat =>
        default(TW).BlockChunks > 0 ? GemmBlocks<TA, TW>(acc, w0, w1, dual, e, rb, xs, p0, n, lane, a) : Gemm(acc, w0, w1, dual, e, rb, xs, p0, n, lane, a);

    // Gemm for block-format weights: per step lane t dequantizes value chunk 4s + t of rows g and g + 8 (and of w1 when
    // dual) in S sub-steps of 8 values (parts 2q, 2q + 1; the order SplitBlocks wrote the activations in), each value
    // d·code exactly in fp32 and then as bf16 hi + lo (exact for Q4_0 and MXFP4, to 2^-16 for Q8_0's 8-bit codes), so
    // three mma per k16 half (w_hi·x_hi, w_hi·x_lo, w_lo·x_hi) keep the bf16 path's accuracy. The dequantization is
    // paid once per weight for the tile's up to 64 positions.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static TA GemmBlocks<TA, TW>(TA acc, ArrayView<Chunk16> w0, ArrayView<Chunk16> w1, bool dual, int e, int rb, ArrayView<Chunk16> xs,
        int p0, int n, int lane, TileArgs a) where TA : struct, IMmaAcc<TA> where TW : struct, IWeightFormat
    {
        var f = default(TW);
        int g = lane >> 2, t = lane & 3, rc = a.RowChunks;
        int bc = BlockDots.Bc<TW>(), subs = 4 / bc;
        int blocks = (a.Cols + 31) >> 5, vc = blocks * bc, full = (blocks >> 3) * 8 * bc, xrc = 4 * blocks;
        RowStarts(e, rb, g, rc, a, out long wa, out long wb);
        long xb = (long)(p0 + g) * xrc, lo = a.LoOffset;
        long x8 = 8L * xrc;
        int steps = (vc + 3) / 4;
        acc = acc.Zero();
        for (int s = 0; s < steps; s++)
        {
            // Past the row's last value chunk the lane reads chunk 0 and its activations are masked to zero.
            int c = 4 * s + t;
            uint mask = c < vc ? 0xFFFFFFFFu : 0u;
            if (c >= vc) c = 0;
            BlockDots.Locate<TW>(c, full, out _, out _, out int sci, out int gi, out int ii, out int bi);
            Chunk16 ca = w0[wa + c], cb = w0[wb + c], sa = w0[wa + vc + sci], sb = w0[wb + vc + sci];
            Chunk16 da = dual ? w1[wa + c] : default, db = dual ? w1[wb + c] : default;
            Chunk16 ta = dual ? w1[wa + vc + sci] : default, tb = dual ? w1[wb + vc + sci] : default;
            for (int q = 0; q < subs; q++)
            {
                Dequant<TW>(f.Widen(ca, q), sa, gi, ii, bi, q, out var ah, out var al);
                Dequant<TW>(f.Widen(cb, q), sb, gi, ii, bi, q, out var bh, out var bl);
                Chunk16 dh = default, dl = default, eh = default, el = default;
                if (dual)
                {
                    Dequant<TW>(f.Widen(da, q), ta, gi, ii, bi, q, out dh, out dl);
                    Dequant<TW>(f.Widen(db, q), tb, gi, ii, bi, q, out eh, out el);
                }
                long xo = xb + (long)c * subs + q;
                Chunk16 h0 = xs[xo], l0 = xs[lo + xo], h1 = xs[xo + x8], l1 = xs[lo + xo + x8];
                Chunk16 h2 = xs[xo + 2 * x8], l2 = xs[lo + xo + 2 * x8], h3 = xs[xo + 3 * x8], l3 = xs[lo + xo + 3 * x8];
                acc = Step3(acc, 0, dual, ah, bh, al, bl, dh, eh, dl, el, h0, l0, mask);
                if (n > 8) acc = Step3(acc, 1, dual, ah, bh, al, bl, dh, eh, dl, el, h1, l1, mask);
                if (n > 16) acc = Step3(acc, 2, dual, ah, bh, al, bl, dh, eh, dl, el, h2, l2, mask);
                if (n > 24) acc = Step3(acc, 3, dual, ah, bh, al, bl, dh, eh, dl, el, h3, l3, mask);
                if (n > 32)
                {
                    Chunk16 h4 = xs[xo + 4 * x8], l4 = xs[lo + xo + 4 * x8], h5 = xs[xo + 5 * x8], l5 = xs[lo + xo + 5 * x8];
                    Chunk16 h6 = xs[xo + 6 * x8], l6 = xs[lo + xo + 6 * x8], h7 = xs[xo + 7 * x8], l7 = xs[lo + xo + 7 * x8];
                    acc = Step3(acc, 4, dual, ah, bh, al, bl, dh, eh, dl, el, h4, l4, mask);
                    if (n > 40) acc = Step3(acc, 5, dual, ah, bh, al, bl, dh, eh, dl, el, h5, l5, mask);
                    if (n > 48) acc = Step3(acc, 6, dual, ah, bh, al, bl, dh, eh, dl, el, h6, l6, mask);
                    if (n > 56) acc = Step3(acc, 7, dual, ah, bh, al, bl, dh, eh, dl, el, h7, l7, mask);
                }
            }
        }
        return acc;
    }

    // Parts 2q, 2q + 1 of a value chunk (widened codes w) times their block scales (plus their mins), as bf16 hi chunk
    // and lo remainder.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Dequant<TW>(Widened w, Chunk16 sc, int g, int i, int b, int q, out Chunk16 hi, out Chunk16 lo) where TW : struct, IWeightFormat
    {
        float d0 = BlockDots.Scale<TW>(sc, g, i, b, 2 * q), d1 = BlockDots.Scale<TW>(sc, g, i, b, 2 * q + 1);
        float m0 = BlockDots.Min<TW>(sc, g, i, b, 2 * q), m1 = BlockDots.Min<TW>(sc, g, i, b, 2 * q + 1);
        hi.X = Pair(BlockDots.Value<TW>(w.W0, d0, m0), BlockDots.Value<TW>(w.W1, d0, m0), out lo.X);
        hi.Y = Pair(BlockDots.Value<TW>(w.W2, d0, m0), BlockDots.Value<TW>(w.W3, d0, m0), out lo.Y);
        hi.Z = Pair(BlockDots.Value<TW>(w.W4, d1, m1), BlockDots.Value<TW>(w.W5, d1, m1), out lo.Z);
        hi.W = Pair(BlockDots.Value<TW>(w.W6, d1, m1), BlockDots.Value<TW>(w.W7, d1, m1), out lo.W);
    }

    // Step (w_hi·x_hi + w_hi·x_lo) plus w_lo·x_hi: rows g (ah, al) and g + 8 (bh, bl) into slot nt, w1's (dh, eh / dl, el)
    // into slot 8 + nt when dual.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static TA Step3<TA>(TA acc, int nt, bool dual, Chunk16 ah, Chunk16 bh, Chunk16 al, Chunk16 bl, Chunk16 dh, Chunk16 eh, Chunk16 dl,
        Chunk16 el, Chunk16 h, Chunk16 l, uint mask) where TA : struct, IMmaAcc<TA>
    {
        acc = Step(acc, nt, dual, ah, bh, dh, eh, h, l, mask);
        h.X &= mask; h.Y &= mask; h.Z &= mask; h.W &= mask;
        acc = acc.Mma(nt, al.X, bl.X, al.Y, bl.Y, h.X, h.Y);
        acc = acc.Mma(nt, al.Z, bl.Z, al.W, bl.W, h.Z, h.W);
        if (dual)
        {
            acc = acc.Mma(8 + nt, dl.X, el.X, dl.Y, el.Y, h.X, h.Y);
            acc = acc.Mma(8 + nt, dl.Z, el.Z, dl.W, el.W, h.Z, h.W);
        }
        return acc;
    }

    // Rows 16·rb.. of expert e of w0 (slots 0..7) and, when dual, of w1 (slots 8..15) times positions p0..p0+n-1
    // (n ≤ 64) over the whole row, accumulated from zero; one pass over the k-steps shares the activation loads.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static TA Gemm<TA>(TA acc, ArrayView<Chunk16> w0, ArrayView<Chunk16> w1, bool dual, int e, int rb, ArrayView<Chunk16> xs,
        int p0, int n, int lane, TileArgs a) where TA : struct, IMmaAcc<TA>
    {
        int g = lane >> 2, t = lane & 3, rc = a.RowChunks;
        RowStarts(e, rb, g, rc, a, out long wa, out long wb);
        long xb = (long)(p0 + g) * rc, lo = a.LoOffset;
        long x8 = 8L * rc;
        int steps = (rc + 3) / 4;
        acc = acc.Zero();
        int kc = t;
        // Loads are branch-free: past the row's last chunk the index is clamped and the value masked to zero, so every
        // load of a step can be issued before the first mma.
        Chunk16 ca = Load(w0, wa, kc, rc), cb = Load(w0, wb, kc, rc);
        Chunk16 da = dual ? Load(w1, wa, kc, rc) : default, db = dual ? Load(w1, wb, kc, rc) : default;
        for (int s = 0; s < steps; s++)
        {
            int kn = kc + 4;
            Chunk16 na = Load(w0, wa, kn, rc), nb = Load(w0, wb, kn, rc);
            Chunk16 ma = dual ? Load(w1, wa, kn, rc) : default, mb = dual ? Load(w1, wb, kn, rc) : default;
            // Activation rows past the tile are in bounds (the split buffer has a tile of padding rows); their
            // products land in columns that are never stored.
            long xo = xb + (kc < rc ? kc : 0);
            uint mask = kc < rc ? 0xFFFFFFFFu : 0u;
            Chunk16 h0 = xs[xo], l0 = xs[lo + xo], h1 = xs[xo + x8], l1 = xs[lo + xo + x8];
            Chunk16 h2 = xs[xo + 2 * x8], l2 = xs[lo + xo + 2 * x8], h3 = xs[xo + 3 * x8], l3 = xs[lo + xo + 3 * x8];
            acc = Step(acc, 0, dual, ca, cb, da, db, h0, l0, mask);
            if (n > 8) acc = Step(acc, 1, dual, ca, cb, da, db, h1, l1, mask);
            if (n > 16) acc = Step(acc, 2, dual, ca, cb, da, db, h2, l2, mask);
            if (n > 24) acc = Step(acc, 3, dual, ca, cb, da, db, h3, l3, mask);
            if (n > 32)
            {
                Chunk16 h4 = xs[xo + 4 * x8], l4 = xs[lo + xo + 4 * x8], h5 = xs[xo + 5 * x8], l5 = xs[lo + xo + 5 * x8];
                Chunk16 h6 = xs[xo + 6 * x8], l6 = xs[lo + xo + 6 * x8], h7 = xs[xo + 7 * x8], l7 = xs[lo + xo + 7 * x8];
                acc = Step(acc, 4, dual, ca, cb, da, db, h4, l4, mask);
                if (n > 40) acc = Step(acc, 5, dual, ca, cb, da, db, h5, l5, mask);
                if (n > 48) acc = Step(acc, 6, dual, ca, cb, da, db, h6, l6, mask);
                if (n > 56) acc = Step(acc, 7, dual, ca, cb, da, db, h7, l7, mask);
            }
            ca = na; cb = nb; da = ma; db = mb; kc = kn;
        }
        return acc;
    }

    // Chunk offsets of lane row g and g + 8 of row block rb of expert e (rows past the matrix read its last row; their
    // outputs are never stored).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void RowStarts(int e, int rb, int g, int rc, TileArgs a, out long wa, out long wb)
    {
        int ra = rb * 16 + g, rbb = ra + 8, last = a.Rows - 1;
        wa = ((long)e * a.Rows + (ra < a.Rows ? ra : last)) * rc;
        wb = ((long)e * a.Rows + (rbb < a.Rows ? rbb : last)) * rc;
    }

    // Chunk k of the row at `row` (chunk offset), or zeros when k is past the row's rc chunks — without a branch.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Chunk16 Load(ArrayView<Chunk16> w, long row, int k, int rc)
    {
        Chunk16 c = w[row + (k < rc ? k : 0)];
        uint m = k < rc ? 0xFFFFFFFFu : 0u;
        c.X &= m; c.Y &= m; c.Z &= m; c.W &= m;
        return c;
    }

    // One k32 step of n-tile nt: activation chunks h (hi) and l (lo) times weight chunks ca (row g), cb (row g+8) into
    // slot nt, and da, db into slot 8 + nt when dual. The mask zeroes the activations of a step past the row's end.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static TA Step<TA>(TA acc, int nt, bool dual, Chunk16 ca, Chunk16 cb, Chunk16 da, Chunk16 db, Chunk16 h, Chunk16 l, uint mask)
        where TA : struct, IMmaAcc<TA>
    {
        h.X &= mask; h.Y &= mask; h.Z &= mask; h.W &= mask;
        l.X &= mask; l.Y &= mask; l.Z &= mask; l.W &= mask;
        acc = acc.Mma(nt, ca.X, cb.X, ca.Y, cb.Y, h.X, h.Y);
        acc = acc.Mma(nt, ca.Z, cb.Z, ca.W, cb.W, h.Z, h.W);
        acc = acc.Mma(nt, ca.X, cb.X, ca.Y, cb.Y, l.X, l.Y);
        acc = acc.Mma(nt, ca.Z, cb.Z, ca.W, cb.W, l.Z, l.W);
        if (dual)
        {
            acc = acc.Mma(8 + nt, da.X, db.X, da.Y, db.Y, h.X, h.Y);
            acc = acc.Mma(8 + nt, da.Z, db.Z, da.W, db.W, h.Z, h.W);
            acc = acc.Mma(8 + nt, da.X, db.X, da.Y, db.Y, l.X, l.Y);
            acc = acc.Mma(8 + nt, da.Z, db.Z, da.W, db.W, l.Z, l.W);
        }
        return acc;
    }

    /// <summary>One m16n8k16 bf16 mma (f += A·B) from warp shuffles (32-wide warps) and fp32 arithmetic, in the PTX fragment layout.</summary>
    public static Frag Emulated(Frag f, uint a0, uint a1, uint a2, uint a3, uint b0, uint b1)
    {
        int lane = Warp.LaneIdx, g = lane >> 2, t = lane & 3;
        for (int q = 0; q < 4; q++)
        {
            int la = g * 4 + q, lb0 = 2 * t * 4 + q, lb1 = lb0 + 4;
            uint x0 = Warp.Shuffle(a0, la), x1 = Warp.Shuffle(a1, la), x2 = Warp.Shuffle(a2, la), x3 = Warp.Shuffle(a3, la);
            uint p0 = Warp.Shuffle(b0, lb0), p1 = Warp.Shuffle(b1, lb0), r0 = Warp.Shuffle(b0, lb1), r1 = Warp.Shuffle(b1, lb1);
            f.C0 += Dot2(x0, p0) + Dot2(x2, p1);
            f.C1 += Dot2(x0, r0) + Dot2(x2, r1);
            f.C2 += Dot2(x1, p0) + Dot2(x3, p1);
            f.C3 += Dot2(x1, r0) + Dot2(x3, r1);
        }
        return f;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float Dot2(uint x, uint y) =>
        Interop.IntAsFloat(x << 16) * Interop.IntAsFloat(y << 16) + Interop.IntAsFloat(x & 0xFFFF0000u) * Interop.IntAsFloat(y & 0xFFFF0000u);

}
