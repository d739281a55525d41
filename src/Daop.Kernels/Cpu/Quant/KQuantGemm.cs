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
/// y = x·Wᵀ for a K-quant with int8 activations (<see cref="KActivations"/>, per super-block of 256, quantized once per
/// call): each row's super-blocks are unpacked once (<see cref="IKQuantFormat.Quants"/>, kept in registers with their
/// run-scale words; the scalar fallback stages them in a 256-byte buffer) and dotted with every token of the pass.
/// </summary>
/// <remarks>
/// Per sub-block of 32 and token: <c>vpmaddubsw</c> of the unsigned integers with the int8 activations (16 int16, ≤ 2·63·127),
/// <c>vpmaddwd</c> with the sub-block's int16 scale (Q6_K: each 128-bit half is one run of 16 and takes the run's scale),
/// summed in 8 int32 lanes over the super-block: Σ_runs s·Σ q·x exactly. Q6_K subtracts 32·Σ_runs s·Σx (<c>vpmaddwd</c> of its
/// 16 scales with the run sums); one fma per super-block adds d·d_x·(that). Q4_K/Q5_K's mins, dmin·d_x·Σ_j m_j·Σx_j
/// (<c>vpmaddwd</c> of the 8 mins with the sub-block sums), go to a second accumulator. Exact integers, fp32 sums:
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
        byte* u = stackalloc byte[256];                        // the scalar fallback's unpacked super-block
        var acc = stackalloc Vector256<float>[TokenBlock];     // per token: the scaled dots
        var mins = stackalloc Vector128<float>[TokenBlock];    // per token: the mins (Q4_K, Q5_K)
        int r = r0;
        if (vector && a.Tokens == 1)
        {
            // decode: unpacked straight into the dot, accumulators in registers
            sbyte* x = a.X.Values(0);
            float* dx = a.X.Scales(0);
            short* runs = a.X.RunSums(0), sums = a.X.BlockSums(0);
            for (; r < r1; r++)
            {
                byte* w = a.W + r * a.WStride;
                Vector256<float> c = default;
                Vector128<float> m = default;
                for (int b = 0; b < a.Blocks; b++)
                {
                    byte* sb = w + (nint)b * TK.BlockBytes;
                    sbyte* xb = x + 256 * (nint)b;
                    TK.Scales(sb, out var s);
                    var p = Sub(TK.Quants(sb, 0), xb, s.A, 0) + Sub(TK.Quants(sb, 1), xb + 32, s.A, 1)
                        + Sub(TK.Quants(sb, 2), xb + 64, s.A, 2) + Sub(TK.Quants(sb, 3), xb + 96, s.A, 3);
                    p += Sub(TK.Quants(sb, 4), xb + 128, s.A, 4) + Sub(TK.Quants(sb, 5), xb + 160, s.A, 5)
                        + Sub(TK.Quants(sb, 6), xb + 192, s.A, 6) + Sub(TK.Quants(sb, 7), xb + 224, s.A, 7);
                    Finish(p, s, dx[b], runs + 16 * (nint)b, sums + 8 * (nint)b, ref c, ref m);
                }
                a.Y[r] = Vector256.Sum(c) - Vector128.Sum(m);
            }
        }
        for (; r < r1; r++)
        {
            byte* row = a.W + r * a.WStride;
            new Span<Vector256<float>>(acc, a.Tokens).Clear();
            new Span<Vector128<float>>(mins, a.Tokens).Clear();
            for (int b = 0; b < a.Blocks; b++)
            {
                byte* sb = row + (nint)b * TK.BlockBytes;
                TK.Scales(sb, out var s);
                if (!vector)
                {
                    for (int j = 0; j < 8; j++) TK.Quants(sb, j).Store(u + 32 * j);
                    for (int t = 0; t < a.Tokens; t++) DotScalar(u, s, a.X, t, b, (float*)(acc + t), (float*)(mins + t));
                    continue;
                }
                // The super-block's integers and per-sub-block scale words, unpacked once for all the pass's tokens.
                Vector256<byte> q0 = TK.Quants(sb, 0), q1 = TK.Quants(sb, 1), q2 = TK.Quants(sb, 2), q3 = TK.Quants(sb, 3),
                    q4 = TK.Quants(sb, 4), q5 = TK.Quants(sb, 5), q6 = TK.Quants(sb, 6), q7 = TK.Quants(sb, 7);
                Vector256<short> k0 = RunScales(s.A, 0), k1 = RunScales(s.A, 1), k2 = RunScales(s.A, 2), k3 = RunScales(s.A, 3),
                    k4 = RunScales(s.A, 4), k5 = RunScales(s.A, 5), k6 = RunScales(s.A, 6), k7 = RunScales(s.A, 7);
                for (int t = 0; t < a.Tokens; t++)
                {
                    sbyte* xb = a.X.Values(t) + 256 * (nint)b;
                    var p = Dot(q0, xb, k0) + Dot(q1, xb + 32, k1) + Dot(q2, xb + 64, k2) + Dot(q3, xb + 96, k3);
                    p += Dot(q4, xb + 128, k4) + Dot(q5, xb + 160, k5) + Dot(q6, xb + 192, k6) + Dot(q7, xb + 224, k7);
                    Finish(p, s, a.X.Scales(t)[b], a.X.RunSums(t) + 16 * (nint)b, a.X.BlockSums(t) + 8 * (nint)b, ref acc[t], ref mins[t]);
                }
            }
            for (int t = 0; t < a.Tokens; t++)
                a.Y[t * a.YStride + r] = Vector256.Sum(acc[t]) - Vector128.Sum(mins[t]);
        }
    }

    /// <summary>
    /// Sub-block <paramref name="j"/>'s Σ s·q·x in 8 int32 lanes: <c>vpmaddubsw</c> of its integers with its activations
    /// <paramref name="x"/>, <c>vpmaddwd</c> with int16 word j of each 128-bit half of <paramref name="scales"/>
    /// (<see cref="KScaleSet.A"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<int> Sub(Vector256<byte> q, sbyte* x, Vector256<short> scales, int j) => Dot(q, x, RunScales(scales, j));

    /// <summary>Int16 word j of each 128-bit half of <paramref name="scales"/>, broadcast across its half (<c>vpshufb</c>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<short> RunScales(Vector256<short> scales, int j) =>
        Avx2.Shuffle(scales.AsByte(), Vector256.Create((short)(0x0100 + 0x0202 * j)).AsByte()).AsInt16();

    /// <summary>Σ k·q·x in 8 int32 lanes: <c>vpmaddubsw</c> of the integers with the activations, <c>vpmaddwd</c> with the scale words.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<int> Dot(Vector256<byte> q, sbyte* x, Vector256<short> k) =>
        Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(q, Vector256.Load(x)), k);

    /// <summary>
    /// Adds one super-block's integer dot <paramref name="p"/> (Σ s·q·x) to the token's accumulators: acc += d·d_x·(p − Q6_K's
    /// 32·Σ s·Σx), mins += dmin·d_x·Σ_j m_j·Σx_j (Q4_K/Q5_K); <paramref name="dx"/>, <paramref name="runs"/> and
    /// <paramref name="sums"/> are the token's <see cref="KActivations"/> at this super-block.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Finish(Vector256<int> p, in KScaleSet s, float dx, short* runs, short* sums, ref Vector256<float> acc, ref Vector128<float> mins)
    {
        if (!TK.HasMin) p -= Vector256.ShiftLeft(Avx2.MultiplyAddAdjacent(s.B, Vector256.Load(runs)), 5);
        acc = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(p), Vector256.Create(s.D * dx), acc);
        if (TK.HasMin)
            mins = Vector128.FusedMultiplyAdd(Vector128.ConvertToSingle(Sse2.MultiplyAddAdjacent(s.B.GetLower(), Vector128.Load(sums))),
                Vector128.Create(s.DMin * dx), mins);
    }

    /// <summary>The fallback: the same integers and scales, lane 0 of each accumulator.</summary>
    static void DotScalar(byte* u, in KScaleSet s, in KActivations x, int t, int b, float* acc, float* mins)
    {
        sbyte* xq = x.Values(t) + 256 * (nint)b;
        float dx = x.Scales(t)[b];
        short* runs = x.RunSums(t) + 16 * b, sums = x.BlockSums(t) + 8 * b;
        int dot = 0, min = 0;
        for (int k = 0; k < 16; k++)
        {
            int run = 0;
            for (int i = 0; i < 16; i++) run += u[16 * k + i] * xq[16 * k + i];
            dot += s.RunScale<TK>(k) * (run - TK.Offset * runs[k]);
        }
        if (TK.HasMin)
            for (int j = 0; j < 8; j++) min += s.B.GetElement(j) * sums[j];
        acc[0] += s.D * dx * dot;
        mins[0] += s.DMin * dx * min;
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
