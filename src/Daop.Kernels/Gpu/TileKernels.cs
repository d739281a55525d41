using System.Runtime.CompilerServices;
using ILGPU;

namespace Daop.Kernels.Gpu;

/// <summary>Scalar arguments of the batched (prefill) kernels.</summary>
public struct TileArgs
{
    /// <summary>Output rows of one matrix (of one expert in a stack).</summary>
    public int Rows;
    /// <summary>Input features (columns) of the weight.</summary>
    public int Cols;
    /// <summary>16-byte chunks per stored (padded) weight row.</summary>
    public int RowChunks;
    /// <summary>Positions (input rows) in all.</summary>
    public int Positions;
    /// <summary>Number of position tiles.</summary>
    public int Tiles;
    /// <summary>Offset of the tile list (expert, first position, count) in the index view (grouped).</summary>
    public int TileOffset;
    /// <summary>Experts per token (grouped gate/up: x row = slot / TopK).</summary>
    public int TopK;
    /// <summary><see cref="RowKernels.FlagBias"/> | <see cref="RowKernels.FlagAligned"/> | <see cref="RowKernels.FlagGrouped"/>.</summary>
    public int Flags;
    /// <summary>Offset of the hi/lo bf16 activations' low halves in the split view (tensor-core kernels).</summary>
    public int LoOffset;
}

/// <summary>
/// Batched row kernels for more than four positions (prefill), in fp32 FMA on any dtype: a tile of up to
/// <see cref="TileTokens"/> positions, each thread computing 4 rows × 4 positions of it over the whole row, so one
/// weight chunk load feeds 16 outputs and a warp (4 row quads × 8 position quads) covers 16 rows × 32 positions;
/// the x rows of the tile are shared by the warp through L1. Grid-stride, any group size (the CPU accelerator's too).
/// </summary>
public static class TileKernels
{
    /// <summary>Positions per tile.</summary>
    public const int TileTokens = 32;
    const int Quads = TileTokens / 4;

    /// <summary>y[p, r] = W[r]·x[p] (+ bias[r]) for p &lt; Positions: dense Linear over position tiles of 32.</summary>
    public static void Linear<TW>(ArrayView<Chunk16> w, ArrayView<float> x, ArrayView<Float4> x4, ArrayView<float> bias,
        ArrayView<float> y, TileArgs a) where TW : struct, IWeightFormat
    {
        int quads = (a.Rows + 3) / 4;
        long items = (long)a.Tiles * quads * Quads;
        int threads = Grid.DimX * Group.DimX;
        for (long item = Grid.GlobalIndex.X; item < items; item += threads)
        {
            Item(item, quads, out int tile, out int rq, out int tq);
            int p0 = tile * TileTokens + tq * 4, n = a.Positions - p0;
            if (n <= 0) continue;
            int r0 = rq * 4;
            var acc = Micro<TW>(w, Rows(r0, a.Rows, a.RowChunks, 0), a.RowChunks, x, x4,
                XRows(p0, n, a.Cols), a.Cols, a.Flags & RowKernels.FlagAligned);
            bool hasBias = (a.Flags & RowKernels.FlagBias) != 0;
            for (int i = 0; i < 4; i++)
            {
                int r = r0 + i;
                if (r >= a.Rows) break;
                float b = hasBias ? bias[r] : 0f;
                for (int k = 0; k < 4 && k < n; k++) y[(long)(p0 + k) * a.Rows + r] = Pick(acc, k, i) + b;
            }
        }
    }

    /// <summary>
    /// h[p, r] = SiLU(Wg[e]·x[row(p)]) · (Wu[e]·x[row(p)]): as <see cref="RowKernels.GateUp{TG, TU}"/> with tiles of up
    /// to 32 positions (grouped: from the index view, row(p) = index[p] / TopK; else consecutive, row(p) = p).
    /// </summary>
    public static void GateUp<TG, TU>(ArrayView<Chunk16> wg, ArrayView<Chunk16> wu, ArrayView<float> x, ArrayView<Float4> x4,
        ArrayView<int> index, ArrayView<float> h, TileArgs a) where TG : struct, IWeightFormat where TU : struct, IWeightFormat =>
        GateUp<TG, TU, SwiGluEpilogue>(wg, wu, x, x4, index, h, h, a, default);

    /// <summary>
    /// <see cref="GateUp{TG, TU}"/> of GPT-OSS's experts (grouped): h[p, r] = the clamped SwiGLU of the biased projections
    /// (<see cref="ClampedSwiGluEpilogue"/>), key e's biases in <paramref name="bias"/> as <paramref name="b"/> says.
    /// </summary>
    public static void GateUpBiased<TG, TU>(ArrayView<Chunk16> wg, ArrayView<Chunk16> wu, ArrayView<float> x, ArrayView<Float4> x4,
        ArrayView<int> index, ArrayView<float> h, ArrayView<float> bias, TileArgs a, ExpertBiasArgs b)
        where TG : struct, IWeightFormat where TU : struct, IWeightFormat =>
        GateUp<TG, TU, ClampedSwiGluEpilogue>(wg, wu, x, x4, index, h, bias, a, b);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void GateUp<TG, TU, TE>(ArrayView<Chunk16> wg, ArrayView<Chunk16> wu, ArrayView<float> x, ArrayView<Float4> x4,
        ArrayView<int> index, ArrayView<float> h, ArrayView<float> bias, TileArgs a, ExpertBiasArgs b)
        where TG : struct, IWeightFormat where TU : struct, IWeightFormat where TE : struct, IExpertEpilogue
    {
        int quads = (a.Rows + 3) / 4;
        long items = (long)a.Tiles * quads * Quads;
        int threads = Grid.DimX * Group.DimX;
        bool grouped = (a.Flags & RowKernels.FlagGrouped) != 0;
        for (long item = Grid.GlobalIndex.X; item < items; item += threads)
        {
            Item(item, quads, out int tile, out int rq, out int tq);
            Tile(index, a, tile, out int e, out int tp0, out int tn);
            int p0 = tp0 + tq * 4, n = tn - tq * 4;
            if (n <= 0) continue;
            int r0 = rq * 4;
            var xr = grouped ? GatherRows(index, p0, n, a.TopK, a.Cols) : XRows(p0, n, a.Cols);
            var rows = Rows(r0, a.Rows, a.RowChunks, e);
            int aligned = a.Flags & RowKernels.FlagAligned;
            var g = Micro<TG>(wg, rows, a.RowChunks, x, x4, xr, a.Cols, aligned);
            var u = Micro<TU>(wu, rows, a.RowChunks, x, x4, xr, a.Cols, aligned);
            for (int i = 0; i < 4; i++)
            {
                int r = r0 + i;
                if (r >= a.Rows) break;
                for (int k = 0; k < 4 && k < n; k++)
                    h[(long)(p0 + k) * a.Rows + r] = default(TE).Hidden(Pick(g, k, i), Pick(u, k, i), bias, b, e, r);
            }
        }
    }

    /// <summary>
    /// Down projection of positions as <see cref="RowKernels.Down{TW}"/> with tiles of up to 32 positions: grouped,
    /// y[slot, r] = scales[slot] · Wd[e]·h[p] with slot = index[p]; else y[p, r] = Wd·h[p].
    /// </summary>
    public static void Down<TW>(ArrayView<Chunk16> wd, ArrayView<float> h, ArrayView<Float4> h4, ArrayView<int> index,
        ArrayView<float> scales, ArrayView<float> y, TileArgs a) where TW : struct, IWeightFormat =>
        Down<TW, SwiGluEpilogue>(wd, h, h4, index, scales, y, y, a, default);

    /// <summary><see cref="Down{TW}"/> of GPT-OSS's experts (grouped): y[slot, r] = scales[slot] · (Wd[e]·h[p] + bd[e, r]).</summary>
    public static void DownBiased<TW>(ArrayView<Chunk16> wd, ArrayView<float> h, ArrayView<Float4> h4, ArrayView<int> index,
        ArrayView<float> scales, ArrayView<float> y, ArrayView<float> bias, TileArgs a, ExpertBiasArgs b) where TW : struct, IWeightFormat =>
        Down<TW, ClampedSwiGluEpilogue>(wd, h, h4, index, scales, y, bias, a, b);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Down<TW, TE>(ArrayView<Chunk16> wd, ArrayView<float> h, ArrayView<Float4> h4, ArrayView<int> index,
        ArrayView<float> scales, ArrayView<float> y, ArrayView<float> bias, TileArgs a, ExpertBiasArgs b)
        where TW : struct, IWeightFormat where TE : struct, IExpertEpilogue
    {
        int quads = (a.Rows + 3) / 4;
        long items = (long)a.Tiles * quads * Quads;
        int threads = Grid.DimX * Group.DimX;
        bool grouped = (a.Flags & RowKernels.FlagGrouped) != 0;
        for (long item = Grid.GlobalIndex.X; item < items; item += threads)
        {
            Item(item, quads, out int tile, out int rq, out int tq);
            Tile(index, a, tile, out int e, out int tp0, out int tn);
            int p0 = tp0 + tq * 4, n = tn - tq * 4;
            if (n <= 0) continue;
            int r0 = rq * 4;
            var acc = Micro<TW>(wd, Rows(r0, a.Rows, a.RowChunks, e), a.RowChunks, h, h4, XRows(p0, n, a.Cols), a.Cols,
                a.Flags & RowKernels.FlagAligned);
            for (int k = 0; k < 4 && k < n; k++)
            {
                int p = p0 + k;
                long o = grouped ? index[p] : p;
                float s = grouped ? scales[(int)o] : 1f;
                for (int i = 0; i < 4; i++)
                {
                    int r = r0 + i;
                    if (r >= a.Rows) break;
                    float d = Pick(acc, k, i);
                    if (default(TE).HasDownBias && grouped) d += default(TE).DownBias(bias, b, e, r);
                    y[o * a.Rows + r] = s * d;
                }
            }
        }
    }

    // Position quads fastest (a warp shares its rows), then row quads (a block shares its positions), then tiles.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Item(long item, int quads, out int tile, out int rq, out int tq)
    {
        tq = (int)(item % Quads);
        long rest = item / Quads;
        rq = (int)(rest % quads);
        tile = (int)(rest / quads);
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

    /// <summary>Four element offsets (weight row starts in chunks, or x row starts in floats).</summary>
    internal struct Four
    {
        public long V0, V1, V2, V3;
    }

    // Chunk offsets of rows r0..r0+3 of expert e; rows past the matrix repeat its last row (their outputs are dropped).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Four Rows(int r0, int rows, int rowChunks, int e)
    {
        long b = (long)e * rows;
        int last = rows - 1;
        Four f;
        f.V0 = (b + r0) * rowChunks;
        f.V1 = (b + (r0 + 1 < rows ? r0 + 1 : last)) * rowChunks;
        f.V2 = (b + (r0 + 2 < rows ? r0 + 2 : last)) * rowChunks;
        f.V3 = (b + (r0 + 3 < rows ? r0 + 3 : last)) * rowChunks;
        return f;
    }

    // Element offsets of x rows p0..p0+3 (past n: row p0 again).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Four XRows(int p0, int n, int cols)
    {
        Four f;
        f.V0 = (long)p0 * cols;
        f.V1 = n > 1 ? (long)(p0 + 1) * cols : f.V0;
        f.V2 = n > 2 ? (long)(p0 + 2) * cols : f.V0;
        f.V3 = n > 3 ? (long)(p0 + 3) * cols : f.V0;
        return f;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Four GatherRows(ArrayView<int> index, int p0, int n, int topK, int cols)
    {
        Four f;
        f.V0 = (long)(index[p0] / topK) * cols;
        f.V1 = n > 1 ? (long)(index[p0 + 1] / topK) * cols : f.V0;
        f.V2 = n > 2 ? (long)(index[p0 + 2] / topK) * cols : f.V0;
        f.V3 = n > 3 ? (long)(index[p0 + 3] / topK) * cols : f.V0;
        return f;
    }

    /// <summary>Sixteen accumulators: <c>T{k}.A{i}</c> is row i for x row k.</summary>
    internal struct Acc16
    {
        public Acc4 T0, T1, T2, T3;
    }

    // The 4×4 block of W rows · x rows over whole rows (block formats: BlockTiles.Micro).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Acc16 Micro<TW>(ArrayView<Chunk16> w, Four rows, int rowChunks, ArrayView<float> x, ArrayView<Float4> x4,
        Four xr, int cols, int aligned) where TW : struct, IWeightFormat
    {
        if (default(TW).BlockChunks > 0) return BlockTiles.Micro<TW>(w, rows, x, x4, xr, cols, aligned);
        Acc16 acc = default;
        int per = default(TW).PerChunk;
        for (int j = 0; j < rowChunks; j++)
        {
            var w0 = default(TW).Widen(w[rows.V0 + j]);
            var w1 = default(TW).Widen(w[rows.V1 + j]);
            var w2 = default(TW).Widen(w[rows.V2 + j]);
            var w3 = default(TW).Widen(w[rows.V3 + j]);
            int c0 = j * per;
            bool fast = aligned != 0 && c0 + per <= cols;
            acc.T0 = Fma(acc.T0, w0, w1, w2, w3, LoadX(x, x4, xr.V0 + c0, c0, cols, per, fast));
            acc.T1 = Fma(acc.T1, w0, w1, w2, w3, LoadX(x, x4, xr.V1 + c0, c0, cols, per, fast));
            acc.T2 = Fma(acc.T2, w0, w1, w2, w3, LoadX(x, x4, xr.V2 + c0, c0, cols, per, fast));
            acc.T3 = Fma(acc.T3, w0, w1, w2, w3, LoadX(x, x4, xr.V3 + c0, c0, cols, per, fast));
        }
        return acc;
    }

    /// <summary>Eight activations (zero past the row's end).</summary>
    internal struct X8
    {
        public Float4 P, Q;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static X8 LoadX(ArrayView<float> x, ArrayView<Float4> x4, long xi, int c0, int cols, int per, bool fast)
    {
        X8 v = default;
        if (fast)
        {
            v.P = x4[xi >> 2];
            if (per == 8) v.Q = x4[(xi >> 2) + 1];
            return v;
        }
        int n = cols - c0;
        if (n > 0) v.P.X = x[xi];
        if (n > 1) v.P.Y = x[xi + 1];
        if (n > 2) v.P.Z = x[xi + 2];
        if (n > 3) v.P.W = x[xi + 3];
        if (per == 8)
        {
            if (n > 4) v.Q.X = x[xi + 4];
            if (n > 5) v.Q.Y = x[xi + 5];
            if (n > 6) v.Q.Z = x[xi + 6];
            if (n > 7) v.Q.W = x[xi + 7];
        }
        return v;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float Dot(Widened w, X8 v) =>
        (w.W0 * v.P.X + w.W1 * v.P.Y + w.W2 * v.P.Z + w.W3 * v.P.W) + (w.W4 * v.Q.X + w.W5 * v.Q.Y + w.W6 * v.Q.Z + w.W7 * v.Q.W);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Acc4 Fma(Acc4 a, Widened w0, Widened w1, Widened w2, Widened w3, X8 v)
    {
        a.A0 += Dot(w0, v);
        a.A1 += Dot(w1, v);
        a.A2 += Dot(w2, v);
        a.A3 += Dot(w3, v);
        return a;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float Pick(Acc16 a, int k, int i)
    {
        var t = k == 0 ? a.T0 : k == 1 ? a.T1 : k == 2 ? a.T2 : a.T3;
        return GpuMath.Pick(t, i);
    }
}
