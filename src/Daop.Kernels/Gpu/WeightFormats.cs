using System.Runtime.CompilerServices;
using ILGPU;

namespace Daop.Kernels.Gpu;

/// <summary>
/// A weight dtype as a kernel type argument: the row kernels are generic over a struct implementing this, so
/// ILGPU compiles one kernel per dtype with the widening and the elements per chunk as constants (called on
/// <c>default(TW)</c>; no dtype test per chunk). The block formats (<see cref="BlockChunks"/> &gt; 0) take the
/// block dot products of <see cref="BlockDots"/> inside the same kernels, over the device layout of
/// <see cref="BlockLayout"/>; their members below are constants or pure functions of a chunk.
/// </summary>
public interface IWeightFormat
{
    /// <summary>Kernel dtype code: the <see cref="DType"/> as an int (<see cref="GpuMath.BF16"/>, <see cref="GpuMath.F16"/>, ...).</summary>
    int Type { get; }

    /// <summary>Elements in one 16-byte value chunk: 8 (bf16, f16), 4 (fp32), 16 (Q8_0), 32 (Q4_0, MXFP4).</summary>
    int PerChunk { get; }

    /// <summary>The chunk widened to fp32 (elements past <see cref="PerChunk"/> are zero); block formats: <c>Widen(c, 0)</c>.</summary>
    Widened Widen(Chunk16 c);

    /// <summary>16-byte value chunks per 32-column block: 0 for the unblocked dtypes, 2 for Q8_0, 1 for Q4_0 and MXFP4.</summary>
    int BlockChunks { get; }

    /// <summary>Scale bytes per block in the row's scale region: 0 for the unblocked dtypes, 2 (fp16) or 1 (MXFP4's exponent).</summary>
    int ScaleBytes { get; }

    /// <summary>
    /// Block formats: parts 2q and 2q+1 of a value chunk (a part is 4 consecutive columns; <see cref="Widened.W0"/>..W3
    /// and W4..W7), each up to a power-of-two factor that the part's scale (<see cref="GroupScale"/>,
    /// <see cref="BlockScale"/>) carries, so value = widened × scale exactly. Unblocked dtypes: <see cref="Widen(Chunk16)"/>
    /// for q = 0.
    /// </summary>
    Widened Widen(Chunk16 c, int q);

    /// <summary>
    /// The scale of part <paramref name="k"/> of value chunk <paramref name="i"/> of full group <paramref name="g"/> (8
    /// blocks), from the group's scale chunk <paramref name="sc"/> (<see cref="BlockLayout"/>); 1 for the unblocked dtypes.
    /// </summary>
    float GroupScale(Chunk16 sc, int g, int i, int k);

    /// <summary>
    /// The scale of part <paramref name="k"/> of a chunk of block <paramref name="b"/> from the scale chunk holding the
    /// block's scale (blocks past the whole groups, single lookups); 1 for the unblocked dtypes.
    /// </summary>
    float BlockScale(Chunk16 sc, int b, int k);

    /// <summary>
    /// Whether a block's values carry a min: value = widened × scale + min (Q4_K's −dmin·m). The kernels add min·Σx per
    /// part only for these formats (a constant: the others' kernels have no such term).
    /// </summary>
    bool HasMin { get; }

    /// <summary>The min of part <paramref name="k"/> of value chunk <paramref name="i"/> of full group <paramref name="g"/> (as <see cref="GroupScale"/>); 0 without <see cref="HasMin"/>.</summary>
    float GroupMin(Chunk16 sc, int g, int i, int k);

    /// <summary>The min of part <paramref name="k"/> of a chunk of block <paramref name="b"/> (as <see cref="BlockScale"/>); 0 without <see cref="HasMin"/>.</summary>
    float BlockMin(Chunk16 sc, int b, int k);
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

    /// <inheritdoc />
    public readonly int BlockChunks => 0;

    /// <inheritdoc />
    public readonly int ScaleBytes => 0;

    /// <inheritdoc />
    public readonly Widened Widen(Chunk16 c, int q) => Widen(c);

    /// <inheritdoc />
    public readonly float GroupScale(Chunk16 sc, int g, int i, int k) => 1f;

    /// <inheritdoc />
    public readonly float BlockScale(Chunk16 sc, int b, int k) => 1f;

    /// <inheritdoc />
    public readonly bool HasMin => false;

    /// <inheritdoc />
    public readonly float GroupMin(Chunk16 sc, int g, int i, int k) => 0f;

    /// <inheritdoc />
    public readonly float BlockMin(Chunk16 sc, int b, int k) => 0f;
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

    /// <inheritdoc />
    public readonly int BlockChunks => 0;

    /// <inheritdoc />
    public readonly int ScaleBytes => 0;

    /// <inheritdoc />
    public readonly Widened Widen(Chunk16 c, int q) => Widen(c);

    /// <inheritdoc />
    public readonly float GroupScale(Chunk16 sc, int g, int i, int k) => 1f;

    /// <inheritdoc />
    public readonly float BlockScale(Chunk16 sc, int b, int k) => 1f;

    /// <inheritdoc />
    public readonly bool HasMin => false;

    /// <inheritdoc />
    public readonly float GroupMin(Chunk16 sc, int g, int i, int k) => 0f;

    /// <inheritdoc />
    public readonly float BlockMin(Chunk16 sc, int b, int k) => 0f;
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

    /// <inheritdoc />
    public readonly int BlockChunks => 0;

    /// <inheritdoc />
    public readonly int ScaleBytes => 0;

    /// <inheritdoc />
    public readonly Widened Widen(Chunk16 c, int q) => Widen(c);

    /// <inheritdoc />
    public readonly float GroupScale(Chunk16 sc, int g, int i, int k) => 1f;

    /// <inheritdoc />
    public readonly float BlockScale(Chunk16 sc, int b, int k) => 1f;

    /// <inheritdoc />
    public readonly bool HasMin => false;

    /// <inheritdoc />
    public readonly float GroupMin(Chunk16 sc, int g, int i, int k) => 0f;

    /// <inheritdoc />
    public readonly float BlockMin(Chunk16 sc, int b, int k) => 0f;
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
        DType.Q8_0 => f.Invoke<Q8_0Format>(),
        DType.Q4_0 => f.Invoke<Q4_0Format>(),
        DType.MXFP4 => f.Invoke<Mxfp4Format>(),
        DType.Q4_K => f.Invoke<Q4_KFormat>(),
        _ => throw new NotSupportedException($"no GPU kernels for {type} weights"),
    };
}
