using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;

namespace Daop.Kernels.Gpu;

/// <summary>
/// A run of <typeparamref name="T"/> in device memory: a device pointer and a length in elements. Its layout is the
/// kernel-parameter layout of an ILGPU <see cref="ArrayView{T}"/> in PTX (<c>{ T* ptr; long length; }</c>, 16 bytes),
/// so a precompiled kernel takes it as it is. On the ILGPU CPU accelerator the pointer is a host pointer.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
public readonly struct GpuView<T> : IIlgpuArgument where T : unmanaged
{
    /// <summary>Device address of the first element (0 for an empty view).</summary>
    public readonly nint Ptr;
    /// <summary>Elements in the view.</summary>
    public readonly long Length;

    /// <summary>The view of <paramref name="length"/> elements at <paramref name="ptr"/>.</summary>
    public GpuView(nint ptr, long length)
    {
        Ptr = ptr;
        Length = length;
    }

    /// <summary>True when the view points at memory.</summary>
    public bool IsValid => Ptr != 0;

    /// <summary>Bytes in the view.</summary>
    public unsafe long LengthInBytes => Length * sizeof(T);

    /// <summary>Elements [<paramref name="offset"/>, <paramref name="offset"/> + <paramref name="length"/>).</summary>
    public unsafe GpuView<T> SubView(long offset, long length)
    {
        if ((ulong)offset > (ulong)Length || (ulong)length > (ulong)(Length - offset))
            throw new ArgumentOutOfRangeException(nameof(length), $"sub-view [{offset}, {offset}+{length}) of a view of {Length} elements");
        return new GpuView<T>(Ptr + (nint)(offset * sizeof(T)), length);
    }

    /// <summary>Elements from <paramref name="offset"/> to the end.</summary>
    public GpuView<T> SubView(long offset) => SubView(offset, Length - offset);

    /// <summary>The same bytes as <typeparamref name="TU"/> (whole elements only).</summary>
    public unsafe GpuView<TU> Cast<TU>() where TU : unmanaged => new(Ptr, Length * sizeof(T) / sizeof(TU));

    /// <summary>Queues a copy of <paramref name="source"/> into the start of this view on <paramref name="stream"/>; the span may be reused when this returns.</summary>
    public unsafe void CopyFromCPU(GpuStream stream, ReadOnlySpan<T> source)
    {
        Check(source.Length);
        fixed (T* p = source) stream.CopyHostToDevice(Ptr, p, (long)source.Length * sizeof(T), pinned: false);
    }

    /// <summary>Queues a copy of <paramref name="count"/> elements from <paramref name="source"/>; the source may be reused when this returns.</summary>
    public unsafe void CopyFromCPU(GpuStream stream, ref T source, long count)
    {
        Check(count);
        fixed (T* p = &source) stream.CopyHostToDevice(Ptr, p, count * sizeof(T), pinned: false);
    }

    /// <summary>Queues a copy of <paramref name="count"/> elements from <paramref name="source"/>, which the caller keeps alive (and pinned) until the stream has run it.</summary>
    public unsafe void CopyFromCPUUnsafeAsync(GpuStream stream, ref T source, long count)
    {
        Check(count);
        stream.CopyHostToDevice(Ptr, Unsafe.AsPointer(ref source), count * sizeof(T), pinned: true);
    }

    /// <summary>Waits for <paramref name="stream"/>, then copies the start of this view into <paramref name="destination"/>.</summary>
    public unsafe void CopyToCPU(GpuStream stream, Span<T> destination)
    {
        Check(destination.Length);
        fixed (T* p = destination) stream.CopyDeviceToHost(p, Ptr, (long)destination.Length * sizeof(T));
    }

    /// <summary>Queues a copy of this view into the start of <paramref name="destination"/>.</summary>
    public unsafe void CopyTo(GpuStream stream, GpuView<T> destination)
    {
        if (destination.Length < Length)
            throw new ArgumentOutOfRangeException(nameof(destination), $"copy of {Length} elements into a view of {destination.Length}");
        if (Length > 0) stream.CopyDeviceToDevice(destination.Ptr, Ptr, Length * sizeof(T));
    }

    /// <summary>Queues zeroing the view.</summary>
    public unsafe void MemSetToZero(GpuStream stream)
    {
        if (Length > 0) stream.Zero(Ptr, Length * sizeof(T));
    }

    void Check(long count)
    {
        if ((ulong)count > (ulong)Length)
            throw new ArgumentOutOfRangeException(nameof(count), $"copy of {count} elements through a view of {Length}");
    }

    /// <summary>The device address of an ILGPU view (what tests on the CPU accelerator pass to the ops).</summary>
    public static implicit operator GpuView<T>(ArrayView<T> view) =>
        view.IsValid && view.Length > 0 ? new GpuView<T>(view.LoadEffectiveAddressAsPtr(), view.Length) : default;

    /// <summary>The device address of an ILGPU dense 1D view.</summary>
    public static implicit operator GpuView<T>(ArrayView1D<T, Stride1D.Dense> view) => (ArrayView<T>)view;

    /// <inheritdoc />
    unsafe object IIlgpuArgument.ToIlgpu(Accelerator accelerator) =>
        Ptr == 0 || Length == 0
            ? default(ArrayView<T>)
            : CPUMemoryBuffer.Create(accelerator, Ptr, Length, sizeof(T)).AsArrayView<T>(0, Length);
}

/// <summary>A kernel argument that the ILGPU CPU accelerator takes in another form (a <see cref="GpuView{T}"/> as an <see cref="ArrayView{T}"/>).</summary>
internal interface IIlgpuArgument
{
    /// <summary>The argument as the ILGPU launcher takes it.</summary>
    object ToIlgpu(Accelerator accelerator);
}
