using System.Runtime.CompilerServices;

namespace Daop.Kernels.Cpu.Gemm;

/// <summary>
/// Many-token GEMM in outer-product form: activations are packed token-major once per call, each block of weight
/// rows is widened to fp32 once, and a 12-row (6 on AVX2) × (2·Width)-token register tile accumulates
/// broadcast(w[r, k]) · x[k, tokens] with no horizontal reductions. Each FMA pairs one weight with a whole
/// vector of tokens, so the kernel stays FMA-bound where the dot-product form (<see cref="Tiles{TF, TS, TV}"/>)
/// runs out of registers and cache bandwidth.
/// </summary>
internal static unsafe partial class OuterGemm<TF, TS, TV>
    where TF : struct, IPanelFormat where TS : struct, ISimd<TV> where TV : struct
{
    /// <summary>Weight rows per register tile: 12 (24 accumulators) with 32 vector registers, 6 with AVX2's 16.</summary>
    static int R => TS.Width >= 16 || TS.Width == 1 ? 12 : 6;

    /// <summary>Rows of the widened weight buffer (the largest <see cref="R"/>).</summary>
    const int MaxR = 12;

    /// <summary>
    /// Columns per block. The widened weights [R, Kc] (12 KB) stay in L1; a constant so the kernel reaches each of
    /// its R rows at an immediate offset from a single pointer.
    /// </summary>
    public const int Kc = 256;

    static int TileTokens => 2 * TS.Width;

    /// <summary>Tokens rounded up to whole vectors; padding tokens are zero and their outputs dropped.</summary>
    public static int PadTokens(int tokens) => (tokens + TS.Width - 1) / TS.Width * TS.Width;

    /// <summary>Floats of packed activations for <paramref name="tokens"/> × <paramref name="cols"/>.</summary>
    public static nint PackedFloats(int tokens, int cols) => (nint)PadTokens(tokens) * cols;

    /// <summary>
    /// Tokens per pass. Each pass reads the weights once; at 256 tokens that is already compute bound, and it caps
    /// the packed activations and per-chunk sums at a few MB whatever the batch.
    /// </summary>
    public const int TokenBlock = 256;

    /// <summary>Parallel y = x·Wᵀ over all rows of <paramref name="w"/>.</summary>
    public static void Forward(in WeightMatrix w, float* x, float* y, int tokens)
    {
        using var lease = ThreadScratch.Rent(PackedFloats(Math.Min(tokens, TokenBlock), w.Cols));
        for (int t0 = 0; t0 < tokens; t0 += TokenBlock)
        {
            int n = Math.Min(TokenBlock, tokens - t0);
            var job = new OuterJob<TF, TS, TV> { A = Args(w, x + (nint)t0 * w.Cols, lease.Pointer, y + (nint)t0 * w.Rows, w.Rows, n) };
            CpuWorkers.For(w.Rows, ChunkRows(w.Rows), job);
        }
    }

    /// <summary>Arguments for <paramref name="w"/>, packing <paramref name="x"/> into <paramref name="xt"/> unless already <paramref name="packed"/>.</summary>
    public static OuterArgs Args(in WeightMatrix w, float* x, float* xt, float* y, int yStride, int tokens, bool packed = false)
    {
        if (!packed) Pack(x, tokens, w.Cols, xt);
        return new OuterArgs
        {
            W = w.Data, WStride = w.RowBytes, Cols = w.Cols, Xt = xt,
            Tokens = tokens, TokensPadded = PadTokens(tokens), Y = y, YStride = yStride,
        };
    }

    /// <summary>Rows per chunk: whole 12-row groups (two AVX2 tiles), up to four, about four chunks per thread.</summary>
    public static int ChunkRows(int rows)
    {
        int tiles = (rows + MaxR - 1) / MaxR;
        return MaxR * Math.Clamp(tiles / (4 * CpuWorkers.Threads), 1, 4);
    }

    /// <summary>
    /// Packs x [tokens, cols] into token tiles: tile i holds tokens [i·TT, i·TT + n) as [cols, n] (n = TT, or Width
    /// for a last half tile), columns in the kernels' order (even/odd per step for 2-byte weights), padding zero.
    /// Parallel over column blocks.
    /// </summary>
    public static void Pack(float* x, int tokens, int cols, float* xt)
    {
        int step = 2 * TS.Width;
        var job = new PackJob { X = x, Xt = xt, Tokens = tokens, Cols = cols };
        int blocks = (cols + step - 1) / step;
        // ≥ 64 KB of activations per chunk, else packing is not worth waking the workers for.
        int perChunk = Math.Max(1, 16384 / Math.Max(1, tokens * step));
        CpuWorkers.For(blocks, perChunk, job);
    }

    struct PackJob : IParallelJob
    {
        public float* X, Xt;
        public int Tokens, Cols;

        public readonly void Execute(int start, int end) => PackBlocks(X, Tokens, Cols, Xt, start, end);
    }

    /// <summary>
    /// Packs column blocks [b0, b1) (of one step each). A token row is read a block at a time (one or two cache
    /// lines), put in kernel column order, and scattered into the tile, so no pass strides through x by whole rows.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void PackBlocks(float* x, int tokens, int cols, float* xt, int b0, int b1)
    {
        int tp = PadTokens(tokens), tt = TileTokens, step = 2 * TS.Width;
        int main = cols - cols % step;
        bool permute = TF.Interleaved && TS.Width > 1;
        float* tmp = stackalloc float[step];
        for (int t0 = 0; t0 < tp; t0 += tt)
        {
            int n = Math.Min(tt, tp - t0);
            float* tile = xt + (nint)t0 * cols;
            for (int b = b0; b < b1; b++)
            {
                int c0 = b * step, nc = Math.Min(step, cols - c0);
                float* d = tile + (nint)c0 * n;
                for (int j = 0; j < n; j++)
                {
                    int t = t0 + j;
                    if (t >= tokens)
                    {
                        for (int i = 0; i < nc; i++) d[(nint)i * n + j] = 0f;
                        continue;
                    }
                    float* src = x + (nint)t * cols + c0;
                    if (permute && c0 < main) { TS.Deinterleave(src, tmp); src = tmp; }
                    for (int i = 0; i < nc; i++) d[(nint)i * n + j] = src[i];
                }
            }
        }
    }

    /// <summary>Output rows [<paramref name="r0"/>, <paramref name="r1"/>) for every token.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Rows(in OuterArgs a, int r0, int r1)
    {
        int nrows = r1 - r0, tp = a.TokensPadded, tt = TileTokens, cols = a.Cols;
        int padded = (nrows + R - 1) / R * R;
        using var lease = ThreadScratch.RentChunk(MaxR * Kc + (nint)padded * tp);
        float* wf = lease.Pointer;          // [R, Kc] widened weights of one tile and block
        float* acc = wf + MaxR * Kc;        // [padded rows, tp] running sums
        for (int kb = 0; kb < cols; kb += Kc)
        {
            int kl = Math.Min(Kc, cols - kb);
            bool first = kb == 0;
            for (int rt = 0; rt < nrows; rt += R)
            {
                Widen(a, r0 + rt, Math.Min(R, nrows - rt), kb, kl, wf);
                float* accRt = acc + (nint)rt * tp;
                for (int t0 = 0; t0 < tp; t0 += tt)
                {
                    float* xt = a.Xt + (nint)t0 * cols;
                    bool full = tp - t0 >= tt;
                    float* xk = xt + (nint)kb * (full ? tt : tp - t0);
                    if (R == 12)
                    {
                        if (full) K12x2(wf, xk, kl, accRt + t0, tp, first);
                        else K12x1(wf, xk, kl, accRt + t0, tp, first);
                    }
                    else
                    {
                        if (full) K6x2(wf, xk, kl, accRt + t0, tp, first);
                        else K6x1(wf, xk, kl, accRt + t0, tp, first);
                    }
                }
            }
        }
        for (int t = 0; t < a.Tokens; t++)
        {
            float* yt = a.Y + t * a.YStride + r0;
            for (int j = 0; j < nrows; j++) yt[j] = acc[(nint)j * tp + t];
        }
    }

    /// <summary>Widens rows [row, row+nr) × columns [kb, kb+kl) into <paramref name="wf"/> [R, Kc]; missing rows are zero.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Widen(in OuterArgs a, int row, int nr, int kb, int kl, float* wf)
    {
        for (int j = 0; j < R; j++)
        {
            float* d = wf + j * Kc - kb;
            if (j >= nr) new Span<float>(d + kb, kl).Clear();
            else TF.WidenPanel<TS, TV>(a.W + (row + j) * a.WStride, a.Cols, kb, kl, d);
        }
    }
}

/// <summary>One problem for <see cref="OuterGemm{TF, TS, TV}.Rows"/>.</summary>
internal unsafe struct OuterArgs
{
    /// <summary>[rows, cols] weights, <see cref="WStride"/> bytes per row.</summary>
    public byte* W;
    public nint WStride;
    public int Cols;
    /// <summary>Packed activations (see <see cref="OuterGemm{TF, TS, TV}.Pack"/>).</summary>
    public float* Xt;
    public int Tokens, TokensPadded;
    /// <summary>[tokens, rows] output, <see cref="YStride"/> floats per token.</summary>
    public float* Y;
    public nint YStride;
}

/// <summary>The parallel body of <see cref="OuterGemm{TF, TS, TV}.Forward"/>.</summary>
internal struct OuterJob<TF, TS, TV> : IParallelJob
    where TF : struct, IPanelFormat where TS : struct, ISimd<TV> where TV : struct
{
    public OuterArgs A;

    public readonly void Execute(int start, int end) => OuterGemm<TF, TS, TV>.Rows(A, start, end);
}
