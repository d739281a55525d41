using System.Runtime.CompilerServices;
using Daop.Kernels.Cpu.Gemm;

namespace Daop.Kernels.Cpu.Quant;

/// <summary>One y = x·Wᵀ problem for the int8 row driver <see cref="QuantGemm{TB, TQ, TW, TV}.Rows"/>.</summary>
internal unsafe struct QuantArgs
{
    /// <summary>[rows, blocks] weight blocks; <see cref="WStride"/> bytes per row.</summary>
    public byte* W;
    public nint WStride;
    /// <summary>The tokens' quantized activations.</summary>
    public QuantizedActivations X;
    /// <summary>[tokens, rows] output; <see cref="YStride"/> floats per token.</summary>
    public float* Y;
    public nint YStride;
    public int Tokens;
}

/// <summary>
/// y = x·Wᵀ for a block weight format with int8 activations: x is quantized once per call
/// (<see cref="QuantizedActivations"/>), then each parallel chunk of rows runs the register tiles of
/// <see cref="QuantTiles{TB, TQ, TW, TV}"/>. The one-token case is the decode GEMV.
/// </summary>
internal static unsafe class QuantGemm<TB, TQ, TW, TV>
    where TB : struct, IBlockFormat where TQ : struct, IQuantSimd<TW, TV> where TW : struct where TV : struct
{
    /// <summary>Parallel y = x·Wᵀ over all rows of <paramref name="w"/> (x: [tokens, cols], y: [tokens, rows]).</summary>
    public static void Forward(in WeightMatrix w, float* x, float* y, int tokens)
    {
        using var lease = ThreadScratch.Rent(QuantizedActivations.Floats(tokens, w.Cols));
        var job = new Job { A = Args(w, QuantizedActivations.Quantize<TB>(x, w.Cols, tokens, w.Cols, lease.Pointer), y, w.Rows, tokens) };
        CpuWorkers.For(w.Rows, RowChunks.Rows(w.Rows, w.RowBytes, tokens), job);
    }

    /// <summary>The arguments for <paramref name="w"/> applied to activations already quantized for <typeparamref name="TB"/>.</summary>
    public static QuantArgs Args(in WeightMatrix w, in QuantizedActivations x, float* y, int yStride, int tokens) => new()
    {
        W = w.Data, WStride = w.RowBytes, X = x, Y = y, YStride = yStride, Tokens = tokens,
    };

    /// <summary>Computes output rows [<paramref name="r0"/>, <paramref name="r1"/>) for every token.</summary>
    /// <remarks>As <see cref="Gemm.Gemm{TF, TS, TV}.Rows"/>: tile i takes rows i, i+q, i+2q, i+3q of the chunk, so each
    /// of its four weight streams runs sequentially through a quarter of the chunk; all token groups run over a
    /// tile before the next, so later groups read its rows from cache.</remarks>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Rows(in QuantArgs a, int r0, int r1)
    {
        float* s = stackalloc float[16]; // [4 tokens, 4 rows] tile results
        int tokens = a.Tokens, nb = a.X.Blocks;
        nint xs = a.X.Stride, pd = a.X.PlaneDistance;
        int q = (r1 - r0) / 4;
        nint ws = q * a.WStride;
        for (int i = 0; i < q; i++)
        {
            int rt = r0 + i;
            byte* w = a.W + rt * a.WStride;
            for (int t = 0; t < tokens;)
            {
                byte* xt = a.X.Base + t * xs;
                int nt = tokens - t >= 4 ? 4 : tokens - t >= 2 ? 2 : 1;
                switch (nt)
                {
                    case 4: QuantTiles<TB, TQ, TW, TV>.T4x4(w, ws, xt, xs, pd, nb, s); break;
                    case 2: QuantTiles<TB, TQ, TW, TV>.T4x2(w, ws, xt, xs, pd, nb, s); break;
                    default: QuantTiles<TB, TQ, TW, TV>.T4x1(w, ws, xt, xs, pd, nb, s); break;
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
            for (int t = 0; t < tokens; t++)
                a.Y[t * a.YStride + r] = QuantTiles<TB, TQ, TW, TV>.T1x1(w, a.X.Base + t * xs, pd, nb);
        }
    }

    struct Job : IParallelJob
    {
        public QuantArgs A;

        public readonly void Execute(int start, int end) => Rows(A, start, end);
    }
}
