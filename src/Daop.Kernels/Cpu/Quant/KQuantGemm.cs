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
/// Per pair of sub-blocks of 32 and token: <c>vpmaddubsw</c> of the unsigned integers with the int8 activations,
/// <c>vphaddw</c> of the pair and <c>vpmaddwd</c> with ones give their Σ q·x in 8 int32 lanes (2 per run of 16); one
/// round of <c>vphaddd</c> gathers the runs of four sub-blocks into one vector (where Q6_K subtracts 32·Σx per run and
/// multiplies by the run's int8 scale), a lane-half add the 8 sub-blocks (where Q4_K/Q5_K multiply by their 6-bit
/// scales), and one fma adds dx_j·d·(those). Q4_K/Q5_K's mins, Σ_j dmin·m_j·dx_j·Σx_j, go to a second accumulator. Exact integers, fp32 sums:
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
        int r = r0;
        if (vector && a.Tokens == 1)
        {
            // decode: unpacked straight into the dot, accumulators in registers
            sbyte* x = a.X.Values(0);
            float* dx = a.X.Scales(0), ds = a.X.ScaledSums(0);
            int* runs = a.X.RunSums(0);
            for (; r < r1; r++)
            {
                byte* w = a.W + r * a.WStride;
                Vector256<float> c = default, m = default;
                for (int b = 0; b < a.Blocks; b++)
                    One(w + (nint)b * TK.BlockBytes, x + 256 * (nint)b, dx + 8 * (nint)b, ds + 8 * (nint)b, runs + 16 * (nint)b, ref c, ref m);
                a.Y[r] = Vector256.Sum(c) - Vector256.Sum(m);
            }
        }
        for (; r < r1; r++)
        {
            byte* row = a.W + r * a.WStride;
            new Span<Vector256<float>>(acc, 2 * a.Tokens).Clear();
            for (int b = 0; b < a.Blocks; b++)
            {
                byte* sb = row + (nint)b * TK.BlockBytes;
                TK.Scales(sb, out var s);
                for (int j = 0; j < 8; j++) TK.Quants(sb, j).Store(u + 32 * j);
                for (int t = 0; t < a.Tokens; t++)
                {
                    if (!vector)
                    {
                        DotScalar(u, s, a.X, t, b, (float*)(acc + 2 * t));
                        continue;
                    }
                    sbyte* x = a.X.Values(t) + 256 * (nint)b;
                    Finish(PairU(u, x), PairU(u + 64, x + 64), PairU(u + 128, x + 128), PairU(u + 192, x + 192), s,
                        a.X.Scales(t) + 8 * (nint)b, a.X.ScaledSums(t) + 8 * (nint)b, a.X.RunSums(t) + 16 * (nint)b, ref acc[2 * t], ref acc[2 * t + 1]);
                }
            }
            for (int t = 0; t < a.Tokens; t++)
                a.Y[t * a.YStride + r] = Vector256.Sum(acc[2 * t]) - Vector256.Sum(acc[2 * t + 1]);
        }
    }

    /// <summary>One token's dot with the super-block at <paramref name="sb"/>, unpacked in registers.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void One(byte* sb, sbyte* xb, float* dx, float* ds, int* runs, ref Vector256<float> c, ref Vector256<float> m)
    {
        TK.Scales(sb, out var s);
        Finish(Pair(TK.Quants(sb, 0), TK.Quants(sb, 1), xb), Pair(TK.Quants(sb, 2), TK.Quants(sb, 3), xb + 64),
            Pair(TK.Quants(sb, 4), TK.Quants(sb, 5), xb + 128), Pair(TK.Quants(sb, 6), TK.Quants(sb, 7), xb + 192), s, dx, ds, runs, ref c, ref m);
    }

    /// <summary>
    /// Σ q·x of two sub-blocks a, b (x at a's activations, b's follow) in 8 int32 lanes [a₁ a₁ b₁ b₁ | a₂ a₂ b₂ b₂] (₁, ₂:
    /// their first and second runs of 16). The words of <c>vpmaddubsw</c> are folded once more (<c>vphaddw</c>) before
    /// <c>vpmaddwd</c>: four products stay within int16 (≤ 4·63·127 = 32004).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<int> Pair(Vector256<byte> qa, Vector256<byte> qb, sbyte* x) =>
        Avx2.MultiplyAddAdjacent(Avx2.HorizontalAdd(Avx2.MultiplyAddAdjacent(qa, Vector256.Load(x)), Avx2.MultiplyAddAdjacent(qb, Vector256.Load(x + 32))),
            Vector256.Create((short)1));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<int> PairU(byte* q, sbyte* x) => Pair(Vector256.Load(q), Vector256.Load(q + 32), x);

    /// <summary>
    /// Adds one super-block's sub-block pair dots (<see cref="Pair"/>) to the token's accumulators: acc += d·dx_j·Σ s·(q − offset)·x,
    /// mins += dmin·m_j·dx_j·Σx (Q4_K/Q5_K); <paramref name="dx"/>, <paramref name="dsum"/> and <paramref name="runs"/> are the
    /// token's <see cref="KActivations"/> at this super-block.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Finish(Vector256<int> p01, Vector256<int> p23, Vector256<int> p45, Vector256<int> p67, in KScaleSet s,
        float* dx, float* dsum, int* runs, ref Vector256<float> acc, ref Vector256<float> mins)
    {
        // t0 = [runs 0 2 4 6 | 1 3 5 7] of sub-blocks 0–3 as [s0 s1 s2 s3 | s0 s1 s2 s3], t1 the same for sub-blocks 4–7
        var t0 = Avx2.HorizontalAdd(p01, p23);
        var t1 = Avx2.HorizontalAdd(p45, p67);
        if (!TK.HasMin)
        {
            // Σ s·(q − 32)·x = s·(Σ q·x − 32·Σ x) per run
            t0 = Avx2.MultiplyLow(t0 - Vector256.ShiftLeft(Vector256.Load(runs), 5), s.A);
            t1 = Avx2.MultiplyLow(t1 - Vector256.ShiftLeft(Vector256.Load(runs + 8), 5), s.B);
        }
        var p = Avx2.Permute2x128(t0, t1, 0x20) + Avx2.Permute2x128(t0, t1, 0x31); // [sub-block 0 .. 7]
        if (TK.HasMin) p = Avx2.MultiplyLow(p, s.A);
        acc = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(p), Vector256.Load(dx) * Vector256.Create(s.D), acc);
        if (TK.HasMin) mins = Vector256.FusedMultiplyAdd(s.Min, Vector256.Load(dsum), mins);
    }

    /// <summary>The fallback: the same integers and scales, lane 0 of each accumulator.</summary>
    static void DotScalar(byte* u, in KScaleSet s, in KActivations x, int t, int b, float* acc)
    {
        sbyte* xq = x.Values(t) + 256 * (nint)b;
        float* dx = x.Scales(t) + 8 * b, ds = x.ScaledSums(t) + 8 * b;
        int* runs = x.RunSums(t) + 16 * b;
        for (int j = 0; j < 8; j++)
        {
            int dot = 0;
            for (int h = 0; h < 2; h++)
            {
                int run = 0;
                for (int i = 0; i < 16; i++) run += u[32 * j + 16 * h + i] * xq[32 * j + 16 * h + i];
                dot += s.RunScale<TK>(2 * j + h) * (run - TK.Offset * runs[KActivations.RunOrder(2 * j + h)]);
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
