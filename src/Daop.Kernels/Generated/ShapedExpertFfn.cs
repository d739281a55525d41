using System.Runtime.CompilerServices;
using Daop.Kernels.Cpu;
using Daop.Kernels.Cpu.Gemm;

namespace Daop.Kernels.Generated;

/// <summary>
/// SwiGLU expert for one compile-time shape and 1–3 tokens: gate+up with SwiGLU fused per row chunk, then down,
/// each one parallel region on <see cref="CpuWorkers"/>. Built from the same <see cref="ISimd{TV}"/> and
/// <see cref="IWeightFormat"/> blocks as <see cref="Gemm{TF, TS, TV}"/>, but every dimension — hidden, inter and the
/// token count — is a JIT-time constant.
/// </summary>
/// <remarks>
/// With <typeparamref name="TShape"/> a struct, <c>TShape.Hidden</c>/<c>Inter</c> are literals in each
/// instantiation, so vector trip counts and row strides are immediates, the scalar column tail is compiled only for
/// shapes that have one, and no column blocking or argument struct is needed. Each 4-row tile of weights is widened
/// once and applied to every token (<see cref="Dot4{TD, TT}"/>), so 2–3 tokens stream the weights once, like one.
/// The chunk that finishes a block of rows also permutes its slice of h into the down kernel's column order, so no
/// serial pass over h sits between the two regions. No heap allocation once warm.
/// </remarks>
internal static unsafe partial class ShapedExpertFfn<TShape, TF, TS, TV>
    where TShape : struct, IExpertShape where TF : struct, IWeightFormat where TS : struct, ISimd<TV> where TV : struct
{
    /// <summary>Columns per vector step (two vectors).</summary>
    static int Step { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => 2 * TS.Width; }

    /// <summary>Whether activations must be put in even/odd column order for the 2-byte weight loads.</summary>
    static bool Permute { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => TF.Interleaved && TS.Width > 1; }

    /// <summary>Row chunks start on whole steps (so a chunk can permute its own slice of h) and on 4-row tiles.</summary>
    static int Align { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => Math.Max(4, Step); }

    /// <summary>Floats per token of permuted x: its main columns, rounded to 64 bytes to keep every row aligned.</summary>
    static int XpStride { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => Permute ? (MainCols<HiddenCols>() + 15) & ~15 : TShape.Hidden; }

    /// <summary>Floats per token of permuted h (or of h itself when nothing is permuted).</summary>
    static int HpStride { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => Permute ? (MainCols<InterCols>() + 15) & ~15 : TShape.Inter; }

    static readonly int s_gateUpChunk = ChunkRows(TShape.Inter, 2L * TShape.Hidden * TF.ElementSize);
    static readonly int s_downChunk = ChunkRows(TShape.Hidden, (long)TShape.Inter * TF.ElementSize);

    /// <summary>
    /// y = W_down · (SiLU(W_gate·x) ⊙ (W_up·x)) for <c>TT.Count</c> tokens (x, y: [tokens, Hidden]).
    /// <paramref name="scratch"/> holds 2·tokens·Inter floats; on return its first tokens·Inter are h, as with
    /// <see cref="ExpertFfn.Forward"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // the permute loops must never run as tier-0 code
    public static void Forward<TT>(byte* gate, byte* up, byte* down, float* x, float* y, float* scratch) where TT : struct, ITokens
    {
        int n = TT.Count;
        float* h = scratch, u = scratch + n * TShape.Inter;
        using var lease = Permute ? ThreadScratch.Rent(n * (XpStride + HpStride)) : default;
        float* xp = Permute ? lease.Pointer : x;
        float* hp = Permute ? lease.Pointer + n * XpStride : h;
        if (Permute)
            for (int t = 0; t < n; t++)
                for (int c = 0; c < MainCols<HiddenCols>(); c += Step)
                    TS.Deinterleave(x + t * TShape.Hidden + c, xp + t * XpStride + c);
        CpuWorkers.For(TShape.Inter, s_gateUpChunk, new GateUpJob<TT> { Gate = gate, Up = up, X = x, Xp = xp, H = h, U = u, Hp = hp });
        CpuWorkers.For(TShape.Hidden, s_downChunk, new DownJob<TT> { Down = down, H = h, Hp = hp, Y = y });
    }

    /// <summary>
    /// Rows per chunk: about four chunks per thread for balance, at least 32 KB of weights so small experts do not
    /// wake workers for nothing, rounded up to <see cref="Align"/>.
    /// </summary>
    static int ChunkRows(int rows, long rowBytes)
    {
        long threads = CpuWorkers.Threads;
        long chunk = (rows + 4 * threads - 1) / (4 * threads);
        long minRows = (32768 + rowBytes - 1) / rowBytes;
        chunk = Math.Max(chunk, Math.Min(minRows, rows));
        int align = Align;
        return (int)((chunk + align - 1) / align * align);
    }

    /// <summary>Columns the vector loop covers (whole steps); the rest is the scalar tail.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static int MainCols<TD>() where TD : struct, IColumns => TD.Cols - TD.Cols % Step;

    /// <summary>Rows [start, end) of gate and up for every token, then SwiGLU and the permuted copy of that slice of h.</summary>
    struct GateUpJob<TT> : IParallelJob where TT : struct, ITokens
    {
        public byte* Gate, Up;
        public float* X, Xp, H, U, Hp;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public readonly void Execute(int start, int end)
        {
            nint rowBytes = (nint)TShape.Hidden * TF.ElementSize;
            int r = start;
            for (; r + 4 <= end; r += 4)
            {
                Dot4<HiddenCols, TT>(Gate + r * rowBytes, Xp, XpStride, X, TShape.Hidden, H + r, TShape.Inter);
                Dot4<HiddenCols, TT>(Up + r * rowBytes, Xp, XpStride, X, TShape.Hidden, U + r, TShape.Inter);
            }
            // Chunks end on multiples of 4 except at Inter, so this loop exists only for Inter % 4 != 0.
            if (TShape.Inter % 4 != 0)
            {
                for (; r < end; r++)
                {
                    Dot1<HiddenCols, TT>(Gate + r * rowBytes, Xp, XpStride, X, TShape.Hidden, H + r, TShape.Inter);
                    Dot1<HiddenCols, TT>(Up + r * rowBytes, Xp, XpStride, X, TShape.Hidden, U + r, TShape.Inter);
                }
            }
            for (int t = 0; t < TT.Count; t++)
            {
                float* ht = H + t * TShape.Inter;
                SwiGlu.Forward(new Span<float>(ht + start, end - start), new ReadOnlySpan<float>(U + t * TShape.Inter + start, end - start));
                if (Permute)
                {
                    int stop = Math.Min(end, MainCols<InterCols>());
                    for (int c = start; c < stop; c += Step) TS.Deinterleave(ht + c, Hp + t * HpStride + c);
                }
            }
        }
    }

    /// <summary>Rows [start, end) of down · h for every token.</summary>
    struct DownJob<TT> : IParallelJob where TT : struct, ITokens
    {
        public byte* Down;
        public float* H, Hp, Y;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public readonly void Execute(int start, int end)
        {
            nint rowBytes = (nint)TShape.Inter * TF.ElementSize;
            int r = start;
            for (; r + 4 <= end; r += 4)
                Dot4<InterCols, TT>(Down + r * rowBytes, Hp, HpStride, H, TShape.Inter, Y + r, TShape.Hidden);
            if (TShape.Hidden % 4 != 0)
                for (; r < end; r++)
                    Dot1<InterCols, TT>(Down + r * rowBytes, Hp, HpStride, H, TShape.Inter, Y + r, TShape.Hidden);
        }
    }
}
