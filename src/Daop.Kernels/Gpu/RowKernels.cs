using System.Runtime.CompilerServices;
using ILGPU;

namespace Daop.Kernels.Gpu;

/// <summary>Scalar arguments of the row (matrix-vector) kernels.</summary>
public struct RowArgs
{
    /// <summary>Output rows of one matrix (of one expert in a stack).</summary>
    public int Rows;
    /// <summary>Input features (columns) of the weight.</summary>
    public int Cols;
    /// <summary>16-byte chunks per stored (padded) weight row.</summary>
    public int RowChunks;
    /// <summary>Input rows: tokens (GEMV, dense FFN), routed positions T·K (grouped experts), or T (down-combine).</summary>
    public int Tokens;
    /// <summary>Threads per team (one team per output row at a time); a power of two ≤ warp size.</summary>
    public int Lanes;
    /// <summary><see cref="RowKernels.FlagBias"/> | <see cref="RowKernels.FlagAligned"/> | <see cref="RowKernels.FlagGrouped"/>.</summary>
    public int Flags;
    /// <summary>Experts per token (routed kernels).</summary>
    public int TopK;
    /// <summary>Number of token tiles (grouped kernels).</summary>
    public int Tiles;
    /// <summary>Offset of the tile list (3 ints per tile: expert, first position, count) in the index view.</summary>
    public int TileOffset;
    /// <summary>Offset of the slot → position map in the index view (down-combine).</summary>
    public int PosOffset;
    /// <summary>Offset of the slot → expert map in the index view (down-combine).</summary>
    public int ExpertOffset;
    /// <summary>
    /// Rows per team of the block formats' single-token GEMV and down-and-combine: 2 (two rows share each activation
    /// load; set only for block formats with 16-byte aligned activation rows) or 1.
    /// </summary>
    public int BlockRows;
}

/// <summary>
/// The biases and activation of GPT-OSS's experts for the row kernels' biased variants: key e's gate [I], up [I] and down
/// [H] biases at e · <see cref="Stride"/> of the bias view; the clamped SwiGLU's α and limit.
/// </summary>
public struct ExpertBiasArgs
{
    /// <summary>Floats from one key's biases to the next.</summary>
    public int Stride;
    /// <summary>Expert intermediate width (where the up biases start in a key's).</summary>
    public int Inter;
    /// <summary>α of the gate's sigmoid.</summary>
    public float Alpha;
    /// <summary>The clamp of gate (above) and up (both sides).</summary>
    public float Limit;
}

/// <summary>What a routed expert computes between and after its projections, specialising the row kernels (a struct type parameter).</summary>
public interface IExpertEpilogue
{
    /// <summary>h for row <paramref name="r"/> of key <paramref name="e"/> from its gate and up dot products <paramref name="g"/>, <paramref name="u"/>.</summary>
    float Hidden(float g, float u, ArrayView<float> bias, ExpertBiasArgs b, int e, int r);
    /// <summary>What the down projection adds to row <paramref name="r"/> of key <paramref name="e"/> before its routing weight.</summary>
    float DownBias(ArrayView<float> bias, ExpertBiasArgs b, int e, int r);
    /// <summary>Whether <see cref="DownBias"/> is ever nonzero (a constant, so SwiGLU's kernels skip it).</summary>
    bool HasDownBias { get; }
}

/// <summary>SwiGLU: h = SiLU(g)·u, no biases.</summary>
public struct SwiGluEpilogue : IExpertEpilogue
{
    /// <inheritdoc />
    public readonly float Hidden(float g, float u, ArrayView<float> bias, ExpertBiasArgs b, int e, int r) => GpuMath.Silu(g) * u;
    /// <inheritdoc />
    public readonly float DownBias(ArrayView<float> bias, ExpertBiasArgs b, int e, int r) => 0f;
    /// <inheritdoc />
    public readonly bool HasDownBias => false;
}

/// <summary>GPT-OSS: g and u biased, h = (clamp(u, ±limit) + 1)·min(g, limit)·σ(α·min(g, limit)); down biased (<see cref="Cpu.BiasedExpertFfn"/>).</summary>
public struct ClampedSwiGluEpilogue : IExpertEpilogue
{
    /// <inheritdoc />
    public readonly float Hidden(float g, float u, ArrayView<float> bias, ExpertBiasArgs b, int e, int r)
    {
        long o = (long)e * b.Stride + r;
        float x = MathF.Min(g + bias[o], b.Limit), v = MathF.Min(MathF.Max(u + bias[o + b.Inter], -b.Limit), b.Limit);
        return x / (1f + GpuMath.Exp(-b.Alpha * x)) * (v + 1f);
    }

    /// <inheritdoc />
    public readonly float DownBias(ArrayView<float> bias, ExpertBiasArgs b, int e, int r) => bias[(long)e * b.Stride + 2 * b.Inter + r];
    /// <inheritdoc />
    public readonly bool HasDownBias => true;
}

/// <summary>
/// Matrix-vector kernels over 16-byte-chunked weights: a team of <see cref="RowArgs.Lanes"/> threads per output
/// row, each lane striding over the row's chunks (one 16-byte load = 8 bf16/f16 or 4 fp32), up to four tokens
/// per weight load, fp32 accumulation and a shuffle reduction. All are grid-stride: any grid covers all work.
/// </summary>
public static class RowKernels
{
    /// <summary>Add bias[r] to every output.</summary>
    public const int FlagBias = 1;
    /// <summary>x rows are 16-byte aligned (cols % 4 == 0): load activations as <see cref="Float4"/>.</summary>
    public const int FlagAligned = 2;
    /// <summary>Token tiles and row indices come from the index view (routed experts).</summary>
    public const int FlagGrouped = 4;

    /// <summary>
    /// y[t, r] = Σ_c x[t, c]·W[r, c] (+ bias[r]) for t &lt; Tokens, r &lt; Rows. Each team takes one row and a tile of 4
    /// tokens; the tiles of a row go to neighbouring teams, so past the first tile the row comes from the cache.
    /// </summary>
    public static void Gemv<TW>(ArrayView<Chunk16> w, ArrayView<float> x, ArrayView<Float4> x4, ArrayView<float> bias,
        ArrayView<float> y, RowArgs a) where TW : struct, IWeightFormat
    {
        int lanes = a.Lanes, gtid = Grid.GlobalIndex.X;
        int team = gtid / lanes, lane = gtid - team * lanes, teams = Grid.DimX * Group.DimX / lanes;
        int tiles = (a.Tokens + 3) / 4, items = a.Rows * tiles, iters = (items + teams - 1) / teams;
        int ntU = a.Tokens < 4 ? a.Tokens : 4;
        int aligned = a.Flags & FlagAligned;
        for (int it = 0; it < iters; it++)
        {
            int item = it * teams + team;
            bool valid = item < items;
            int r = valid ? item / tiles : 0, tile = valid ? item - r * tiles : 0;
            int t0 = tile * 4, nt = a.Tokens - t0 < 4 ? a.Tokens - t0 : 4;
            long xc = a.Cols;
            var acc = GpuMath.DotRows<TW>(w, (long)r * a.RowChunks, valid ? a.RowChunks : 0, x, x4, a.Cols, aligned,
                t0 * xc, (t0 + 1) * xc, (t0 + 2) * xc, (t0 + 3) * xc, nt, lane, lanes);
            acc = GpuMath.TeamSum4(acc, ntU, lanes);
            if (valid && lane == 0)
            {
                float b = (a.Flags & FlagBias) != 0 ? bias[r] : 0f;
                for (int k = 0; k < nt; k++) y[(long)(t0 + k) * a.Rows + r] = GpuMath.Pick(acc, k) + b;
            }
        }
    }

    /// <summary>
    /// Tile <paramref name="tile"/> of a grouped (from the index view) or implicit (four consecutive positions of expert
    /// 0) position list: expert, first position, count. Shared with the generated expert kernels.
    /// </summary>
    public static void Tile(ArrayView<int> index, RowArgs a, int tile, out int expert, out int p0, out int n)
    {
        if ((a.Flags & FlagGrouped) != 0)
        {
            int o = a.TileOffset + 3 * tile;
            expert = index[o]; p0 = index[o + 1]; n = index[o + 2];
        }
        else
        {
            expert = 0; p0 = 4 * tile; n = a.Tokens - p0 < 4 ? a.Tokens - p0 : 4;
        }
    }

    /// <summary>
    /// h[p, r] = SiLU(Wg[e]·x[row(p)]) · (Wu[e]·x[row(p)]) for every position p of every tile, r &lt; Rows (= inter).
    /// Grouped: row(p) = index[p] / TopK (index[p] is the routing slot), tiles from the index view, Wg/Wu stacks of
    /// all experts ([E·inter] rows). Otherwise row(p) = p, expert 0, tiles of four consecutive positions.
    /// </summary>
    public static void GateUp<TG, TU>(ArrayView<Chunk16> wg, ArrayView<Chunk16> wu, ArrayView<float> x, ArrayView<Float4> x4,
        ArrayView<int> index, ArrayView<float> h, RowArgs a) where TG : struct, IWeightFormat where TU : struct, IWeightFormat =>
        GateUp<TG, TU, SwiGluEpilogue>(wg, wu, x, x4, index, h, h, a, default);

    /// <summary>
    /// <see cref="GateUp{TG, TU}"/> of GPT-OSS's experts: h[p, r] = the clamped SwiGLU of (Wg[e]·x + bg[e], Wu[e]·x + bu[e])
    /// (<see cref="ClampedSwiGluEpilogue"/>), the biases of key e in <paramref name="bias"/> as <paramref name="b"/> says.
    /// </summary>
    public static void GateUpBiased<TG, TU>(ArrayView<Chunk16> wg, ArrayView<Chunk16> wu, ArrayView<float> x, ArrayView<Float4> x4,
        ArrayView<int> index, ArrayView<float> h, ArrayView<float> bias, RowArgs a, ExpertBiasArgs b)
        where TG : struct, IWeightFormat where TU : struct, IWeightFormat =>
        GateUp<TG, TU, ClampedSwiGluEpilogue>(wg, wu, x, x4, index, h, bias, a, b);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void GateUp<TG, TU, TE>(ArrayView<Chunk16> wg, ArrayView<Chunk16> wu, ArrayView<float> x, ArrayView<Float4> x4,
        ArrayView<int> index, ArrayView<float> h, ArrayView<float> bias, RowArgs a, ExpertBiasArgs b)
        where TG : struct, IWeightFormat where TU : struct, IWeightFormat where TE : struct, IExpertEpilogue
    {
        int lanes = a.Lanes, gtid = Grid.GlobalIndex.X;
        int team = gtid / lanes, lane = gtid - team * lanes, teams = Grid.DimX * Group.DimX / lanes;
        int items = a.Rows * a.Tiles, iters = (items + teams - 1) / teams;
        int ntU = a.Tokens < 4 ? a.Tokens : 4;
        int aligned = a.Flags & FlagAligned;
        bool grouped = (a.Flags & FlagGrouped) != 0;
        for (int it = 0; it < iters; it++)
        {
            int item = it * teams + team;
            bool valid = item < items;
            int tile = valid ? item / a.Rows : 0, r = valid ? item - tile * a.Rows : 0;
            Tile(index, a, tile, out int e, out int p0, out int n);
            if (!valid) n = 0;
            long xc = a.Cols;
            long x0 = RowOf(index, grouped, a.TopK, p0, n, 0) * xc, x1 = RowOf(index, grouped, a.TopK, p0, n, 1) * xc;
            long x2 = RowOf(index, grouped, a.TopK, p0, n, 2) * xc, x3 = RowOf(index, grouped, a.TopK, p0, n, 3) * xc;
            long row = ((long)e * a.Rows + r) * a.RowChunks;
            int chunks = valid ? a.RowChunks : 0;
            Acc4 g, u;
            if (n == 1 && aligned != 0)
            {
                // One position (decode): the unrolled single-row dot, four loads in flight per matrix; block formats of
                // one chunk geometry in one pass over the activations.
                g = default; u = default;
                if (default(TG).BlockChunks > 0 && default(TG).BlockChunks == default(TU).BlockChunks)
                {
                    var gu = BlockDots.Row2<TG, TU>(wg, wu, row, row, chunks > 0, x, x4, x0, a.Cols, lane, lanes);
                    g.A0 = gu.G; u.A0 = gu.U;
                }
                else
                {
                    g.A0 = GemvKernels.RowDot<TG, Unroll4>(wg, row, a.Cols / default(TG).PerChunk, chunks, x, x4, x0, a.Cols, lane, lanes);
                    u.A0 = GemvKernels.RowDot<TU, Unroll4>(wu, row, a.Cols / default(TU).PerChunk, chunks, x, x4, x0, a.Cols, lane, lanes);
                }
            }
            else
            {
                g = GpuMath.DotRows<TG>(wg, row, chunks, x, x4, a.Cols, aligned, x0, x1, x2, x3, n, lane, lanes);
                u = GpuMath.DotRows<TU>(wu, row, chunks, x, x4, a.Cols, aligned, x0, x1, x2, x3, n, lane, lanes);
            }
            g = GpuMath.TeamSum4(g, ntU, lanes);
            u = GpuMath.TeamSum4(u, ntU, lanes);
            if (valid && lane == 0)
                for (int k = 0; k < n; k++)
                    h[(long)(p0 + k) * a.Rows + r] = default(TE).Hidden(GpuMath.Pick(g, k), GpuMath.Pick(u, k), bias, b, e, r);
        }
    }

    /// <summary>
    /// The x row of position p0 + k (0 past the tile's <paramref name="n"/> positions): its routing slot / topK when
    /// grouped, else the position itself. Shared with the generated expert kernels.
    /// </summary>
    public static long RowOf(ArrayView<int> index, bool grouped, int topK, int p0, int n, int k)
    {
        if (k >= n) return 0;
        return grouped ? index[p0 + k] / topK : p0 + k;
    }

    /// <summary>
    /// Down projection of positions: out[o(p), r] = s(p) · Wd[e]·h[p]. Grouped: o(p) = index[p] (the routing slot),
    /// s(p) = scales[slot]; otherwise o(p) = p and s = 1.
    /// </summary>
    public static void Down<TW>(ArrayView<Chunk16> wd, ArrayView<float> h, ArrayView<Float4> h4, ArrayView<int> index,
        ArrayView<float> scales, ArrayView<float> y, RowArgs a) where TW : struct, IWeightFormat =>
        Down<TW, SwiGluEpilogue>(wd, h, h4, index, scales, y, y, a, default);

    /// <summary><see cref="Down{TW}"/> of GPT-OSS's experts (grouped): out[slot, r] = s(slot) · (Wd[e]·h[p] + bd[e, r]).</summary>
    public static void DownBiased<TW>(ArrayView<Chunk16> wd, ArrayView<float> h, ArrayView<Float4> h4, ArrayView<int> index,
        ArrayView<float> scales, ArrayView<float> y, ArrayView<float> bias, RowArgs a, ExpertBiasArgs b) where TW : struct, IWeightFormat =>
        Down<TW, ClampedSwiGluEpilogue>(wd, h, h4, index, scales, y, bias, a, b);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Down<TW, TE>(ArrayView<Chunk16> wd, ArrayView<float> h, ArrayView<Float4> h4, ArrayView<int> index,
        ArrayView<float> scales, ArrayView<float> y, ArrayView<float> bias, RowArgs a, ExpertBiasArgs b)
        where TW : struct, IWeightFormat where TE : struct, IExpertEpilogue
    {
        int lanes = a.Lanes, gtid = Grid.GlobalIndex.X;
        int team = gtid / lanes, lane = gtid - team * lanes, teams = Grid.DimX * Group.DimX / lanes;
        int items = a.Rows * a.Tiles, iters = (items + teams - 1) / teams;
        int ntU = a.Tokens < 4 ? a.Tokens : 4;
        int aligned = a.Flags & FlagAligned;
        bool grouped = (a.Flags & FlagGrouped) != 0;
        for (int it = 0; it < iters; it++)
        {
            int item = it * teams + team;
            bool valid = item < items;
            int tile = valid ? item / a.Rows : 0, r = valid ? item - tile * a.Rows : 0;
            Tile(index, a, tile, out int e, out int p0, out int n);
            if (!valid) n = 0;
            long hc = a.Cols;
            var acc = GpuMath.DotRows<TW>(wd, ((long)e * a.Rows + r) * a.RowChunks, valid ? a.RowChunks : 0, h, h4,
                a.Cols, aligned, p0 * hc, (p0 + 1) * hc, (p0 + 2) * hc, (p0 + 3) * hc, n, lane, lanes);
            acc = GpuMath.TeamSum4(acc, ntU, lanes);
            if (valid && lane == 0)
                for (int k = 0; k < n; k++)
                {
                    int p = p0 + k;
                    if (grouped)
                    {
                        int slot = index[p];
                        y[(long)slot * a.Rows + r] = scales[slot] * (GpuMath.Pick(acc, k) + default(TE).DownBias(bias, b, e, r));
                    }
                    else y[(long)p * a.Rows + r] = GpuMath.Pick(acc, k);
                }
        }
    }

    /// <summary>
    /// Routed down projection and combine in one pass, for few tokens: y[t, r] = Σ_j s(t,j) · Wd[e(t,j)]·h[pos(t,j)]
    /// over the TopK slots of token t (Tokens = T here). Reads each routed expert row once per token.
    /// </summary>
    public static void DownCombine<TW>(ArrayView<Chunk16> wd, ArrayView<float> h, ArrayView<Float4> h4, ArrayView<int> index,
        ArrayView<float> scales, ArrayView<float> y, RowArgs a) where TW : struct, IWeightFormat =>
        DownCombine<TW, SwiGluEpilogue>(wd, h, h4, index, scales, y, y, a, default);

    /// <summary><see cref="DownCombine{TW}"/> of GPT-OSS's experts: y[t, r] = Σ_j s(t,j) · (Wd[e(t,j)]·h[pos(t,j)] + bd[e(t,j), r]).</summary>
    public static void DownCombineBiased<TW>(ArrayView<Chunk16> wd, ArrayView<float> h, ArrayView<Float4> h4, ArrayView<int> index,
        ArrayView<float> scales, ArrayView<float> y, ArrayView<float> bias, RowArgs a, ExpertBiasArgs b) where TW : struct, IWeightFormat =>
        DownCombine<TW, ClampedSwiGluEpilogue>(wd, h, h4, index, scales, y, bias, a, b);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void DownCombine<TW, TE>(ArrayView<Chunk16> wd, ArrayView<float> h, ArrayView<Float4> h4, ArrayView<int> index,
        ArrayView<float> scales, ArrayView<float> y, ArrayView<float> bias, RowArgs a, ExpertBiasArgs b)
        where TW : struct, IWeightFormat where TE : struct, IExpertEpilogue
    {
        if (default(TW).BlockChunks > 0 && a.BlockRows == 2)
        {
            DownCombinePairs<TW, TE>(wd, h, h4, index, scales, y, bias, a, b);
            return;
        }
        int lanes = a.Lanes, gtid = Grid.GlobalIndex.X;
        int team = gtid / lanes, lane = gtid - team * lanes, teams = Grid.DimX * Group.DimX / lanes;
        int items = a.Rows * a.Tokens, iters = (items + teams - 1) / teams;
        int aligned = a.Flags & FlagAligned;
        for (int it = 0; it < iters; it++)
        {
            int item = it * teams + team;
            bool valid = item < items;
            int t = valid ? item / a.Rows : 0, r = valid ? item - t * a.Rows : 0;
            float acc = 0;
            if (valid)
                for (int j = 0; j < a.TopK; j++)
                {
                    int slot = t * a.TopK + j;
                    int e = index[a.ExpertOffset + slot], p = index[a.PosOffset + slot];
                    long wr = ((long)e * a.Rows + r) * a.RowChunks;
                    float d = aligned != 0
                        ? GemvKernels.RowDot<TW, Unroll4>(wd, wr, a.Cols / default(TW).PerChunk, a.RowChunks, h, h4, (long)p * a.Cols, a.Cols, lane, lanes)
                        : GpuMath.DotRows<TW>(wd, wr, a.RowChunks, h, h4, a.Cols, aligned, (long)p * a.Cols, 0, 0, 0, 1, lane, lanes).A0;
                    if (default(TE).HasDownBias && lane == 0) d += default(TE).DownBias(bias, b, e, r); // d is this lane's part: one bias per team
                    acc += scales[slot] * d;
                }
            acc = GpuMath.TeamSum(acc, lanes);
            if (valid && lane == 0) y[(long)t * a.Rows + r] = acc;
        }
    }

    /// <summary>
    /// <see cref="DownCombine{TW, TE}"/> for block formats, a team per two rows of one token: both rows of each routed expert in
    /// one pass over its activation row (<see cref="BlockDots.Row2{TG, TU}"/>). Rows of h must be 16-byte aligned.
    /// </summary>
    static void DownCombinePairs<TW, TE>(ArrayView<Chunk16> wd, ArrayView<float> h, ArrayView<Float4> h4, ArrayView<int> index,
        ArrayView<float> scales, ArrayView<float> y, ArrayView<float> bias, RowArgs a, ExpertBiasArgs b)
        where TW : struct, IWeightFormat where TE : struct, IExpertEpilogue
    {
        int lanes = a.Lanes, gtid = Grid.GlobalIndex.X;
        int team = gtid / lanes, lane = gtid - team * lanes, teams = Grid.DimX * Group.DimX / lanes;
        int pairs = (a.Rows + 1) >> 1, items = pairs * a.Tokens, iters = (items + teams - 1) / teams;
        for (int it = 0; it < iters; it++)
        {
            int item = it * teams + team;
            bool valid = item < items;
            int t = valid ? item / pairs : 0, r0 = valid ? 2 * (item - t * pairs) : 0, r1 = r0 + 1 < a.Rows ? r0 + 1 : r0;
            float acc0 = 0, acc1 = 0;
            for (int j = 0; j < (valid ? a.TopK : 0); j++)
            {
                int slot = t * a.TopK + j;
                int e = index[a.ExpertOffset + slot], p = index[a.PosOffset + slot];
                long first = (long)e * a.Rows;
                var d = BlockDots.Row2<TW, TW>(wd, wd, (first + r0) * a.RowChunks, (first + r1) * a.RowChunks, true, h, h4,
                    (long)p * a.Cols, a.Cols, lane, lanes);
                float d0 = d.G, d1 = d.U;
                if (default(TE).HasDownBias && lane == 0) // d is this lane's part of the dots: one bias per team
                {
                    d0 += default(TE).DownBias(bias, b, e, r0);
                    d1 += default(TE).DownBias(bias, b, e, r1);
                }
                acc0 += scales[slot] * d0;
                acc1 += scales[slot] * d1;
            }
            acc0 = GpuMath.TeamSum(acc0, lanes);
            acc1 = GpuMath.TeamSum(acc1, lanes);
            if (valid && lane == 0)
            {
                y[(long)t * a.Rows + r0] = acc0;
                if (r1 != r0) y[(long)t * a.Rows + r1] = acc1;
            }
        }
    }
}
