using System.Runtime.CompilerServices;
using Daop.Kernels.Cpu.Gemm;

namespace Daop.Kernels.Cpu.Amx;

/// <summary>
/// y = x·Wᵀ for bf16 weights with AVX512-BF16's <c>vdpbf16ps</c> (<see cref="DpBf16Kernels"/>), for batches (prefill)
/// where AMX-BF16 is absent: x is rounded to bf16 once in <see cref="AmxBf16Gemm"/>'s pair layout, and each block of up
/// to 24 weight rows, read where it lies, runs one routine per token tile (or per pair of tiles, 12 rows at a time);
/// products of two bf16 are exact and accumulate in fp32.
/// </summary>
/// <remarks>
/// As with the AMX tiles, x is rounded to bf16 (a relative error of up to 2^-8 per activation, half an ulp of an 8-bit significand; the measured effect on
/// perplexity is in docs/cpu-kernels.md). Columns must be a multiple of 8 (<see cref="Fits"/>); any row count is taken.
/// <c>DAOP_AVX512BF16=0</c> keeps the fp32-activation AVX-512 path, <c>emulate</c> runs this driver on the twin.
/// </remarks>
internal static unsafe class Avx512Bf16Gemm
{
    const int Block = DpBf16Kernels.MaxRows1;

    /// <summary>
    /// Batches from this size on use <c>vdpbf16ps</c> (<c>DAOP_AVX512BF16_MIN_TOKENS</c> overrides it): from 17 tokens
    /// on there are two token tiles, and a weight load serves two products. AMD Zen 5 VM, 2 threads, Mixtral expert,
    /// GFLOP/s vdpbf16ps vs fp32 AVX-512 (2026-12-08, a loaded machine): 4 tokens 27–28 vs 91 (12 of 16 lanes padding),
    /// 16 tokens 100–109 vs 129, 24 tokens 220–230 vs 78–86, 32 tokens 255–306 vs 102, 64 tokens 339–355 vs 177.
    /// </summary>
    public static int MinTokens { get; } =
        int.TryParse(Environment.GetEnvironmentVariable("DAOP_AVX512BF16_MIN_TOKENS"), out int m) && m > 0 ? m : 17;

    /// <summary>Whether <paramref name="w"/> has the shape the routines take: bf16, columns a multiple of 8.</summary>
    public static bool Fits(in WeightMatrix w) => w.Type == DType.BF16 && w.Cols % (2 * DpBf16Kernels.GroupPairs) == 0 && w.Cols > 0;

    /// <summary>Whether a batch of <paramref name="tokens"/> on <paramref name="w"/> takes the routines here (and AMX-BF16 does not).</summary>
    public static bool Use(in WeightMatrix w, int tokens) =>
        tokens >= MinTokens && DpBf16Kernels.Enabled && Fits(w) && !AmxBf16Gemm.Use(w, tokens);

    /// <summary>Whether an expert's gate and up projections (<see cref="GateUp"/>) take the routines here.</summary>
    public static bool Use(in WeightMatrix gate, in WeightMatrix up, int tokens) => Use(gate, tokens) && Fits(up);

    /// <summary>y = x·Wᵀ (x: [tokens, cols], y: [tokens, rows]) for a matrix that <see cref="Fits"/>.</summary>
    public static void Forward(in WeightMatrix w, float* x, float* y, int tokens, bool emulate = false) =>
        Run(w, w, x, y, null, tokens, emulate);

    /// <summary>g ← SiLU(x·Gateᵀ) ⊙ (x·Upᵀ); u ← x·Upᵀ, both [tokens, inter].</summary>
    public static void GateUp(in WeightMatrix gate, in WeightMatrix up, float* x, float* g, float* u, int tokens, bool emulate = false) =>
        Run(gate, up, x, g, u, tokens, emulate);

    static void Run(in WeightMatrix first, in WeightMatrix second, float* x, float* y1, float* y2, int tokens, bool emulate)
    {
        if (!Fits(first) || !Fits(second) || second.Rows != first.Rows || second.Cols != first.Cols)
            throw new ArgumentException($"vdpbf16ps GEMM takes bf16 weights with columns a multiple of 8: got {first.Type} {first.Rows}x{first.Cols} and {second.Type} {second.Rows}x{second.Cols}");
        int rows = first.Rows;
        bool gateUp = y2 != null;
        using var lease = ThreadScratch.Rent(AmxBf16Gemm.Floats(first.Cols, tokens));
        var job = new Job
        {
            X = AmxBf16Gemm.Convert(x, first.Cols, tokens, lease.Pointer), Emulate = emulate, GateUp = gateUp,
            First = new MatrixProblem { W = first.Data, WStride = first.RowBytes, Y = y1, YStride = rows },
            Second = gateUp ? new MatrixProblem { W = second.Data, WStride = second.RowBytes, Y = y2, YStride = rows } : default,
        };
        int chunk = (RowChunks.Rows(rows, first.RowBytes, gateUp ? 2 * tokens : tokens) + Block - 1) / Block * Block;
        CpuWorkers.For(rows, chunk, job);
    }

    /// <summary>Rows [r0, r1) of one matrix: per block of 24 rows, per token tile or pair of tiles, routine calls, then C into y.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Rows(in MatrixProblem p, in AmxBf16Gemm.Activations x, int r0, int r1, float* c, bool emulate)
    {
        DpBf16Args args = default;
        args.WStride = p.WStride;
        args.XTileStep = x.TileBytes;
        args.C = c;
        args.Groups = x.Pairs / DpBf16Kernels.GroupPairs;
        for (int r = r0; r < r1; r += Block)
        {
            int rows = Math.Min(Block, r1 - r);
            for (int n0 = 0; n0 < x.TokenTiles; n0 += 2)
            {
                int tiles = Math.Min(2, x.TokenTiles - n0);
                args.X = x.Values + n0 * x.TileBytes;
                // one tile: all the block's rows in one call; two: at most 12 rows a call (24 accumulators)
                int step = tiles == 1 ? Block : DpBf16Kernels.MaxRows2;
                for (int rr = 0; rr < rows; rr += step)
                {
                    int rn = Math.Min(step, rows - rr);
                    new Span<float>(c, rn * tiles * 16).Clear();
                    args.W = p.W + (r + rr) * p.WStride;
                    DpBf16Kernels.Run(&args, rn, tiles, emulate);
                    // C is [tiles][rn][16 tokens]; y is [tokens, rows]
                    for (int n = 0; n < tiles; n++)
                    {
                        int t0 = 16 * (n0 + n), tn = Math.Min(16, x.Tokens - t0);
                        float* cn = c + n * rn * 16;
                        float* yb = p.Y + t0 * p.YStride + r + rr;
                        for (int t = 0; t < tn; t++)
                            for (int i = 0; i < rn; i++) yb[t * p.YStride + i] = cn[i * 16 + t];
                    }
                }
            }
        }
    }

    struct Job : IParallelJob
    {
        public AmxBf16Gemm.Activations X;
        public MatrixProblem First, Second;
        /// <summary>Second is the up projection of First's gate: SwiGLU the two.</summary>
        public bool GateUp, Emulate;

        public readonly void Execute(int start, int end)
        {
            using var lease = ThreadScratch.RentChunk(2 * DpBf16Kernels.MaxRows2 * 16);
            Rows(First, X, start, end, lease.Pointer, Emulate);
            if (GateUp) Rows(Second, X, start, end, lease.Pointer, Emulate);
            if (GateUp) SwiGlu.Columns(First.Y, Second.Y, First.YStride, X.Tokens, start, end);
        }
    }
}
