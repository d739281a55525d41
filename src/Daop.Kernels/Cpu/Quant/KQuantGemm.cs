using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Daop.Kernels.Cpu.Gemm;

namespace Daop.Kernels.Cpu.Quant;

/// <summary>One y = x·Wᵀ problem for <see cref="KQuantGemm{TK}.Rows"/>.</summary>
internal unsafe struct KArgs
{
    /// <summary>[rows, super-blocks] weights; <see cref="WStride"/> bytes per row.</summary>
    public byte* W;
    public nint WStride;
    /// <summary>Super-blocks per row.</summary>
    public int Blocks;
    public KActivations X;
    /// <summary>[tokens, rows] output; <see cref="YStride"/> floats per token.</summary>
    public float* Y;
    public nint YStride;
    public int Tokens;
}

/// <summary>
/// y = x·Wᵀ for a K-quant with int8 activations (<see cref="KActivations"/>, quantized once per call): each row's
/// super-blocks are unpacked once (<see cref="IKQuantFormat.Quants"/>, kept in registers for one token, in a 256-byte
/// buffer for several) and dotted with every token of the pass.
/// </summary>
/// <remarks>
/// Per sub-block j of 32 and token: <c>vpmaddubsw</c> of the unsigned integers with the int8 activations and
/// <c>vpmaddwd</c> with ones give Σ q·x in 8 int32 lanes (4 per run of 16); two rounds of <c>vphaddd</c> gather the
/// runs of four sub-blocks into one vector (where Q6_K multiplies each run by its int8 scale), a lane-half add the 8
/// sub-blocks (where Q4_K/Q5_K multiply by their 6-bit scales, and Q6_K subtracts 32·Σ s·Σx per run), and one fma adds
/// dx_j·d·(those). Q4_K/Q5_K's mins, Σ_j dmin·m_j·dx_j·Σx_j, go to a second accumulator. Exact integers, fp32 sums:
/// <see cref="QuantMatMul.Scalar"/>'s arithmetic up to the order of the sums.
/// </remarks>
internal static unsafe class KQuantGemm<TK> where TK : struct, IKQuantFormat
{
    /// <summary>Tokens per pass over the weights (a pass's activations stay in L2, as <see cref="QuantGemm{TB}.TokenBlock"/>).</summary>
    public const int TokenBlock = 32;

    /// <summary>Parallel y = x·Wᵀ (x: [tokens, cols], y: [tokens, rows]); <paramref name="scalar"/> forces the fallback.</summary>
    public static void Forward(in WeightMatrix w, float* x, float* y, int tokens, bool scalar = false)
    {
        using var lease = ThreadScratch.Rent(KActivations.Floats(Math.Min(tokens, TokenBlock), w.Cols));
        for (int t0 = 0; t0 < tokens; t0 += TokenBlock)
        {
            int n = Math.Min(TokenBlock, tokens - t0);
            var qx = KActivations.Quantize(x + (nint)t0 * w.Cols, w.Cols, n, w.Cols, lease.Pointer);
            var job = new Job { A = Args(w, qx, y + (nint)t0 * w.Rows, w.Rows, n), Scalar = scalar };
            CpuWorkers.For(w.Rows, RowChunks.Rows(w.Rows, w.RowBytes, n), job);
        }
    }

    /// <summary>The arguments for <paramref name="w"/> applied to quantized activations.</summary>
    public static KArgs Args(in WeightMatrix w, in KActivations x, float* y, int yStride, int tokens) => new()
    {
        W = w.Data, WStride = w.RowBytes, Blocks = w.Cols / 256, X = x, Y = y, YStride = yStride, Tokens = tokens,
    };

    /// <summary>Output rows [<paramref name="r0"/>, <paramref name="r1"/>) for every token.</summary>
    [SkipLocalsInit]
    public static void Rows(in KArgs a, int r0, int r1, bool scalar = false)
    {
        bool vector = !scalar && Avx2Support.IsSupported;
        byte* u = stackalloc byte[256];                        // a super-block's integers, shared by the pass's tokens
        var acc = stackalloc Vector256<float>[2 * TokenBlock]; // per token: the scaled dots, the mins
        for (int r = r0; r < r1; r++)
        {
            byte* row = a.W + r * a.WStride;
            new Span<Vector256<float>>(acc, 2 * a.Tokens).Clear();
            for (int b = 0; b < a.Blocks; b++)
            {
                byte* sb = row + (nint)b * TK.BlockBytes;
                TK.Scales(sb, out var s);
                if (vector && a.Tokens == 1)
                {
                    // decode: unpacked straight into the dot
                    sbyte* x = a.X.Values(0) + 256 * (nint)b;
                    Finish(Sub(TK.Quants(sb, 0), x), Sub(TK.Quants(sb, 1), x + 32), Sub(TK.Quants(sb, 2), x + 64), Sub(TK.Quants(sb, 3), x + 96),
                        Sub(TK.Quants(sb, 4), x + 128), Sub(TK.Quants(sb, 5), x + 160), Sub(TK.Quants(sb, 6), x + 192), Sub(TK.Quants(sb, 7), x + 224),
                        s, a.X, 0, b, acc);
                    continue;
                }
                for (int j = 0; j < 8; j++) TK.Quants(sb, j).Store(u + 32 * j);
                for (int t = 0; t < a.Tokens; t++)
                {
                    if (!vector)
                    {
                        DotScalar(u, s, a.X, t, b, (float*)(acc + 2 * t));
                        continue;
                    }
                    sbyte* x = a.X.Values(t) + 256 * (nint)b;
                    Finish(SubU(u, x), SubU(u + 32, x + 32), SubU(u + 64, x + 64), SubU(u + 96, x + 96),
                        SubU(u + 128, x + 128), SubU(u + 160, x + 160), SubU(u + 192, x + 192), SubU(u + 224, x + 224), s, a.X, t, b, acc + 2 * t);
                }
            }
            for (int t = 0; t < a.Tokens; t++)
                a.Y[t * a.YStride + r] = Vector256.Sum(acc[2 * t]) - Vector256.Sum(acc[2 * t + 1]);
        }
    }

    /// <summary>Σ q·x of one sub-block in 8 int32 lanes: lanes 0–3 its first run of 16, 4–7 its second.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<int> Sub(Vector256<byte> q, sbyte* x) =>
        Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(q, Vector256.Load(x)), Vector256.Create((short)1));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<int> SubU(byte* q, sbyte* x) => Sub(Vector256.Load(q), x);

    /// <summary>
    /// Adds one super-block's sub-block dots p0..p7 to the token's accumulators: acc[0] += d·dx_j·Σ s·(q − offset)·x,
    /// acc[1] += dmin·m_j·dx_j·Σx (Q4_K/Q5_K).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Finish(Vector256<int> p0, Vector256<int> p1, Vector256<int> p2, Vector256<int> p3,
        Vector256<int> p4, Vector256<int> p5, Vector256<int> p6, Vector256<int> p7, in KScaleSet s, in KActivations x, int t, int b,
        Vector256<float>* acc)
    {
        // t0 = [runs 0 2 4 6 | 1 3 5 7] of sub-blocks 0–3 as [s0 s1 s2 s3 | s0 s1 s2 s3], t1 the same for sub-blocks 4–7
        var t0 = Avx2.HorizontalAdd(Avx2.HorizontalAdd(p0, p1), Avx2.HorizontalAdd(p2, p3));
        var t1 = Avx2.HorizontalAdd(Avx2.HorizontalAdd(p4, p5), Avx2.HorizontalAdd(p6, p7));
        if (!TK.HasMin)
        {
            t0 = Avx2.MultiplyLow(t0, s.A);
            t1 = Avx2.MultiplyLow(t1, s.B);
        }
        var p = Avx2.Permute2x128(t0, t1, 0x20) + Avx2.Permute2x128(t0, t1, 0x31); // [sub-block 0 .. 7]
        if (TK.HasMin) p = Avx2.MultiplyLow(p, s.A);
        else p -= Vector256.ShiftLeft(Avx2.MultiplyAddAdjacent(Vector256.Load(x.RunSums(t) + 16 * (nint)b), s.S16), 5);
        var dx = Vector256.Load(x.Scales(t) + 8 * (nint)b);
        acc[0] = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(p), dx * Vector256.Create(s.D), acc[0]);
        if (TK.HasMin)
            acc[1] = Vector256.FusedMultiplyAdd(s.Min, Vector256.Load(x.ScaledSums(t) + 8 * (nint)b), acc[1]);
    }

    /// <summary>The fallback: the same integers and scales, lane 0 of each accumulator.</summary>
    static void DotScalar(byte* u, in KScaleSet s, in KActivations x, int t, int b, float* acc)
    {
        sbyte* xq = x.Values(t) + 256 * (nint)b;
        float* dx = x.Scales(t) + 8 * b, ds = x.ScaledSums(t) + 8 * b;
        short* runs = x.RunSums(t) + 16 * b;
        for (int j = 0; j < 8; j++)
        {
            int dot = 0;
            for (int h = 0; h < 2; h++)
            {
                int run = 0;
                for (int i = 0; i < 16; i++) run += u[32 * j + 16 * h + i] * xq[32 * j + 16 * h + i];
                dot += s.RunScale<TK>(2 * j + h) * (run - TK.Offset * runs[2 * j + h]);
            }
            acc[0] += dx[j] * s.D * dot;
            if (TK.HasMin) acc[8] += s.Min.GetElement(j) * ds[j];
        }
    }

    struct Job : IParallelJob
    {
        public KArgs A;
        public bool Scalar;

        public readonly void Execute(int start, int end) => Rows(A, start, end, Scalar);
    }
}

/// <summary>
/// An expert's gate and up projections for K-quant weights: x quantized once for both, each chunk computes its rows of
/// gate and up and applies SwiGLU (as <see cref="QuantGateUp{TB}"/>).
/// </summary>
internal static unsafe class KQuantGateUp<TK> where TK : struct, IKQuantFormat
{
    /// <summary>g ← SiLU(x·Gateᵀ) ⊙ (x·Upᵀ); u ← x·Upᵀ. Both [tokens, inter].</summary>
    public static void Run(in WeightMatrix gate, in WeightMatrix up, float* x, float* g, float* u, int tokens)
    {
        int inter = gate.Rows, block = KQuantGemm<TK>.TokenBlock;
        using var lease = ThreadScratch.Rent(KActivations.Floats(Math.Min(tokens, block), gate.Cols));
        for (int t0 = 0; t0 < tokens; t0 += block)
        {
            int n = Math.Min(block, tokens - t0);
            var qx = KActivations.Quantize(x + (nint)t0 * gate.Cols, gate.Cols, n, gate.Cols, lease.Pointer);
            nint yo = (nint)t0 * inter;
            var job = new Job { Gate = KQuantGemm<TK>.Args(gate, qx, g + yo, inter, n), Up = KQuantGemm<TK>.Args(up, qx, u + yo, inter, n) };
            CpuWorkers.For(inter, RowChunks.Rows(inter, 2 * gate.RowBytes, n), job);
        }
    }

    struct Job : IParallelJob
    {
        public KArgs Gate, Up;

        public readonly void Execute(int start, int end)
        {
            KQuantGemm<TK>.Rows(Gate, start, end);
            KQuantGemm<TK>.Rows(Up, start, end);
            SwiGlu.Columns(Gate.Y, Up.Y, Gate.YStride, Gate.Tokens, start, end);
        }
    }
}
