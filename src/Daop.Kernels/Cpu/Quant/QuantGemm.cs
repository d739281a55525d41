using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;
using Daop.Kernels.Cpu.Gemm;

namespace Daop.Kernels.Cpu.Quant;

/// <summary>One y = x·Wᵀ problem for the int8 row driver <see cref="QuantGemm{TB}.Rows"/>.</summary>
internal unsafe struct QuantArgs
{
    /// <summary>[rows, blocks] weight blocks; <see cref="WStride"/> bytes per row.</summary>
    public byte* W;
    public nint WStride;
    /// <summary>Blocks per weight row.</summary>
    public int Blocks;
    /// <summary>The tokens' quantized activations.</summary>
    public QuantizedActivations X;
    /// <summary>[tokens, rows] output; <see cref="YStride"/> floats per token.</summary>
    public float* Y;
    public nint YStride;
    public int Tokens;
}

/// <summary>
/// y = x·Wᵀ for a block weight format with int8 activations: x is quantized once per call
/// (<see cref="QuantizedActivations"/>), then each parallel chunk of rows runs the quad tiles of
/// <see cref="QuantTiles{TB}"/> (AVX2), or the scalar fallback. The one-token case is the decode GEMV.
/// </summary>
internal static unsafe class QuantGemm<TB> where TB : struct, IBlockFormat
{
    /// <summary>Whether 4-token tiles fit the registers (16 accumulators plus a row's quad: AVX-512VL's 32).</summary>
    static bool FourTokenTiles => Avx512F.VL.IsSupported;

    /// <summary>
    /// Tokens per pass over the weights. Every 4-row tile reads all the pass's quantized activations (192 bytes per
    /// token and 128 columns), so a pass keeps them in L2: 32 tokens of a 14336-wide row are 688 KB. Re-reading the
    /// weights per pass costs little next to 32 tokens of work on them. (Q4_0 4096×14336, 256 tokens, 2 threads:
    /// 69–70 GFLOP/s in passes of 32, 50–59 in one pass.)
    /// </summary>
    public const int TokenBlock = 32;

    /// <summary>
    /// Parallel y = x·Wᵀ over all rows of <paramref name="w"/> (x: [tokens, cols], y: [tokens, rows]);
    /// <paramref name="scalar"/> forces the fallback (for tests on machines that have AVX2).
    /// </summary>
    public static void Forward(in WeightMatrix w, float* x, float* y, int tokens, bool scalar = false)
    {
        using var lease = ThreadScratch.Rent(QuantizedActivations.Floats(Math.Min(tokens, TokenBlock), w.Cols));
        for (int t0 = 0; t0 < tokens; t0 += TokenBlock)
        {
            int n = Math.Min(TokenBlock, tokens - t0);
            var qx = QuantizedActivations.Quantize<TB>(x + (nint)t0 * w.Cols, w.Cols, n, w.Cols, lease.Pointer);
            var job = new Job { A = Args(w, qx, y + (nint)t0 * w.Rows, w.Rows, n), Scalar = scalar };
            CpuWorkers.For(w.Rows, RowChunks.Rows(w.Rows, w.RowBytes, n), job);
        }
    }

    /// <summary>The arguments for <paramref name="w"/> applied to activations already quantized for <typeparamref name="TB"/>.</summary>
    public static QuantArgs Args(in WeightMatrix w, in QuantizedActivations x, float* y, int yStride, int tokens) => new()
    {
        W = w.Data, WStride = w.RowBytes, Blocks = (w.Cols + 31) / 32, X = x, Y = y, YStride = yStride, Tokens = tokens,
    };

    /// <summary>Computes output rows [<paramref name="r0"/>, <paramref name="r1"/>) for every token.</summary>
    public static void Rows(in QuantArgs a, int r0, int r1)
    {
        if (Avx2Support.IsSupported) RowsAvx2(a, r0, r1);
        else RowsScalar(a, r0, r1);
    }

    /// <remarks>
    /// As <see cref="Gemm.Gemm{TF, TS, TV}.Rows"/>: tile i takes rows i, i+q, i+2q, i+3q of the chunk, so each of its
    /// four weight streams runs sequentially through a quarter of the chunk; all token groups run over a tile before
    /// the next, so later groups read its rows from cache. A row's last, partial quad is copied, zero-padded, into a
    /// small buffer and run as a one-quad tile (the activations' padding blocks are zero).
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void RowsAvx2(in QuantArgs a, int r0, int r1)
    {
        float* s = stackalloc float[16];    // [4 tokens, 4 rows] tile results
        float* s2 = stackalloc float[16];   // the same for the partial quad
        int bb = TB.BlockBytes, full = a.Blocks / 4, rem = a.Blocks % 4;
        nint qb = 4 * bb;
        byte* tail = stackalloc byte[4 * 4 * 34]; // [4 rows, one quad] of the widest block
        int tokens = a.Tokens;
        nint xs = a.X.Stride;
        int q = (r1 - r0) / 4;
        nint ws = q * a.WStride;
        for (int i = 0; i < q; i++)
        {
            int rt = r0 + i;
            byte* w = a.W + rt * a.WStride;
            if (rem != 0)
                for (int j = 0; j < 4; j++) CopyTail(w + j * ws + full * qb, rem, tail + j * qb);
            for (int t = 0; t < tokens;)
            {
                int nt = tokens - t >= 4 && FourTokenTiles ? 4 : tokens - t >= 2 ? 2 : 1;
                byte* xq = a.X.Values(t), xl = a.X.Lanes(t);
                Tile(nt, w, ws, xq, xl, xs, full, s);
                if (rem != 0)
                {
                    Tile(nt, tail, qb, xq + full * 128, xl + full * 64, xs, 1, s2);
                    for (int k = 0; k < 4 * nt; k++) s[k] += s2[k];
                }
                float* yt = a.Y + t * a.YStride + rt;
                for (int k = 0; k < nt; k++)
                    for (int j = 0; j < 4; j++) yt[k * a.YStride + j * q] = s[k * 4 + j];
                t += nt;
            }
        }
        for (int r = r0 + 4 * q; r < r1; r++)
        {
            byte* w = a.W + r * a.WStride;
            if (rem != 0) CopyTail(w + full * qb, rem, tail);
            for (int t = 0; t < tokens; t++)
            {
                byte* xq = a.X.Values(t), xl = a.X.Lanes(t);
                float v = QuantTiles<TB>.T1x1(w, xq, xl, full);
                if (rem != 0) v += QuantTiles<TB>.T1x1(tail, xq + full * 128, xl + full * 64, 1);
                a.Y[t * a.YStride + r] = v;
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Tile(int tokens, byte* w, nint ws, byte* xq, byte* xl, nint xs, int quads, float* s)
    {
        switch (tokens)
        {
            case 4: QuantTiles<TB>.T4x4(w, ws, xq, xl, xs, quads, s); break;
            case 2: QuantTiles<TB>.T4x2(w, ws, xq, xl, xs, quads, s); break;
            default: QuantTiles<TB>.T4x1(w, ws, xq, xl, xs, quads, s); break;
        }
    }

    /// <summary>The <paramref name="blocks"/> (1–3) blocks at <paramref name="src"/> as a zero-padded quad at <paramref name="dst"/>.</summary>
    static void CopyTail(byte* src, int blocks, byte* dst)
    {
        int n = blocks * TB.BlockBytes;
        Unsafe.CopyBlockUnaligned(dst, src, (uint)n);
        new Span<byte>(dst + n, 4 * TB.BlockBytes - n).Clear();
    }

    /// <summary>The scalar fallback: <see cref="QuantMatMul.Scalar"/>'s arithmetic, reading the prepared layout.</summary>
    static void RowsScalar(in QuantArgs a, int r0, int r1)
    {
        int bb = TB.BlockBytes;
        for (int r = r0; r < r1; r++)
        {
            byte* row = a.W + r * a.WStride;
            for (int t = 0; t < a.Tokens; t++)
            {
                byte* xq = a.X.Values(t), xl = a.X.Lanes(t);
                float acc = 0;
                for (int b = 0; b < a.Blocks; b++)
                {
                    byte* block = row + (nint)b * bb;
                    sbyte* xb = (sbyte*)xq + 128 * (nint)(b >> 2);
                    int k = b & 3, dot = 0, sum = 0;
                    for (int j = 0; j < 32; j++)
                    {
                        int xj = Quad.Biased<TB>() ? ((byte*)xb)[Quad.XByte<TB>(k, j)] - 128 : xb[Quad.XByte<TB>(k, j)];
                        dot += TB.Value(block, j) * xj;
                        sum += xj;
                    }
                    int lane = 0;
                    while (Quad.LaneBlock<TB>(lane) != k) lane++;
                    float dx = ((float*)(xl + 64 * (nint)(b >> 2)))[lane];
                    acc += TB.Scale(block) * dx * dot;
                    if (TB.HasMin) acc += TB.Min(block) * (dx * sum);
                }
                a.Y[t * a.YStride + r] = acc;
            }
        }
    }

    struct Job : IParallelJob
    {
        public QuantArgs A;
        public bool Scalar;

        public readonly void Execute(int start, int end)
        {
            if (Scalar) RowsScalar(A, start, end);
            else Rows(A, start, end);
        }
    }
}
