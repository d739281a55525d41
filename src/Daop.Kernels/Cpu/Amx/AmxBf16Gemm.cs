using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Daop.Kernels.Cpu.Gemm;

namespace Daop.Kernels.Cpu.Amx;

/// <summary>
/// y = x·Wᵀ for bf16 weights on AMX-BF16 tiles, for batches (prefill): x is rounded to bf16 (round to nearest even) in
/// the tiles' pair layout, and each 32-row panel of W, read where it lies (a tile row is 32 bf16 of a weight row), runs
/// <see cref="AmxTiles"/>' bf16 routine over the whole width for each pair of 16-token tiles; the products of two bf16
/// are exact and accumulate in fp32 in the tiles.
/// </summary>
/// <remarks>
/// The AVX paths multiply the bf16 weights by x in fp32; here x is bf16 as well, as in llama.cpp's bf16 dot product and
/// in torch's bf16 matmul, which costs a relative error of up to 2^-8 per activation, half an ulp of an 8-bit
/// significand (the measured effect on perplexity is in docs/cpu-kernels.md). <c>DAOP_AMX=0</c> keeps the fp32 activations. Weights need whole 32-row panels and 32-column
/// steps (<see cref="Fits"/>); <c>emulate</c> runs the driver on the tiles' scalar twin.
/// </remarks>
internal static unsafe class AmxBf16Gemm
{
    const int Panel = AmxTiles.Panel;

    /// <summary>Whether <paramref name="w"/> has the shape the tiles take.</summary>
    public static bool Fits(in WeightMatrix w) => w.Type == DType.BF16 && w.Rows % Panel == 0 && w.Cols % 32 == 0;

    /// <summary>Whether a batch of <paramref name="tokens"/> on <paramref name="w"/> takes the tiles here.</summary>
    public static bool Use(in WeightMatrix w, int tokens) => Fits(w) && tokens >= AmxSupport.MinTokens && AmxSupport.Bf16;

    /// <summary>Whether an expert's gate and up projections (<see cref="GateUp"/>) take the tiles here.</summary>
    public static bool Use(in WeightMatrix gate, in WeightMatrix up, int tokens) => Use(gate, tokens) && Fits(up);

    /// <summary>
    /// x as bf16 in the tiles' layout: [token tiles][pairs of columns][16 tokens][2] (for the tiles, [token tiles][steps of
    /// 32 columns][16 pairs][16 tokens][2]: the same bytes). <see cref="Avx512Bf16Gemm"/> reads it too.
    /// </summary>
    internal struct Activations
    {
        public byte* Values;
        public int Pairs, Tokens, TokenTiles;
        /// <summary>Steps of 32 columns (the tiles need whole steps).</summary>
        public readonly int Steps => Pairs / 16;
        /// <summary>Bytes of one token tile: 64 a pair.</summary>
        public readonly nint TileBytes => (nint)Pairs * 64;
    }

    /// <summary>y = x·Wᵀ (x: [tokens, cols], y: [tokens, rows]) for a matrix that <see cref="Fits"/>.</summary>
    public static void Forward(in WeightMatrix w, float* x, float* y, int tokens, bool emulate = false) =>
        Run(w, w, x, y, null, tokens, emulate);

    /// <summary>g ← SiLU(x·Gateᵀ) ⊙ (x·Upᵀ); u ← x·Upᵀ, both [tokens, inter].</summary>
    public static void GateUp(in WeightMatrix gate, in WeightMatrix up, float* x, float* g, float* u, int tokens, bool emulate = false) =>
        Run(gate, up, x, g, u, tokens, emulate);

    /// <summary>x·Wᵀ of <paramref name="first"/> into <paramref name="y1"/>, and with <paramref name="y2"/> also of <paramref name="second"/> and SwiGLU of the two.</summary>
    static void Run(in WeightMatrix first, in WeightMatrix second, float* x, float* y1, float* y2, int tokens, bool emulate)
    {
        int rows = first.Rows;
        bool gateUp = y2 != null;
        using var lease = ThreadScratch.Rent(Floats(first.Cols, tokens));
        var job = new Job
        {
            X = Convert(x, first.Cols, tokens, lease.Pointer), Emulate = emulate, GateUp = gateUp,
            First = new MatrixProblem { W = first.Data, WStride = first.RowBytes, Y = y1, YStride = rows },
            Second = gateUp ? new MatrixProblem { W = second.Data, WStride = second.RowBytes, Y = y2, YStride = rows } : default,
        };
        CpuWorkers.For(rows, AmxTiles.PanelChunk(first, gateUp ? 2 * tokens : tokens), job);
    }

    /// <summary>Floats of scratch <see cref="Convert"/> needs for x [tokens, cols].</summary>
    internal static nint Floats(int cols, int tokens) => (nint)(tokens + 15) / 16 * 16 * cols / 2;

    /// <summary>
    /// x [tokens, cols] rounded to bf16 into the pair layout, a token per parallel chunk (one thread rounding every
    /// token of a 64-token prompt cost more than the tiles' products); the lanes past the last token are zero.
    /// <paramref name="cols"/> is even.
    /// </summary>
    internal static Activations Convert(float* x, int cols, int tokens, float* buffer)
    {
        var a = new Activations { Values = (byte*)buffer, Pairs = cols / 2, Tokens = tokens, TokenTiles = (tokens + 15) / 16 };
        if (tokens % 16 != 0) new Span<byte>(a.Values, (int)(a.TokenTiles * a.TileBytes)).Clear();
        CpuWorkers.For(tokens, 1, new ConvertJob { X = x, Cols = cols, A = a });
        return a;
    }

    struct ConvertJob : IParallelJob
    {
        public float* X;
        public int Cols;
        public Activations A;

        public readonly void Execute(int start, int end)
        {
            for (int t = start; t < end; t++) ConvertToken(X + (nint)t * Cols, Cols, (uint*)(A.Values + (t >> 4) * A.TileBytes) + (t & 15));
        }
    }

    /// <summary>
    /// One token: pair p of columns, as bf16 (round to nearest even; NaN stays NaN, as <see cref="Bf16.FromFloat"/>),
    /// to <paramref name="dst"/>[(p / 16)·256 + (p % 16)·16] (step p / 16, row p % 16 of the step, this token's lane).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void ConvertToken(float* xt, int cols, uint* dst)
    {
        int p = 0, pairs = cols / 2;
        if (Avx512F.IsSupported)
            for (; p + 8 <= pairs; p += 8) // 16 floats → 8 pairs, all in one step (p is a multiple of 8)
            {
                var u = Vector512.Load((uint*)xt + 2 * p);
                var r = u + Vector512.Create(0x7FFFu) + ((u >> 16) & Vector512.Create(1u));
                var nan = Vector512.GreaterThan(u & Vector512.Create(0x7FFFFFFFu), Vector512.Create(0x7F800000u));
                var v = Vector512.ConditionalSelect(nan, u | Vector512.Create(0x00400000u), r).AsUInt64();
                // lanes 2i, 2i+1 as one 64-bit value: the low bf16 is its bits 16–31, the high one bits 48–63
                var packed = Avx512F.ConvertToVector256UInt32(((v >> 16) & Vector512.Create(0xFFFFul)) | ((v >> 32) & Vector512.Create(0xFFFF0000ul)));
                uint* o = dst + (p >> 4) * (AmxTiles.BStepBytes / 4) + (p & 15) * 16;
                for (int k = 0; k < 8; k++) o[16 * k] = packed.GetElement(k);
            }
        for (; p < pairs; p++)
            dst[(p >> 4) * (AmxTiles.BStepBytes / 4) + (p & 15) * 16] = Bf16.FromFloat(xt[2 * p]) | (uint)Bf16.FromFloat(xt[2 * p + 1]) << 16;
    }

    /// <summary>Rows [r0, r1) (whole panels) of one matrix: per panel, per pair of token tiles, one routine call.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Rows(in MatrixProblem p, in Activations x, int r0, int r1, float* c, bool emulate)
    {
        TileArgs args = default;
        args.AStride = p.WStride;
        args.ATileStep = 16 * p.WStride;
        args.ABlockStep = 64;
        args.BTileStep = x.TileBytes;
        args.C = c;
        args.Blocks = x.Steps;
        for (int r = r0; r < r1; r += Panel)
        {
            args.A = p.W + r * p.WStride;
            for (int n0 = 0; n0 < x.TokenTiles; n0 += 2)
            {
                int nt = Math.Min(2, x.TokenTiles - n0);
                args.B = x.Values + n0 * x.TileBytes;
                AmxTiles.Run(AmxTiles.Kind.Bf16, &args, 2, nt, emulate);
                // C tile (m, n) holds rows r + 16m.., tokens 16(n0 + n)..: y is [tokens, rows]
                for (int n = 0; n < nt; n++)
                {
                    int t0 = 16 * (n0 + n), tn = Math.Min(16, x.Tokens - t0);
                    for (int m = 0; m < 2; m++)
                    {
                        float* ct = c + (m * nt + n) * 256;
                        for (int i = 0; i < 16; i++)
                            for (int t = 0; t < tn; t++) p.Y[(t0 + t) * p.YStride + r + 16 * m + i] = ct[i * 16 + t];
                    }
                }
            }
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
            using var lease = ThreadScratch.RentChunk(4 * 256);
            if (!Emulate) AmxTiles.Configure(AmxTiles.Kind.Bf16);
            Rows(First, X, start, end, lease.Pointer, Emulate);
            if (GateUp) Rows(Second, X, start, end, lease.Pointer, Emulate);
            if (!Emulate) AmxTiles.Release();
            if (GateUp) SwiGlu.Columns(First.Y, Second.Y, First.YStride, X.Tokens, start, end);
        }
    }
}
