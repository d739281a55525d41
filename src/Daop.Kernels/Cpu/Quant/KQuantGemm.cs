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
/// super-blocks are unpacked once (<see cref="IKQuantFormat.Unpack"/>) and dotted with every token of the pass.
/// </summary>
/// <remarks>
/// Per sub-block j of 32 and token: <c>vpmaddubsw</c> of the unsigned integers with the int8 activations, then
/// <c>vpmaddwd</c> with the runs' integer scales, so an int32 holds Σ s·q·x; three rounds of <c>vphaddd</c> gather the
/// 8 sub-blocks of a super-block into 8 lanes, and one fma adds dx_j·d·(those). Q4_K/Q5_K subtract Σ_j dmin·m_j·dx_j·Σx_j
/// (a second accumulator), Q6_K subtracts 32·Σ s·Σx per run from the integers first. Exact integers, fp32 sums:
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
        KUnpacked u;
        var acc = stackalloc Vector256<float>[2 * TokenBlock]; // per token: the scaled dots, the mins
        for (int r = r0; r < r1; r++)
        {
            byte* row = a.W + r * a.WStride;
            new Span<Vector256<float>>(acc, 2 * a.Tokens).Clear();
            for (int b = 0; b < a.Blocks; b++)
            {
                TK.Unpack(row + (nint)b * TK.BlockBytes, &u);
                for (int t = 0; t < a.Tokens; t++)
                {
                    if (vector) DotAvx2(&u, a.X, t, b, acc + 2 * t);
                    else DotScalar(&u, a.X, t, b, (float*)(acc + 2 * t));
                }
            }
            for (int t = 0; t < a.Tokens; t++)
                a.Y[t * a.YStride + r] = Vector256.Sum(acc[2 * t]) - Vector256.Sum(acc[2 * t + 1]);
        }
    }

    /// <summary>acc[0] += dx·d·Σ s·(q − offset)·x per sub-block, acc[1] += dmin·m·dx·Σx (Q4_K/Q5_K).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void DotAvx2(KUnpacked* u, in KActivations x, int t, int b, Vector256<float>* acc)
    {
        sbyte* xq = x.Values(t) + 256 * (nint)b;
        short* w = u->W;
        byte* q = u->U;
        var s01 = Avx2.HorizontalAdd(Sub(q, xq, w), Sub(q + 32, xq + 32, w + 16));
        var s23 = Avx2.HorizontalAdd(Sub(q + 64, xq + 64, w + 32), Sub(q + 96, xq + 96, w + 48));
        var s45 = Avx2.HorizontalAdd(Sub(q + 128, xq + 128, w + 64), Sub(q + 160, xq + 160, w + 80));
        var s67 = Avx2.HorizontalAdd(Sub(q + 192, xq + 192, w + 96), Sub(q + 224, xq + 224, w + 112));
        var t0 = Avx2.HorizontalAdd(s01, s23);
        var t1 = Avx2.HorizontalAdd(s45, s67);
        var p = Avx2.Permute2x128(t0, t1, 0x20) + Avx2.Permute2x128(t0, t1, 0x31); // [sub-block 0 .. 7]
        if (!TK.HasMin)
            p -= Vector256.ShiftLeft(Avx2.MultiplyAddAdjacent(Vector256.Load(x.RunSums(t) + 16 * (nint)b), Vector256.Load(u->S16)), 5);
        var dx = Vector256.Load(x.Scales(t) + 8 * (nint)b);
        acc[0] = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(p), dx * Vector256.Create(u->D), acc[0]);
        if (TK.HasMin)
            acc[1] = Vector256.FusedMultiplyAdd(Vector256.Load(u->Min), Vector256.Load(x.ScaledSums(t) + 8 * (nint)b), acc[1]);
    }

    /// <summary>Σ s·u·x of one sub-block in 8 int32 lanes (4 per run).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<int> Sub(byte* q, sbyte* x, short* w) =>
        Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(Vector256.Load(q), Vector256.Load(x)), Vector256.Load(w));

    /// <summary>The fallback: the same integers and scales, lane 0 of each accumulator.</summary>
    static void DotScalar(KUnpacked* u, in KActivations x, int t, int b, float* acc)
    {
        sbyte* xq = x.Values(t) + 256 * (nint)b;
        float* dx = x.Scales(t) + 8 * b, ds = x.ScaledSums(t) + 8 * b;
        short* runs = x.RunSums(t) + 16 * b;
        int offset = TK.HasMin ? 0 : 32;
        for (int j = 0; j < 8; j++)
        {
            int dot = 0;
            for (int h = 0; h < 2; h++)
            {
                int s = u->W[16 * j + 8 * h], run = 0;
                for (int i = 0; i < 16; i++) run += u->U[32 * j + 16 * h + i] * xq[32 * j + 16 * h + i];
                dot += s * (run - offset * runs[2 * j + h]);
            }
            acc[0] += dx[j] * u->D * dot;
            if (TK.HasMin) acc[8] += u->Min[j] * ds[j];
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
