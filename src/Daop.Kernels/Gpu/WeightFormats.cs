using System.Runtime.CompilerServices;
using ILGPU;

namespace Daop.Kernels.Gpu;

/// <summary>
/// A weight dtype as a kernel type argument: the row kernels are generic over a struct implementing this, so
/// ILGPU compiles one kernel per dtype with the widening and the elements per chunk as constants (called on
/// <c>default(TW)</c>; no dtype test per chunk).
/// </summary>
public interface IWeightFormat
{
    /// <summary>Kernel dtype code (<see cref="GpuMath.BF16"/>, <see cref="GpuMath.F16"/>, <see cref="GpuMath.F32"/>).</summary>
    int Type { get; }

    /// <summary>Elements in one 16-byte chunk (8, or 4 for fp32).</summary>
    int PerChunk { get; }

    /// <summary>The chunk widened to fp32 (elements past <see cref="PerChunk"/> are zero).</summary>
    Widened Widen(Chunk16 c);
}

/// <summary>bf16 weights.</summary>
public struct Bf16Format : IWeightFormat
{
    /// <inheritdoc />
    public readonly int Type => GpuMath.BF16;

    /// <inheritdoc />
    public readonly int PerChunk => 8;

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly Widened Widen(Chunk16 c)
    {
        Widened w;
        w.W0 = Interop.IntAsFloat(c.X << 16); w.W1 = Interop.IntAsFloat(c.X & 0xFFFF0000u);
        w.W2 = Interop.IntAsFloat(c.Y << 16); w.W3 = Interop.IntAsFloat(c.Y & 0xFFFF0000u);
        w.W4 = Interop.IntAsFloat(c.Z << 16); w.W5 = Interop.IntAsFloat(c.Z & 0xFFFF0000u);
        w.W6 = Interop.IntAsFloat(c.W << 16); w.W7 = Interop.IntAsFloat(c.W & 0xFFFF0000u);
        return w;
    }
}

/// <summary>IEEE binary16 weights.</summary>
public struct F16Format : IWeightFormat
{
    /// <inheritdoc />
    public readonly int Type => GpuMath.F16;

    /// <inheritdoc />
    public readonly int PerChunk => 8;

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly Widened Widen(Chunk16 c)
    {
        Widened w;
        w.W0 = GpuMath.HalfToFloat(c.X & 0xFFFFu); w.W1 = GpuMath.HalfToFloat(c.X >> 16);
        w.W2 = GpuMath.HalfToFloat(c.Y & 0xFFFFu); w.W3 = GpuMath.HalfToFloat(c.Y >> 16);
        w.W4 = GpuMath.HalfToFloat(c.Z & 0xFFFFu); w.W5 = GpuMath.HalfToFloat(c.Z >> 16);
        w.W6 = GpuMath.HalfToFloat(c.W & 0xFFFFu); w.W7 = GpuMath.HalfToFloat(c.W >> 16);
        return w;
    }
}

/// <summary>fp32 weights.</summary>
public struct F32Format : IWeightFormat
{
    /// <inheritdoc />
    public readonly int Type => GpuMath.F32;

    /// <inheritdoc />
    public readonly int PerChunk => 4;

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly Widened Widen(Chunk16 c)
    {
        Widened w;
        w.W0 = Interop.IntAsFloat(c.X); w.W1 = Interop.IntAsFloat(c.Y);
        w.W2 = Interop.IntAsFloat(c.Z); w.W3 = Interop.IntAsFloat(c.W);
        w.W4 = 0; w.W5 = 0; w.W6 = 0; w.W7 = 0;
        return w;
    }
}

/// <summary>
/// Compile-time loads in flight per lane for the single-token GEMV (<see cref="GemvKernels"/>): a kernel type
/// argument like <see cref="IWeightFormat"/>.
/// </summary>
public interface IUnroll
{
    /// <summary>Independent 16-byte weight loads issued before the first is used (1..8).</summary>
    int Loads { get; }
}

/// <summary>Two loads in flight.</summary>
public struct Unroll2 : IUnroll
{
    /// <inheritdoc />
    public readonly int Loads => 2;
}

/// <summary>Four loads in flight.</summary>
public struct Unroll4 : IUnroll
{
    /// <inheritdoc />
    public readonly int Loads => 4;
}

/// <summary>Eight loads in flight.</summary>
public struct Unroll8 : IUnroll
{
    /// <inheritdoc />
    public readonly int Loads => 8;
}

/// <summary>Maps a runtime <see cref="DType"/> to its <see cref="IWeightFormat"/> type argument.</summary>
public static class Formats
{
    /// <summary>A computation generic over the weight format.</summary>
    public interface IFunc<out T>
    {
        /// <summary>Runs with <typeparamref name="TW"/> as the format.</summary>
        T Invoke<TW>() where TW : struct, IWeightFormat;
    }

    /// <summary><paramref name="f"/> instantiated for <paramref name="type"/>.</summary>
    public static T With<T>(DType type, IFunc<T> f) => type switch
    {
        DType.BF16 => f.Invoke<Bf16Format>(),
        DType.F16 => f.Invoke<F16Format>(),
        DType.F32 => f.Invoke<F32Format>(),
        _ => throw new NotSupportedException($"no GPU kernels for {type} weights"),
    };
}
