using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Daop.Kernels.Cpu.Gemm;
using Daop.Kernels.Cpu.Quant;

namespace Daop.Kernels.Cpu.Amx;

/// <summary>
/// y = x·Wᵀ on AMX int8 tiles for weights scaled per block of 32 columns (<see cref="IAmxWeights"/>: the 32-block
/// formats, and Q4_K/Q5_K by sub-block), for batches (prefill): x is quantized per block of 32 to int8 (as the AVX
/// paths quantize it, without their bias) into the tiles' VNNI layout; each chunk of 32 weight rows runs
/// <see cref="AmxTiles"/> over 8 blocks at a time, and every block's 16 × 16 integer products are scaled by
/// d_w(row, block)·d_x(token, block) (plus, for weights with a min, min_w·d_x·Σq_x) and summed in fp32 with AVX-512.
/// Q8_0's tiles read the weights where they lie (a block's 32 values are a tile row, the rows
/// <see cref="WeightMatrix.RowBytes"/> apart); the other formats are unpacked to signed bytes first, 32 rows × 8
/// blocks at a time.
/// </summary>
/// <remarks>
/// The integer dot of each block is exact, as on every other path; only the order of the fp32 sums over blocks
/// differs. Used where <see cref="AmxSupport.Int8"/> holds, for batches of at least <see cref="AmxSupport.MinTokens"/>,
/// weights of whole 32-row panels and 32-column blocks (<see cref="Fits"/>); <c>emulate</c> runs the same driver on
/// the tiles' scalar twin (the tests, on machines without AMX).
/// </remarks>
internal static unsafe class AmxBlockGemm<TU> where TU : struct, IAmxWeights
{
    const int Panel = AmxTiles.Panel;
    /// <summary>
    /// Tokens per pass (8 token tiles): a panel's unpacked blocks and scales serve every pair of token tiles of the pass
    /// before the next blocks, and the pass's accumulators (32 rows × 128 tokens, 16 KB) stay in L1/L2.
    /// </summary>
    public const int TokenBlock = 128;
    /// <summary>
    /// 32-column blocks per tile call (one K-quant super-block): their int32 products (4 KB a block at two token tiles,
    /// twice that for 16-column blocks) stay in L1/L2.
    /// </summary>
    const int CallBlocks = 8;

    /// <summary>log2 of weight blocks per 32 columns: 0, or 1 for formats scaled every 16 columns.</summary>
    static int Shift => TU.BlockColumns == 16 ? 1 : 0;

    /// <summary>The tile routine for <typeparamref name="TU"/>'s blocks.</summary>
    static AmxTiles.Kind Kind => Shift == 0 ? AmxTiles.Kind.Int8 : AmxTiles.Kind.Int8Half;

    /// <summary>Whether <paramref name="w"/> has the shape the tiles take (whole 32-row panels and whole blocks).</summary>
    public static bool Fits(in WeightMatrix w) => w.Type == TU.Type && w.Rows % Panel == 0 && w.Cols % TU.Columns == 0;

    /// <summary>Whether a batch of <paramref name="tokens"/> on <paramref name="w"/> takes the tiles here.</summary>
    public static bool Use(in WeightMatrix w, int tokens) => TU.Enabled && Fits(w) && tokens >= AmxSupport.MinTokens && AmxSupport.Int8;

    /// <summary>Whether an expert's gate and up projections (<see cref="GateUp"/>) take the tiles here.</summary>
    public static bool Use(in WeightMatrix gate, in WeightMatrix up, int tokens) => Use(gate, tokens) && Fits(up);

    /// <summary>
    /// A pass's activations in the tiles' layout: values [nt][blocks][512 bytes], scales d [nt][blocks][16], and for
    /// weights with a min d·Σq [nt][blocks][16].
    /// </summary>
    struct Activations
    {
        public byte* Values;
        public float* Scales, Sums;
        public int Blocks, Tokens, TokenTiles;
    }

    static nint ActivationFloats(int blocks) => (nint)(TokenBlock / 16) * blocks * (AmxTiles.BBlockBytes / 4 + 32);

    /// <summary>y = x·Wᵀ (x: [tokens, cols], y: [tokens, rows]) for a matrix that <see cref="Fits"/>.</summary>
    public static void Forward(in WeightMatrix w, float* x, float* y, int tokens, bool emulate = false) =>
        Run(w, w, x, y, null, tokens, emulate);

    /// <summary>g ← SiLU(x·Gateᵀ) ⊙ (x·Upᵀ); u ← x·Upᵀ, both [tokens, inter], as <see cref="QuantGateUp{TB}"/>.</summary>
    public static void GateUp(in WeightMatrix gate, in WeightMatrix up, float* x, float* g, float* u, int tokens, bool emulate = false) =>
        Run(gate, up, x, g, u, tokens, emulate);

    /// <summary>
    /// x·Wᵀ of <paramref name="first"/> into <paramref name="y1"/>, and with <paramref name="y2"/> also of
    /// <paramref name="second"/> (same shape) and SwiGLU of the two, in passes of <see cref="TokenBlock"/> tokens.
    /// </summary>
    static void Run(in WeightMatrix first, in WeightMatrix second, float* x, float* y1, float* y2, int tokens, bool emulate)
    {
        int rows = first.Rows, cols = first.Cols;
        bool gateUp = y2 != null;
        using var lease = ThreadScratch.Rent(ActivationFloats(cols / 32));
        for (int t0 = 0; t0 < tokens; t0 += TokenBlock)
        {
            int n = Math.Min(TokenBlock, tokens - t0);
            nint yo = (nint)t0 * rows;
            var job = new Job
            {
                X = Quantize(x + (nint)t0 * cols, cols, n, lease.Pointer), Emulate = emulate, GateUp = gateUp,
                First = new MatrixProblem { W = first.Data, WStride = first.RowBytes, Y = y1 + yo, YStride = rows },
                Second = gateUp ? new MatrixProblem { W = second.Data, WStride = second.RowBytes, Y = y2 + yo, YStride = rows } : default,
            };
            CpuWorkers.For(rows, AmxTiles.PanelChunk(first, gateUp ? 2 * n : n), job);
        }
    }

    /// <summary>
    /// x [tokens ≤ <see cref="TokenBlock"/>, cols] quantized per block (<see cref="QuantizedActivations.Block"/>: the same q and d as the
    /// AVX paths) into the tiles' layout in <paramref name="buffer"/>; tokens past the last are q = 0, d = 0.
    /// </summary>
    static Activations Quantize(float* x, int cols, int tokens, float* buffer)
    {
        int blocks = cols / 32, nt = (tokens + 15) / 16;
        var a = new Activations
        {
            Values = (byte*)buffer, Scales = buffer + (nint)nt * blocks * (AmxTiles.BBlockBytes / 4),
            Blocks = blocks, Tokens = tokens, TokenTiles = nt,
        };
        a.Sums = a.Scales + (nint)nt * blocks * 16;
        if (tokens % 16 != 0)
        {
            new Span<byte>(a.Values, nt * blocks * AmxTiles.BBlockBytes).Clear();
            new Span<float>(a.Scales, 2 * nt * blocks * 16).Clear();
        }
        CpuWorkers.For(tokens, 1, new QuantizeJob { X = x, Cols = cols, A = a });
        return a;
    }

    /// <summary>A token per parallel chunk (one thread quantizing a whole prompt's activations serialized the call).</summary>
    struct QuantizeJob : IParallelJob
    {
        public float* X;
        public int Cols;
        public Activations A;

        public readonly void Execute(int start, int end)
        {
            sbyte* q = stackalloc sbyte[32];
            for (int t = start; t < end; t++)
            {
                int tile = t >> 4, lane = t & 15;
                for (int b = 0; b < A.Blocks; b++)
                {
                    float d = QuantizedActivations.Block(X + (nint)t * Cols + b * 32, q, out int sum);
                    nint at = (nint)tile * A.Blocks + b;
                    int* dst = (int*)(A.Values + at * AmxTiles.BBlockBytes) + lane;
                    for (int g = 0; g < 8; g++) dst[16 * g] = ((int*)q)[g];
                    A.Scales[at * 16 + lane] = d;
                    A.Sums[at * 16 + lane] = d * sum;
                }
            }
        }
    }

    /// <summary>Floats of per-chunk scratch <see cref="Rows"/> takes.</summary>
    const int ChunkFloats = 2 * CallBlocks * 4 * 256 + 2 * Panel * 2 * CallBlocks + Panel * TokenBlock + Panel * CallBlocks * 32 / 4;

    /// <summary>
    /// Rows [r0, r1) (whole panels) of one matrix for every token of the pass. Per panel and call of
    /// <see cref="CallBlocks"/> blocks: the rows' block scales (and the blocks as signed bytes, unless Q8_0), the tile
    /// products, then acc[r][t] += C·d_w·d_x (+ min_w·d_x·Σq_x).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Rows(in MatrixProblem p, in Activations x, int r0, int r1, float* scratch, bool emulate)
    {
        int nt = x.TokenTiles, blocks = x.Blocks;
        int wb = CallBlocks << Shift;                                         // weight blocks per call
        int* c = (int*)scratch;                                               // [wb][2 row tiles·2 token tiles][16][16]
        float* dw = scratch + 2 * CallBlocks * 4 * 256;                       // [Panel][wb]
        float* mw = dw + Panel * 2 * CallBlocks;                              // [Panel][wb] (weights with a min)
        float* acc = mw + Panel * 2 * CallBlocks;                             // [Panel][TokenBlock]
        sbyte* unpacked = (sbyte*)(acc + Panel * TokenBlock);                 // [Panel][CallBlocks·32]
        TileArgs args = default;
        args.AStride = TU.Direct ? p.WStride : CallBlocks * 32;
        args.ATileStep = 16 * args.AStride;
        args.ABlockStep = TU.Direct ? TU.DirectStep : TU.BlockColumns;
        args.BTileStep = (nint)blocks * AmxTiles.BBlockBytes;
        args.C = c;
        for (int r = r0; r < r1; r += Panel)
        {
            new Span<float>(acc, Panel * TokenBlock).Clear();
            byte* panel = p.W + r * p.WStride;
            for (int b0 = 0; b0 < blocks; b0 += CallBlocks)
            {
                int nb = Math.Min(CallBlocks, blocks - b0), nw = nb << Shift;
                for (int i = 0; i < Panel; i++)
                    TU.Prepare(panel + i * p.WStride, b0, nb, unpacked + i * CallBlocks * 32, dw + i * wb, mw + i * wb);
                args.A = TU.Direct ? TU.DirectValues(panel, b0) : (byte*)unpacked;
                args.Blocks = nw;
                for (int n0 = 0; n0 < nt; n0 += 2)
                {
                    int pair = Math.Min(2, nt - n0);
                    args.B = x.Values + ((nint)n0 * blocks + b0) * AmxTiles.BBlockBytes;
                    AmxTiles.Run(Kind, &args, 2, pair, emulate);
                    for (int n = 0; n < pair; n++)
                    {
                        nint xo = ((nint)(n0 + n) * blocks + b0) * 16;
                        for (int i = 0; i < Panel; i++)
                            Accumulate(c + ((i >> 4) * pair + n) * 256 + (i & 15) * 16, 2 * pair * 256, x.Scales + xo, x.Sums + xo,
                                dw + i * wb, mw + i * wb, nw, acc + i * TokenBlock + (n0 + n) * 16);
                    }
                }
            }
            for (int t = 0; t < x.Tokens; t++)
            {
                float* yt = p.Y + t * p.YStride + r;
                for (int i = 0; i < Panel; i++) yt[i] = acc[i * TokenBlock + t];
            }
        }
    }

    /// <summary>
    /// acc[t] += Σ_j C_j[t]·(d_w[j]·d_x[j][t]) (+ m_w[j]·(d_x·Σq)[j][t]) for one weight row and one token tile; C_j is
    /// <paramref name="cStep"/> ints after C_{j−1}; weight block j lies in x's 32-column block j >> <see cref="Shift"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Accumulate(int* c, int cStep, float* dx, float* sx, float* dw, float* mw, int nb, float* acc)
    {
        if (Avx512F.IsSupported)
        {
            var s = Vector512.Load(acc);
            for (int j = 0; j < nb; j++)
            {
                s = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(Vector512.Load(c + j * cStep)), Vector512.Load(dx + (j >> Shift) * 16) * dw[j], s);
                if (TU.HasMin) s = Vector512.FusedMultiplyAdd(Vector512.Load(sx + j * 16), Vector512.Create(mw[j]), s);
            }
            s.Store(acc);
            return;
        }
        for (int j = 0; j < nb; j++)
            for (int t = 0; t < 16; t++)
            {
                acc[t] = MathF.FusedMultiplyAdd(c[j * cStep + t], dx[(j >> Shift) * 16 + t] * dw[j], acc[t]);
                if (TU.HasMin) acc[t] = MathF.FusedMultiplyAdd(sx[j * 16 + t], mw[j], acc[t]);
            }
    }

    struct Job : IParallelJob
    {
        public Activations X;
        public MatrixProblem First, Second;
        /// <summary>Second is the up projection of First's gate: SwiGLU the two.</summary>
        public bool GateUp, Emulate;

        public readonly void Execute(int start, int end)
        {
            using var lease = ThreadScratch.RentChunk(ChunkFloats);
            if (!Emulate) AmxTiles.Configure(Kind);
            Rows(First, X, start, end, lease.Pointer, Emulate);
            if (GateUp) Rows(Second, X, start, end, lease.Pointer, Emulate);
            if (!Emulate) AmxTiles.Release();
            if (GateUp) SwiGlu.Columns(First.Y, Second.Y, First.YStride, X.Tokens, start, end);
        }
    }
}
