using System.Runtime.CompilerServices;

namespace Daop.Kernels.Cpu.Gemm;

/// <summary>A stored weight dtype as seen by the microkernels; one struct per <see cref="DType"/>.</summary>
internal unsafe interface IWeightFormat
{
    static abstract int ElementSize { get; }
    /// <summary>True when a step yields even/odd columns, so activations must be deinterleaved to match.</summary>
    static abstract bool Interleaved { get; }
    /// <summary>One step (2·Width columns) of weights at <paramref name="p"/> widened to fp32.</summary>
    static abstract void Load<TS, TV>(byte* p, out TV a, out TV b) where TS : struct, ISimd<TV> where TV : struct;
    /// <summary>Element <paramref name="c"/> of <paramref name="row"/>, for column tails.</summary>
    static abstract float Widen(byte* row, int c);
    /// <summary>A whole row (dst.Length columns) widened to fp32, vectorised.</summary>
    static abstract void WidenRow(byte* row, Span<float> dst);
}

internal unsafe struct Bf16Format : IWeightFormat
{
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
    public static int ElementSize => 4;
    public static bool Interleaved => false;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Load<TS, TV>(byte* p, out TV a, out TV b) where TS : struct, ISimd<TV> where TV : struct =>
        TS.F32(p, out a, out b);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Widen(byte* row, int c) => ((float*)row)[c];

    public static void WidenRow(byte* row, Span<float> dst) => new ReadOnlySpan<float>(row, dst.Length).CopyTo(dst);
}
