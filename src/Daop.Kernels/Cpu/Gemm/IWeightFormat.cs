using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;

namespace Daop.Kernels.Cpu.Gemm;

/// <summary>
/// What the outer-product GEMM (<see cref="OuterGemm{TF, TS, TV}"/>) needs of a stored weight format: rows widened
/// to fp32 a panel at a time. Every format has one, plain (<see cref="IWeightFormat"/>) or block
/// (<see cref="Quant.IBlockFormat"/>).
/// </summary>
internal unsafe interface IPanelFormat
{
    /// <summary>True when a step yields even/odd columns, so activations must be deinterleaved to match.</summary>
    static abstract bool Interleaved { get; }
    /// <summary>Element <paramref name="c"/> of <paramref name="row"/>, for column tails.</summary>
    static abstract float Widen(byte* row, int c);
    /// <summary>A whole row (dst.Length columns) widened to fp32, vectorised.</summary>
    static abstract void WidenRow(byte* row, Span<float> dst);
    /// <summary>
    /// Columns [<paramref name="kb"/>, <paramref name="kb"/> + <paramref name="kl"/>) of a row of <paramref name="cols"/>
    /// widened to fp32 at <c>d[kb..]</c> in the kernels' column order (<paramref name="kb"/> is a multiple of
    /// <see cref="OuterGemm{TF, TS, TV}.Kc"/>); the next panel of the row is prefetched.
    /// </summary>
    static abstract void WidenPanel<TS, TV>(byte* row, int cols, int kb, int kl, float* d) where TS : struct, ISimd<TV> where TV : struct;
}

/// <summary>A stored plain (one scalar per element) weight dtype as seen by the microkernels; one struct per <see cref="DType"/>.</summary>
internal unsafe interface IWeightFormat : IPanelFormat
{
    static abstract int ElementSize { get; }
    /// <summary>One step (2·Width columns) of weights at <paramref name="p"/> widened to fp32.</summary>
    static abstract void Load<TS, TV>(byte* p, out TV a, out TV b) where TS : struct, ISimd<TV> where TV : struct;
}

/// <summary>The panel widening shared by the plain formats: vector steps up to the main columns, then a scalar tail.</summary>
internal static unsafe class PlainPanel
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Widen<TF, TS, TV>(byte* src, int cols, int kb, int kl, float* d)
        where TF : struct, IWeightFormat where TS : struct, ISimd<TV> where TV : struct
    {
        int w = TS.Width, step = 2 * w, es = TF.ElementSize;
        int main = cols - cols % step, vend = Math.Min(kb + kl, main);
        // The chunk visits its rows block by block, too many interleaved streams for the hardware
        // prefetcher: fetch this row's next block now, a whole block of kernel work ahead.
        if (Sse.IsSupported && kb + kl < cols)
        {
            byte* next = src + (nint)(kb + kl) * es;
            int bytes = Math.Min(kl, cols - kb - kl) * es;
            for (int o = 0; o < bytes; o += 64) Sse.Prefetch0(next + o);
        }
        for (int k = kb; k < vend; k += step)
        {
            TF.Load<TS, TV>(src + (nint)k * es, out TV lo, out TV hi);
            TS.Store(lo, d + k);
            TS.Store(hi, d + k + w);
        }
        for (int k = Math.Max(kb, main); k < kb + kl; k++) d[k] = TF.Widen(src, k);
    }
}

internal unsafe struct Bf16Format : IWeightFormat
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void WidenPanel<TS, TV>(byte* row, int cols, int kb, int kl, float* d) where TS : struct, ISimd<TV> where TV : struct =>
        PlainPanel.Widen<Bf16Format, TS, TV>(row, cols, kb, kl, d);

    public static int ElementSize => 2;
    public static bool Interleaved => true;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Load<TS, TV>(byte* p, out TV a, out TV b) where TS : struct, ISimd<TV> where TV : struct =>
        TS.Bf16(p, out a, out b);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Widen(byte* row, int c) => Bf16.ToFloat(((ushort*)row)[c]);

    public static void WidenRow(byte* row, Span<float> dst) => Bf16.ToFloat(new ReadOnlySpan<ushort>(row, dst.Length), dst);
}

internal unsafe struct F16Format : IWeightFormat
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void WidenPanel<TS, TV>(byte* row, int cols, int kb, int kl, float* d) where TS : struct, ISimd<TV> where TV : struct =>
        PlainPanel.Widen<F16Format, TS, TV>(row, cols, kb, kl, d);

    public static int ElementSize => 2;
    public static bool Interleaved => true;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Load<TS, TV>(byte* p, out TV a, out TV b) where TS : struct, ISimd<TV> where TV : struct =>
        TS.F16(p, out a, out b);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Widen(byte* row, int c) => (float)((Half*)row)[c];

    public static void WidenRow(byte* row, Span<float> dst) =>
        System.Numerics.Tensors.TensorPrimitives.ConvertToSingle(new ReadOnlySpan<Half>(row, dst.Length), dst);
}

internal unsafe struct F32Format : IWeightFormat
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void WidenPanel<TS, TV>(byte* row, int cols, int kb, int kl, float* d) where TS : struct, ISimd<TV> where TV : struct =>
        PlainPanel.Widen<F32Format, TS, TV>(row, cols, kb, kl, d);

    public static int ElementSize => 4;
    public static bool Interleaved => false;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Load<TS, TV>(byte* p, out TV a, out TV b) where TS : struct, ISimd<TV> where TV : struct =>
        TS.F32(p, out a, out b);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Widen(byte* row, int c) => ((float*)row)[c];

    public static void WidenRow(byte* row, Span<float> dst) => new ReadOnlySpan<float>(row, dst.Length).CopyTo(dst);
}
