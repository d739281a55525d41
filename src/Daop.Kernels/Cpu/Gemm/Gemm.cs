using System.Runtime.CompilerServices;

namespace Daop.Kernels.Cpu.Gemm;

/// <summary>
/// y = x·Wᵀ for one weight format and vector width: activation preparation, blocking plan and the row-range
/// driver that the parallel jobs call.
/// </summary>
internal static unsafe class Gemm<TF, TS, TV>
    where TF : struct, IWeightFormat where TS : struct, ISimd<TV> where TV : struct
{
    /// <summary>Columns per kernel step.</summary>
    public static int Step => 2 * TS.Width;

    /// <summary>
    /// From this many tokens on, the outer-product GEMM (<see cref="OuterGemm{TF, TS, TV}"/>) beats the
    /// dot-product tiles, whose padding-free 4-token groups suit small batches (Zen 5, bf16 14336×4096: 24 tokens
    /// 275 vs 236 GFLOP/s, 32 tokens 282 vs 317). <c>DAOP_OUTER_MIN</c> overrides it for tuning on other machines.
    /// </summary>
    internal static readonly int OuterMinTokens =
        int.TryParse(Environment.GetEnvironmentVariable("DAOP_OUTER_MIN"), out int m) && m > 0 ? m : 32;

    /// <summary>Whether activations must be permuted to the kernels' even/odd column order.</summary>
    public static bool NeedsPrep => TF.Interleaved && TS.Width > 1;

    /// <summary>Columns the vector kernels handle; the scalar tail is the rest.</summary>
    public static int MainCols(int cols) => cols - cols % Step;

    /// <summary>Parallel y = x·Wᵀ over all rows of <paramref name="w"/>.</summary>
    public static void Forward(in WeightMatrix w, float* x, float* y, int tokens)
    {
        if (tokens >= OuterMinTokens)
        {
            OuterGemm<TF, TS, TV>.Forward(w, x, y, tokens);
            return;
        }
        int cols = w.Cols, main = MainCols(cols);
        using var lease = NeedsPrep ? ThreadScratch.Rent((nint)tokens * main) : default;
        var job = new MatMulJob<TF, TS, TV> { A = Args(w, x, lease.Pointer, y, w.Rows, tokens) };
        CpuWorkers.For(w.Rows, ChunkRows(w.Rows, w.RowBytes, tokens), job);
    }

    /// <summary>
    /// Fills the arguments for <paramref name="w"/>, preparing <paramref name="x"/> into <paramref name="prep"/>
    /// ([tokens, MainCols] floats) when the format needs it, unless <paramref name="prepared"/> says an earlier
    /// call with the same x already did.
    /// </summary>
    public static GemmArgs Args(in WeightMatrix w, float* x, float* prep, float* y, int yStride, int tokens, bool prepared = false)
    {
        int cols = w.Cols, main = MainCols(cols);
        float* xp = x;
        nint xps = cols;
        if (NeedsPrep)
        {
            if (!prepared) Prepare(x, tokens, cols, main, prep);
            xp = prep;
            xps = main;
        }
        return new GemmArgs
        {
            W = w.Data, WStride = w.RowBytes, Cols = cols, ColsMain = main,
            Xp = xp, XpStride = xps, X = x, XStride = cols, Y = y, YStride = yStride,
            Tokens = tokens,
        };
    }

    /// <summary>Permutes each token's main columns to even/odd order per step ([tokens, cols] → [tokens, main]).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Prepare(float* x, int tokens, int cols, int main, float* dst)
    {
        int step = Step;
        for (int t = 0; t < tokens; t++)
        {
            float* src = x + (nint)t * cols, d = dst + (nint)t * main;
            for (int c = 0; c < main; c += step) TS.Deinterleave(src + c, d + c);
        }
    }

    /// <summary>Rows per parallel chunk: <see cref="RowChunks.Rows"/>.</summary>
    public static int ChunkRows(int rows, int rowBytes, int tokens) => RowChunks.Rows(rows, rowBytes, tokens);

    /// <summary>Computes output rows [<paramref name="r0"/>, <paramref name="r1"/>) for every token.</summary>
    /// <remarks>
    /// A 4-row tile at a time, all token groups over it before moving on: the tile's rows come from memory once
    /// and from L1/L2 for the later groups.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Rows(in GemmArgs a, int r0, int r1)
    {
        float* s = stackalloc float[16]; // [4 tokens, 4 rows] tile results
        int tokens = a.Tokens, main = a.ColsMain;
        // Tile i takes rows i, i+q, i+2q, i+3q of the chunk, so each of its four weight streams runs
        // sequentially through a quarter of the chunk instead of restarting every four rows.
        // (Zen 5, bf16 14336×4096, best of 150: GEMV 55 → 73 GB/s, f16 44 → 57 GB/s against adjacent rows.)
        int q = (r1 - r0) / 4;
        nint ws = q * a.WStride;
        for (int i = 0; i < q; i++)
        {
            int rt = r0 + i;
            byte* w = a.W + rt * a.WStride;
            for (int t = 0; t < tokens; t += 4)
            {
                float* xt = a.Xp + t * a.XpStride;
                int nt = Math.Min(4, tokens - t);
                switch (nt)
                {
                    case 4: Tiles<TF, TS, TV>.T4x4(w, ws, xt, a.XpStride, 0, main, s); break;
                    case 3: Tiles<TF, TS, TV>.T4x3(w, ws, xt, a.XpStride, 0, main, s); break;
                    case 2: Tiles<TF, TS, TV>.T4x2(w, ws, xt, a.XpStride, 0, main, s); break;
                    default: Tiles<TF, TS, TV>.T4x1(w, ws, xt, a.XpStride, 0, main, s); break;
                }
                float* yt = a.Y + t * a.YStride + rt;
                for (int k = 0; k < nt; k++)
                    for (int j = 0; j < 4; j++) yt[k * a.YStride + j * q] = s[k * 4 + j];
            }
        }
        int r = r0 + 4 * q;
        for (; r < r1; r++)
        {
            byte* w = a.W + r * a.WStride;
            int t = 0;
            for (; t + 4 <= tokens; t += 4)
            {
                Tiles<TF, TS, TV>.T1x4(w, a.Xp + t * a.XpStride, a.XpStride, 0, main, s);
                for (int i = 0; i < 4; i++) a.Y[(t + i) * a.YStride + r] = s[i * 4];
            }
            for (; t < tokens; t++)
                a.Y[t * a.YStride + r] = Tiles<TF, TS, TV>.T1x1(w, a.Xp + t * a.XpStride, 0, main);
        }
        if (main < a.Cols) Tail(a, r0, r1);
    }

    /// <summary>Columns past the last full step, scalar; also initialises y when there are no main columns.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Tail(in GemmArgs a, int r0, int r1)
    {
        for (int t = 0; t < a.Tokens; t++)
        {
            float* xt = a.X + t * a.XStride;
            float* yt = a.Y + t * a.YStride;
            for (int r = r0; r < r1; r++)
            {
                byte* row = a.W + r * a.WStride;
                float acc = 0;
                for (int c = a.ColsMain; c < a.Cols; c++) acc += xt[c] * TF.Widen(row, c);
                yt[r] = a.ColsMain == 0 ? acc : yt[r] + acc;
            }
        }
    }
}

/// <summary>The parallel body of <see cref="Gemm{TF, TS, TV}.Forward"/>: a chunk is a range of output rows.</summary>
internal struct MatMulJob<TF, TS, TV> : IParallelJob
    where TF : struct, IWeightFormat where TS : struct, ISimd<TV> where TV : struct
{
    public GemmArgs A;

    public readonly void Execute(int start, int end) => Gemm<TF, TS, TV>.Rows(A, start, end);
}
