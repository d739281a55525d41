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

/// <summary>Which of <see cref="KQuantGemm{TK}"/>'s code paths runs (tests pin each one to check it against the scalar twin).</summary>
internal enum KQuantPath
{
    /// <summary>The widest the machine has: AVX-512BW, else AVX2, else scalar.</summary>
    Best,
    /// <summary>256-bit vectors (AVX2 + FMA, with AVX-VNNI's dots where the CPU has them), or scalar where there is no AVX2.</summary>
    Avx2,
    /// <summary>256-bit vectors without AVX-VNNI (the path of AVX2 CPUs that lack it), or scalar where there is no AVX2.</summary>
    Avx2NoVnni,
    /// <summary>The scalar fallback.</summary>
    Scalar,
}

/// <summary>What decides <see cref="KQuantPath.Best"/>, shared by every K-quant format.</summary>
internal static class KQuantPaths
{
    /// <summary>
    /// Whether the 512-bit path runs: AVX-512BW, the runtime uses 512-bit vectors (not on CPUs that throttle them), and
    /// <c>DAOP_KQUANT_AVX2</c> is not 1 (it keeps the 256-bit path, to compare the two on one machine).
    /// </summary>
    public static bool Wide { get; } = Vector512.IsHardwareAccelerated && Avx512BW.IsSupported && Avx2Support.IsSupported
        && Environment.GetEnvironmentVariable("DAOP_KQUANT_AVX2") != "1";

    /// <summary>
    /// From how many tokens a pass takes the 512-bit path. Below it the 256-bit one is as fast or faster: its row's
    /// unpacking is as costly, and the wide path's shuffles and two-row passes pay off only over many tokens. Dev VM
    /// (Zen 5, 2026-12-06), GFLOP/s 256-bit vs 512-bit, q4_K, one thread: 2 tokens 62 vs 40, 4 tokens 84 vs 67, 8 tokens
    /// 94 vs 89, 16 tokens 108 vs 107, one-token decode 6.2–6.6 vs 7.1–7.3 ms per Mixtral expert; two threads, 64 tokens
    /// 160–172 vs 233–246. Xeon host of the H100 machine, 16 threads, 16 tokens: 1114–1118 vs 1437–1448.
    /// </summary>
    /// <remarks>
    /// <c>DAOP_KQUANT_WIDE_MIN</c> sets another threshold, for tuning on other machines.
    /// </remarks>
    public static int WideMinTokens { get; } =
        int.TryParse(Environment.GetEnvironmentVariable("DAOP_KQUANT_WIDE_MIN"), out int m) && m > 0 ? m : 16;
}

/// <summary>
/// y = x·Wᵀ for a K-quant with int8 activations (<see cref="KActivations"/>, per super-block of 256, quantized once per
/// call): each row's super-blocks are unpacked once (<see cref="IKQuantFormat.Quants"/>, kept in registers with their
/// run-scale words; the scalar fallback stages them in a 256-byte buffer) and dotted with every token of the pass.
/// </summary>
/// <remarks>
/// Per sub-block of 32 and token: <c>vpmaddubsw</c> of the unsigned integers with the int8 activations (16 int16, ≤ 2·63·127),
/// <c>vpmaddwd</c> with the sub-block's int16 scale (Q6_K: each 128-bit half is one run of 16 and takes the run's scale),
/// summed in 8 int32 lanes over the super-block: Σ_runs s·Σ q·x exactly. Q6_K (Q3_K) subtracts 32 (4)·Σ_runs s·Σx (<c>vpmaddwd</c> of its
/// 16 scales with the run sums); one fma per super-block adds d·d_x·(that). Q4_K/Q5_K's mins, dmin·d_x·Σ_j m_j·Σx_j
/// (<c>vpmaddwd</c> of the 8 mins with the sub-block sums; Q2_K's 16 run mins with the run sums), go to a second accumulator. Exact integers, fp32 sums:
/// <see cref="QuantMatMul.Scalar"/>'s arithmetic up to the order of the sums. With AVX-512BW a 512-bit register takes two
/// sub-blocks (<see cref="IKQuantFormat.QuantPair"/>) and one <c>vpshufb</c> spreads their scale words, halving the dot's
/// instructions; its 16 lanes fold to 8 before the same finish. With AVX-VNNI the 256-bit path (<see cref="VnniBlock"/>)
/// dots each sub-block with <c>vpdpbusd</c> and scales two at a time with <c>vpdpwssd</c>: the same integers per super-block.
/// </remarks>
internal static unsafe class KQuantGemm<TK> where TK : struct, IKQuantFormat
{
    /// <summary>log2 of <see cref="IKQuantFormat.Offset"/> (Q6_K 32, Q3_K 4): the run sums' correction is a shift.</summary>
    static int OffsetShift
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => System.Numerics.BitOperations.Log2((uint)TK.Offset);
    }

    /// <summary>Tokens per pass over the weights (a pass's activations stay in L2, as <see cref="QuantGemm{TB}.TokenBlock"/>).</summary>
    public const int TokenBlock = 32;

    /// <summary>Parallel y = x·Wᵀ (x: [tokens, cols], y: [tokens, rows]) on <paramref name="path"/>.</summary>
    public static void Forward(in WeightMatrix w, float* x, float* y, int tokens, KQuantPath path = KQuantPath.Best)
    {
        using var lease = ThreadScratch.Rent(KActivations.Floats(Math.Min(tokens, TokenBlock), w.Cols));
        for (int t0 = 0; t0 < tokens; t0 += TokenBlock)
        {
            int n = Math.Min(TokenBlock, tokens - t0);
            var qx = KActivations.Quantize(x + (nint)t0 * w.Cols, w.Cols, n, w.Cols, lease.Pointer);
            var job = new Job { A = Args(w, qx, y + (nint)t0 * w.Rows, w.Rows, n), Path = path };
            CpuWorkers.For(w.Rows, RowChunks.Rows(w.Rows, w.RowBytes, n), job);
        }
    }

    /// <summary>The arguments for <paramref name="w"/> applied to quantized activations.</summary>
    public static KArgs Args(in WeightMatrix w, in KActivations x, float* y, int yStride, int tokens) => new()
    {
        W = w.Data, WStride = w.RowBytes, Blocks = w.Cols / 256, X = x, Y = y, YStride = yStride, Tokens = tokens,
    };

    /// <summary>Output rows [<paramref name="r0"/>, <paramref name="r1"/>) for every token.</summary>
    public static void Rows(in KArgs a, int r0, int r1, KQuantPath path = KQuantPath.Best)
    {
        if (path == KQuantPath.Best && KQuantPaths.Wide && a.Tokens >= KQuantPaths.WideMinTokens) RowsWide(a, r0, r1);
        else if (path != KQuantPath.Scalar && path != KQuantPath.Avx2NoVnni && AvxVnni.IsSupported && Avx2Support.IsSupported) RowsNarrow<VnniBlock>(a, r0, r1);
        else if (path != KQuantPath.Scalar && Avx2Support.IsSupported) RowsNarrow<MaddBlock>(a, r0, r1);
        else RowsScalar(a, r0, r1);
    }

    /// <summary><see cref="Rows"/> on AVX-512BW: two sub-blocks per register, two rows per pass (batches of <see cref="KQuantPaths.WideMinTokens"/> or more).</summary>
    [SkipLocalsInit]
    static void RowsWide(in KArgs a, int r0, int r1)
    {
        var acc = stackalloc Vector256<float>[2 * TokenBlock];    // per token (and row of a pair): the scaled dots
        var mins = stackalloc Vector128<float>[2 * TokenBlock];   // and the mins
        int tokens = a.Tokens, blocks = a.Blocks;
        nint xs = a.X.Stride;
        for (int r = r0; r < r1; r++)
        {
            byte* row = a.W + r * a.WStride;
            if (r + 1 < r1)
            {
                // two rows at once: each token's activations are read from L2 once for both
                byte* row1 = row + a.WStride;
                new Span<Vector256<float>>(acc, 2 * tokens).Clear();
                new Span<Vector128<float>>(mins, 2 * tokens).Clear();
                for (int b = 0; b < blocks; b++)
                {
                    var u = new WideBlock(row + (nint)b * TK.BlockBytes);
                    var v = new WideBlock(row1 + (nint)b * TK.BlockBytes);
                    var x = new KToken(a.X, b);
                    for (int t = 0; t < tokens; t++)
                    {
                        nint o = t * xs;
                        Finish(u.Dot(x.Values + o), u.S, x, o, ref acc[2 * t], ref mins[2 * t]);
                        Finish(v.Dot(x.Values + o), v.S, x, o, ref acc[2 * t + 1], ref mins[2 * t + 1]);
                    }
                }
                for (int t = 0; t < tokens; t++)
                {
                    a.Y[t * a.YStride + r] = Vector256.Sum(acc[2 * t]) - Vector128.Sum(mins[2 * t]);
                    a.Y[t * a.YStride + r + 1] = Vector256.Sum(acc[2 * t + 1]) - Vector128.Sum(mins[2 * t + 1]);
                }
                r++;
                continue;
            }
            new Span<Vector256<float>>(acc, tokens).Clear();
            new Span<Vector128<float>>(mins, tokens).Clear();
            for (int b = 0; b < blocks; b++)
            {
                // the super-block's integers and scale words, unpacked once for all the pass's tokens
                var u = new WideBlock(row + (nint)b * TK.BlockBytes);
                var x = new KToken(a.X, b);
                for (int t = 0; t < tokens; t++)
                {
                    nint o = t * xs;
                    Finish(u.Dot(x.Values + o), u.S, x, o, ref acc[t], ref mins[t]);
                }
            }
            for (int t = 0; t < tokens; t++)
                a.Y[t * a.YStride + r] = Vector256.Sum(acc[t]) - Vector128.Sum(mins[t]);
        }
    }

    /// <summary>A super-block unpacked for the 512-bit dots: its four sub-block pairs, their scale words, its scales.</summary>
    readonly struct WideBlock
    {
        public readonly Vector512<byte> Q0, Q1, Q2, Q3;
        public readonly Vector512<short> K0, K1, K2, K3;
        public readonly KScaleSet S;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public WideBlock(byte* sb)
        {
            TK.Scales(sb, out S);
            var lanes = LaneScales(S);
            Q0 = TK.QuantPair(sb, 0); Q1 = TK.QuantPair(sb, 1); Q2 = TK.QuantPair(sb, 2); Q3 = TK.QuantPair(sb, 3);
            K0 = PairScales(lanes, 0); K1 = PairScales(lanes, 1); K2 = PairScales(lanes, 2); K3 = PairScales(lanes, 3);
        }

        /// <summary>Σ s·q·x over the super-block against one token's 256 values at <paramref name="x"/>, folded to 8 int32 lanes.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public Vector256<int> Dot(sbyte* x)
        {
            var p = KQuantGemm<TK>.Dot(Q0, x, K0) + KQuantGemm<TK>.Dot(Q1, x + 64, K1) + KQuantGemm<TK>.Dot(Q2, x + 128, K2) + KQuantGemm<TK>.Dot(Q3, x + 192, K3);
            return p.GetLower() + p.GetUpper();
        }
    }

    /// <summary>
    /// <see cref="KScaleSet.A"/>'s two halves as 128-bit lanes [lo, hi, lo, hi], for <see cref="PairScales"/>'s in-lane
    /// shuffle: word j of lo holds sub-block j's scale (Q4_K/Q5_K) or run 2j's, of hi the same (Q4_K/Q5_K) or run 2j+1's.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<short> LaneScales(in KScaleSet s)
    {
        var v = s.A.ToVector512Unsafe().AsInt32();
        return Avx512F.Shuffle4x128(v, v, 0b01_00_01_00).AsInt16();
    }

    /// <summary>
    /// The scale word of every int16 lane of <see cref="IKQuantFormat.QuantPair"/> <paramref name="r"/> after <c>vpmaddubsw</c>
    /// (one <c>vpshufb</c> of <see cref="LaneScales"/>): 128-bit lane i covers run 4r + i, whose scale is word 2r + i/2 of
    /// lo (i even) or hi (i odd); sub-blocks 2r and 2r+1 of Q4_K/Q5_K take their scale in both of their lanes the same way.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<short> PairScales(Vector512<short> lanes, int r) =>
        Avx512BW.Shuffle(lanes.AsByte(), Lanes(Word(2 * r), Word(2 * r), Word(2 * r + 1), Word(2 * r + 1)).AsByte()).AsInt16();

    /// <summary>The <c>vpshufb</c> control word that copies int16 word <paramref name="i"/> of a 128-bit lane.</summary>
    static short Word(int i) => (short)(0x0100 + 0x0202 * i);

    /// <summary>Word <paramref name="a"/> in every lane of 128-bit lane 0, <paramref name="b"/> of lane 1, and so on (constant where the arguments are).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<short> Lanes(short a, short b, short c, short d) =>
        Vector512.Create(a, a, a, a, a, a, a, a, b, b, b, b, b, b, b, b, c, c, c, c, c, c, c, c, d, d, d, d, d, d, d, d);

    /// <summary>Σ k·q·x in 16 int32 lanes (two sub-blocks): <c>vpmaddubsw</c>, then <c>vpmaddwd</c> with the scale words.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<int> Dot(Vector512<byte> q, sbyte* x, Vector512<short> k) =>
        Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(q, Vector512.Load(x)), k);

    /// <summary>A super-block's integers and scale words unpacked on 256-bit vectors once, dotted with each token of a pass.</summary>
    interface INarrowBlock<TSelf> where TSelf : struct, INarrowBlock<TSelf>
    {
        /// <summary>The super-block at <paramref name="sb"/> with its scales <paramref name="s"/>, unpacked.</summary>
        static abstract TSelf Unpack(byte* sb, in KScaleSet s);

        /// <summary>Σ s·q·x over the super-block against one token's 256 activations at <paramref name="x"/>, in 8 int32 lanes.</summary>
        Vector256<int> Dot(sbyte* x);
    }

    /// <summary>
    /// <see cref="Rows"/> on 256-bit vectors, the dots of <typeparamref name="TB"/>: each super-block unpacked once for
    /// all the pass's tokens; one token (decode) keeps its accumulators in registers.
    /// </summary>
    [SkipLocalsInit]
    static void RowsNarrow<TB>(in KArgs a, int r0, int r1) where TB : struct, INarrowBlock<TB>
    {
        var acc = stackalloc Vector256<float>[TokenBlock];     // per token: the scaled dots
        var mins = stackalloc Vector128<float>[TokenBlock];    // per token: the mins (Q4_K, Q5_K)
        int tokens = a.Tokens, blocks = a.Blocks;
        nint xs = a.X.Stride;
        for (int r = r0; r < r1; r++)
        {
            byte* row = a.W + r * a.WStride;
            if (tokens == 1)
            {
                Vector256<float> c = default;
                Vector128<float> m = default;
                for (int b = 0; b < blocks; b++)
                {
                    byte* sb = row + (nint)b * TK.BlockBytes;
                    TK.Scales(sb, out var s);
                    var x = new KToken(a.X, b);
                    Finish(TB.Unpack(sb, s).Dot(x.Values), s, x, 0, ref c, ref m);
                }
                a.Y[r] = Vector256.Sum(c) - Vector128.Sum(m);
                continue;
            }
            new Span<Vector256<float>>(acc, tokens).Clear();
            new Span<Vector128<float>>(mins, tokens).Clear();
            for (int b = 0; b < blocks; b++)
            {
                byte* sb = row + (nint)b * TK.BlockBytes;
                TK.Scales(sb, out var s);
                var u = TB.Unpack(sb, s);
                var x = new KToken(a.X, b);
                for (int t = 0; t < tokens; t++)
                {
                    nint o = t * xs;
                    Finish(u.Dot(x.Values + o), s, x, o, ref acc[t], ref mins[t]);
                }
            }
            for (int t = 0; t < tokens; t++)
                a.Y[t * a.YStride + r] = Vector256.Sum(acc[t]) - Vector128.Sum(mins[t]);
        }
    }

    /// <summary>
    /// A super-block for AVX-VNNI: per sub-block one <c>vpdpbusd</c> (Σ q·x in 8 int32 lanes, each within int16:
    /// ≤ 4·63·127), two sub-blocks packed to int16 (<c>vpackssdw</c>, exact) and scaled and summed by one <c>vpdpwssd</c>
    /// with their scale words (<see cref="PairWords"/>): 20 vector instructions per super-block and token where
    /// <see cref="MaddBlock"/>'s <c>vpmaddubsw</c>, <c>vpmaddwd</c> and <c>vpaddd</c> per sub-block take 24, plus a scale
    /// <c>vpshufb</c> per pair rather than per sub-block. The same integers, so the same results.
    /// </summary>
    readonly struct VnniBlock : INarrowBlock<VnniBlock>
    {
        readonly Vector256<byte> _q0, _q1, _q2, _q3, _q4, _q5, _q6, _q7;
        readonly Vector256<short> _k0, _k1, _k2, _k3;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        VnniBlock(byte* sb, in KScaleSet s)
        {
            _q0 = TK.Quants(sb, 0); _q1 = TK.Quants(sb, 1); _q2 = TK.Quants(sb, 2); _q3 = TK.Quants(sb, 3);
            _q4 = TK.Quants(sb, 4); _q5 = TK.Quants(sb, 5); _q6 = TK.Quants(sb, 6); _q7 = TK.Quants(sb, 7);
            _k0 = PairWords(s.A, 0); _k1 = PairWords(s.A, 1); _k2 = PairWords(s.A, 2); _k3 = PairWords(s.A, 3);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static VnniBlock Unpack(byte* sb, in KScaleSet s) => new(sb, s);

        /// <summary>Two chains of two pairs, so the <c>vpdpwssd</c> latencies overlap.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public Vector256<int> Dot(sbyte* x) =>
            Pair(Pair(_q0, _q1, x, _k0), _q2, _q3, x + 64, _k1) + Pair(Pair(_q4, _q5, x + 128, _k2), _q6, _q7, x + 192, _k3);
    }

    /// <summary>A super-block for AVX2: per sub-block <c>vpmaddubsw</c> of its integers with the activations, <c>vpmaddwd</c> with its scale words.</summary>
    readonly struct MaddBlock : INarrowBlock<MaddBlock>
    {
        readonly Vector256<byte> _q0, _q1, _q2, _q3, _q4, _q5, _q6, _q7;
        readonly Vector256<short> _k0, _k1, _k2, _k3, _k4, _k5, _k6, _k7;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        MaddBlock(byte* sb, in KScaleSet s)
        {
            _q0 = TK.Quants(sb, 0); _q1 = TK.Quants(sb, 1); _q2 = TK.Quants(sb, 2); _q3 = TK.Quants(sb, 3);
            _q4 = TK.Quants(sb, 4); _q5 = TK.Quants(sb, 5); _q6 = TK.Quants(sb, 6); _q7 = TK.Quants(sb, 7);
            _k0 = RunScales(s.A, 0); _k1 = RunScales(s.A, 1); _k2 = RunScales(s.A, 2); _k3 = RunScales(s.A, 3);
            _k4 = RunScales(s.A, 4); _k5 = RunScales(s.A, 5); _k6 = RunScales(s.A, 6); _k7 = RunScales(s.A, 7);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static MaddBlock Unpack(byte* sb, in KScaleSet s) => new(sb, s);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public Vector256<int> Dot(sbyte* x) =>
            KQuantGemm<TK>.Dot(_q0, x, _k0) + KQuantGemm<TK>.Dot(_q1, x + 32, _k1) + KQuantGemm<TK>.Dot(_q2, x + 64, _k2) + KQuantGemm<TK>.Dot(_q3, x + 96, _k3)
            + (KQuantGemm<TK>.Dot(_q4, x + 128, _k4) + KQuantGemm<TK>.Dot(_q5, x + 160, _k5) + KQuantGemm<TK>.Dot(_q6, x + 192, _k6) + KQuantGemm<TK>.Dot(_q7, x + 224, _k7));
    }

    /// <summary>
    /// Sub-blocks j and j+1's Σ q·x (<paramref name="qa"/>, <paramref name="qb"/> against the 64 activations at
    /// <paramref name="x"/>) as int16 words [a's lanes 0–3, b's 0–3 | a's 4–7, b's 4–7] (<c>vpackssdw</c>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<short> PackedDots(Vector256<byte> qa, Vector256<byte> qb, sbyte* x) =>
        Avx2.PackSignedSaturate(AvxVnni.MultiplyWideningAndAdd(Vector256<int>.Zero, qa, Vector256.Load(x)),
            AvxVnni.MultiplyWideningAndAdd(Vector256<int>.Zero, qb, Vector256.Load(x + 32)));

    /// <summary>Σ s·q·x of a sub-block pair (<see cref="PackedDots"/> times its <see cref="PairWords"/> <paramref name="k"/>) in 8 int32 lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<int> Pair(Vector256<byte> qa, Vector256<byte> qb, sbyte* x, Vector256<short> k) =>
        Avx2.MultiplyAddAdjacent(PackedDots(qa, qb, x), k);

    /// <summary><paramref name="acc"/> plus <see cref="Pair(Vector256{byte}, Vector256{byte}, sbyte*, Vector256{short})"/> (<c>vpdpwssd</c>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<int> Pair(Vector256<int> acc, Vector256<byte> qa, Vector256<byte> qb, sbyte* x, Vector256<short> k) =>
        AvxVnni.MultiplyWideningAndAdd(acc, PackedDots(qa, qb, x), k);

    /// <summary>
    /// The scale words of sub-blocks 2<paramref name="r"/> and 2r+1 laid out as <see cref="PackedDots"/> packs their dots
    /// (one <c>vpshufb</c> of <see cref="KScaleSet.A"/>): in each 128-bit half, word 2r of the half four times, then word
    /// 2r+1 (Q4_K/Q5_K: the sub-blocks' scales in both halves; the per-run formats: runs 4r, 4r+2 in the low half and
    /// 4r+1, 4r+3 in the high, the runs whose dots the halves hold).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<short> PairWords(Vector256<short> scales, int r)
    {
        short a = Word(2 * r), b = Word(2 * r + 1);
        return Avx2.Shuffle(scales.AsByte(), Vector256.Create(a, a, a, a, b, b, b, b, a, a, a, a, b, b, b, b).AsByte()).AsInt16();
    }

    /// <summary><see cref="Rows"/> without vectors: each super-block unpacked to bytes once, <see cref="DotScalar"/> per token.</summary>
    [SkipLocalsInit]
    static void RowsScalar(in KArgs a, int r0, int r1)
    {
        byte* u = stackalloc byte[256];
        var acc = stackalloc Vector256<float>[TokenBlock];     // lane 0 of each: the scaled dots
        var mins = stackalloc Vector128<float>[TokenBlock];    // and the mins
        for (int r = r0; r < r1; r++)
        {
            byte* row = a.W + r * a.WStride;
            new Span<Vector256<float>>(acc, a.Tokens).Clear();
            new Span<Vector128<float>>(mins, a.Tokens).Clear();
            for (int b = 0; b < a.Blocks; b++)
            {
                byte* sb = row + (nint)b * TK.BlockBytes;
                TK.Scales(sb, out var s);
                for (int j = 0; j < 8; j++) TK.Quants(sb, j).Store(u + 32 * j);
                for (int t = 0; t < a.Tokens; t++) DotScalar(u, s, a.X, t, b, (float*)(acc + t), (float*)(mins + t));
            }
            for (int t = 0; t < a.Tokens; t++)
                a.Y[t * a.YStride + r] = Vector256.Sum(acc[t]) - Vector128.Sum(mins[t]);
        }
    }

    /// <summary>Int16 word j of each 128-bit half of <paramref name="scales"/>, broadcast across its half (<c>vpshufb</c>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<short> RunScales(Vector256<short> scales, int j) =>
        Avx2.Shuffle(scales.AsByte(), Vector256.Create((short)(0x0100 + 0x0202 * j)).AsByte()).AsInt16();

    /// <summary>Σ k·q·x in 8 int32 lanes: <c>vpmaddubsw</c> of the integers with the activations, <c>vpmaddwd</c> with the scale words.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<int> Dot(Vector256<byte> q, sbyte* x, Vector256<short> k) =>
        Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(q, Vector256.Load(x)), k);

    /// <summary>
    /// Adds one super-block's integer dot <paramref name="p"/> (Σ s·q·x) to the token's accumulators: acc += d·d_x·(p − offset·Σ s·Σx
    /// for Q6_K and Q3_K), mins += dmin·d_x·Σ m·Σx over the sub-blocks (Q4_K/Q5_K) or runs (Q2_K), with the token's
    /// activation data at <paramref name="x"/> + <paramref name="o"/> bytes.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Finish(Vector256<int> p, in KScaleSet s, in KToken x, nint o, ref Vector256<float> acc, ref Vector128<float> mins)
    {
        float dx = *(float*)((byte*)x.Scale + o);
        if (TK.Offset != 0) p -= Vector256.ShiftLeft(Avx2.MultiplyAddAdjacent(s.B, Vector256.Load((short*)((byte*)x.RunSums + o))), OffsetShift);
        acc = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(p), Vector256.Create(s.D * dx), acc);
        if (TK.HasMin)
        {
            Vector128<int> m;
            if (TK.PerRun)
            {
                var m8 = Avx2.MultiplyAddAdjacent(s.B, Vector256.Load((short*)((byte*)x.RunSums + o)));
                m = m8.GetLower() + m8.GetUpper();
            }
            else m = Sse2.MultiplyAddAdjacent(s.B.GetLower(), Vector128.Load((short*)((byte*)x.BlockSums + o)));
            mins = Vector128.FusedMultiplyAdd(Vector128.ConvertToSingle(m), Vector128.Create(s.DMin * dx), mins);
        }
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
        if (TK.HasMin && TK.PerRun)
            for (int k = 0; k < 16; k++) min += s.B.GetElement(k) * runs[k];
        else if (TK.HasMin)
            for (int j = 0; j < 8; j++) min += s.B.GetElement(j) * sums[j];
        acc[0] += s.D * dx * dot;
        mins[0] += s.DMin * dx * min;
    }

    struct Job : IParallelJob
    {
        public KArgs A;
        public KQuantPath Path;

        public readonly void Execute(int start, int end) => Rows(A, start, end, Path);
    }
}

/// <summary>Token 0's activation data at one super-block; token t's is at the same pointers plus t·<see cref="KActivations.Stride"/> bytes.</summary>
internal readonly unsafe struct KToken
{
    /// <summary>The super-block's 256 int8 values.</summary>
    public readonly sbyte* Values;
    /// <summary>Its scale d_x.</summary>
    public readonly float* Scale;
    /// <summary>Its 16 run sums.</summary>
    public readonly short* RunSums;
    /// <summary>Its 8 sub-block sums.</summary>
    public readonly short* BlockSums;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public KToken(in KActivations x, int b)
    {
        Values = x.Values(0) + 256 * (nint)b;
        Scale = x.Scales(0) + b;
        RunSums = x.RunSums(0) + 16 * (nint)b;
        BlockSums = x.BlockSums(0) + 8 * (nint)b;
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
