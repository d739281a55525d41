using System.Runtime.CompilerServices;
using Daop.Kernels.Cpu;
using Daop.Kernels.Cpu.Gemm;

namespace Daop.Kernels.Generated;

/// <summary>
/// Single-token SwiGLU expert for one compile-time shape: gate+up GEMV with SwiGLU fused per row chunk, then the
/// down GEMV, each one parallel region on <see cref="CpuWorkers"/>. Built from the same <see cref="ISimd{TV}"/> and
/// <see cref="IWeightFormat"/> blocks as <see cref="Gemm{TF, TS, TV}"/>, but every dimension is a JIT-time constant.
/// </summary>
/// <remarks>
/// With <typeparamref name="TShape"/> a struct, <c>TShape.Hidden</c>/<c>Inter</c> are literals in each
/// instantiation, so: vector trip counts and row strides are immediates, the scalar column tail is compiled only for
/// shapes that have one, and no column blocking or argument struct is needed (one token streams each row once).
/// The chunk that finishes a block of rows also permutes its slice of h into the down kernel's column order, so no
/// serial pass over h sits between the two regions. No heap allocation once warm.
/// </remarks>
internal static unsafe class ShapedExpertFfn<TShape, TF, TS, TV>
    where TShape : struct, IExpertShape where TF : struct, IWeightFormat where TS : struct, ISimd<TV> where TV : struct
{
    /// <summary>Columns per vector step (two vectors).</summary>
    static int Step { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => 2 * TS.Width; }

    /// <summary>Whether activations must be put in even/odd column order for the 2-byte weight loads.</summary>
    static bool Permute { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => TF.Interleaved && TS.Width > 1; }

    /// <summary>Row chunks start on whole steps (so a chunk can permute its own slice of h) and on 4-row tiles.</summary>
    static int Align { [MethodImpl(MethodImplOptions.AggressiveInlining)] get => Math.Max(4, Step); }

    /// <summary>Floats reserved for the permuted x, rounded to 64 bytes so the permuted h after it stays aligned.</summary>
    static int PermutedX => (MainCols<HiddenCols>() + 15) & ~15;

    static readonly int s_gateUpChunk = ChunkRows(TShape.Inter, 2L * TShape.Hidden * TF.ElementSize);
    static readonly int s_downChunk = ChunkRows(TShape.Hidden, (long)TShape.Inter * TF.ElementSize);

    /// <summary>
    /// y = W_down · (SiLU(W_gate·x) ⊙ (W_up·x)) for one token. <paramref name="scratch"/> holds 2·Inter floats;
    /// on return its first Inter are h, as with <see cref="ExpertFfn.Forward"/>.
    /// </summary>
    public static void Gemv(byte* gate, byte* up, byte* down, float* x, float* y, float* scratch)
    {
        float* h = scratch, u = scratch + TShape.Inter;
        using var lease = Permute ? ThreadScratch.Rent(PermutedX + MainCols<InterCols>()) : default;
        float* xp = Permute ? lease.Pointer : x;
        float* hp = Permute ? lease.Pointer + PermutedX : h;
        if (Permute)
            for (int c = 0; c < MainCols<HiddenCols>(); c += Step) TS.Deinterleave(x + c, xp + c);
        CpuWorkers.For(TShape.Inter, s_gateUpChunk, new GateUpJob { Gate = gate, Up = up, X = x, Xp = xp, H = h, U = u, Hp = hp });
        CpuWorkers.For(TShape.Hidden, s_downChunk, new DownJob { Down = down, H = h, Hp = hp, Y = y });
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

    /// <summary>
    /// dst[0..4) = rows 0..3 at <paramref name="w"/> (stride TD.Cols weights) · x. <paramref name="xp"/> is x in
    /// kernel column order for the vector part, <paramref name="x"/> the natural order for the scalar tail.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Dot4<TD>(byte* w, float* xp, float* x, float* dst) where TD : struct, IColumns
    {
        int width = TS.Width, es = TF.ElementSize, cols = TD.Cols, main = MainCols<TD>();
        nint ws = (nint)cols * es;
        byte* p0 = w, p1 = p0 + ws, p2 = p1 + ws, p3 = p2 + ws;
        // Separate even/odd accumulators: eight independent FMA chains hide the FMA latency.
        TV c0 = TS.Zero, c1 = TS.Zero, c2 = TS.Zero, c3 = TS.Zero;
        TV d0 = TS.Zero, d1 = TS.Zero, d2 = TS.Zero, d3 = TS.Zero;
        for (nint k = 0; k < main; k += 2 * width)
        {
            nint o = k * es;
            TV xa = TS.Load(xp + k), xb = TS.Load(xp + k + width);
            TF.Load<TS, TV>(p0 + o, out TV a0, out TV b0);
            c0 = TS.Fma(a0, xa, c0); d0 = TS.Fma(b0, xb, d0);
            TF.Load<TS, TV>(p1 + o, out TV a1, out TV b1);
            c1 = TS.Fma(a1, xa, c1); d1 = TS.Fma(b1, xb, d1);
            TF.Load<TS, TV>(p2 + o, out TV a2, out TV b2);
            c2 = TS.Fma(a2, xa, c2); d2 = TS.Fma(b2, xb, d2);
            TF.Load<TS, TV>(p3 + o, out TV a3, out TV b3);
            c3 = TS.Fma(a3, xa, c3); d3 = TS.Fma(b3, xb, d3);
        }
        TS.Sum4(TS.Add(c0, d0), TS.Add(c1, d1), TS.Add(c2, d2), TS.Add(c3, d3), dst);
        if (main < cols) // a constant: shapes without a tail compile none
        {
            for (int c = main; c < cols; c++)
            {
                float xc = x[c];
                dst[0] += xc * TF.Widen(p0, c);
                dst[1] += xc * TF.Widen(p1, c);
                dst[2] += xc * TF.Widen(p2, c);
                dst[3] += xc * TF.Widen(p3, c);
            }
        }
    }

    /// <summary>One row · x, for the rows after the last 4-row tile (only when the row count is not a multiple of 4).</summary>
    static float Dot1<TD>(byte* w, float* xp, float* x) where TD : struct, IColumns
    {
        int width = TS.Width, es = TF.ElementSize, cols = TD.Cols, main = MainCols<TD>();
        TV c0 = TS.Zero, d0 = TS.Zero;
        for (nint k = 0; k < main; k += 2 * width)
        {
            TF.Load<TS, TV>(w + k * es, out TV a, out TV b);
            c0 = TS.Fma(a, TS.Load(xp + k), c0);
            d0 = TS.Fma(b, TS.Load(xp + k + width), d0);
        }
        float acc = TS.Sum(TS.Add(c0, d0));
        for (int c = main; c < cols; c++) acc += x[c] * TF.Widen(w, c);
        return acc;
    }

    /// <summary>A row length known at JIT time: lets one dot kernel serve both projections with constant bounds.</summary>
    internal interface IColumns
    {
        static abstract int Cols { get; }
    }

    /// <summary>Gate/up rows: Hidden columns.</summary>
    internal struct HiddenCols : IColumns
    {
        public static int Cols => TShape.Hidden;
    }

    /// <summary>Down rows: Inter columns.</summary>
    internal struct InterCols : IColumns
    {
        public static int Cols => TShape.Inter;
    }

    /// <summary>Rows [start, end) of gate and up, then SwiGLU and the permuted copy of that slice of h.</summary>
    struct GateUpJob : IParallelJob
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
                Dot4<HiddenCols>(Gate + r * rowBytes, Xp, X, H + r);
                Dot4<HiddenCols>(Up + r * rowBytes, Xp, X, U + r);
            }
            // Chunks end on multiples of 4 except at Inter, so this loop exists only for Inter % 4 != 0.
            if (TShape.Inter % 4 != 0)
            {
                for (; r < end; r++)
                {
                    H[r] = Dot1<HiddenCols>(Gate + r * rowBytes, Xp, X);
                    U[r] = Dot1<HiddenCols>(Up + r * rowBytes, Xp, X);
                }
            }
            SwiGlu.Forward(new Span<float>(H + start, end - start), new ReadOnlySpan<float>(U + start, end - start));
            if (Permute)
            {
                int stop = Math.Min(end, MainCols<InterCols>());
                for (int c = start; c < stop; c += Step) TS.Deinterleave(H + c, Hp + c);
            }
        }
    }

    /// <summary>Rows [start, end) of down · h.</summary>
    struct DownJob : IParallelJob
    {
        public byte* Down;
        public float* H, Hp, Y;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public readonly void Execute(int start, int end)
        {
            nint rowBytes = (nint)TShape.Inter * TF.ElementSize;
            int r = start;
            for (; r + 4 <= end; r += 4) Dot4<InterCols>(Down + r * rowBytes, Hp, H, Y + r);
            if (TShape.Hidden % 4 != 0)
                for (; r < end; r++) Y[r] = Dot1<InterCols>(Down + r * rowBytes, Hp, H);
        }
    }
}
