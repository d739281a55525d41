using ILGPU;

namespace Daop.Kernels.Gpu;

/// <summary>
/// One GPU as the engine drives it: device memory, streams, page-locked host memory and the kernels of this build.
/// Two implementations: the CUDA driver with the kernels compiled to PTX at build time (<c>CudaGpu</c> in Daop.Engine,
/// the same in the JIT tool and the NativeAOT binary), and <see cref="IlgpuCpuGpu"/>, ILGPU's CPU accelerator running
/// the same kernels on OS threads (CI and tests).
/// </summary>
public abstract class GpuContext : IDisposable
{
    /// <summary>Name for logs: the GPU's name, or "ilgpu-cpu".</summary>
    public abstract string Name { get; }
    /// <summary>True on the ILGPU CPU accelerator (no real GPU; launches and copies complete before they return).</summary>
    public abstract bool IsCpu { get; }
    /// <summary>Threads per warp.</summary>
    public abstract int WarpSize { get; }
    /// <summary>Most threads per group.</summary>
    public abstract int MaxThreadsPerGroup { get; }
    /// <summary>Multiprocessors (SMs).</summary>
    public abstract int Multiprocessors { get; }
    /// <summary>CUDA compute capability (major, minor); (0, 0) on the CPU accelerator.</summary>
    public virtual (int Major, int Minor) ComputeCapability => (0, 0);
    /// <summary>Bytes of device memory.</summary>
    public abstract long MemorySize { get; }
    /// <summary>The stream work goes to unless a caller made its own.</summary>
    public abstract GpuStream DefaultStream { get; }

    /// <summary>A new stream (the caller disposes it).</summary>
    public abstract GpuStream CreateStream();

    /// <summary>Makes this GPU current on the calling thread (the CUDA driver's context is per thread).</summary>
    public virtual void Bind() { }

    /// <summary>Bytes of device memory free and in all, as the driver reports them.</summary>
    public virtual (long Free, long Total) MemoryInfo() => (MemorySize, MemorySize);

    /// <summary>Allocates <paramref name="bytes"/> of device memory (uninitialised), 256-byte aligned.</summary>
    protected internal abstract nint AllocateBytes(long bytes);

    /// <summary>Frees memory from <see cref="AllocateBytes"/>.</summary>
    protected internal abstract void FreeBytes(nint ptr);

    /// <summary>An array of <paramref name="length"/> elements in device memory (uninitialised).</summary>
    public unsafe GpuArray<T> Allocate1D<T>(long length) where T : unmanaged
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        long bytes = checked(length * sizeof(T));
        return new GpuArray<T>(this, bytes == 0 ? 0 : AllocateBytes(bytes), length);
    }

    /// <summary>An array in device memory holding a copy of <paramref name="data"/> (waits for the copy).</summary>
    public GpuArray<T> Allocate1D<T>(T[] data) where T : unmanaged
    {
        var a = Allocate1D<T>(data.Length);
        a.View.CopyFromCPU(DefaultStream, data);
        DefaultStream.Synchronize();
        return a;
    }

    /// <summary>Waits for everything queued on the default stream.</summary>
    public void Synchronize() => DefaultStream.Synchronize();

    /// <summary>
    /// Host memory the GPU copies from asynchronously (page-locked on CUDA), <paramref name="bytes"/> long, 64-byte
    /// aligned, uninitialised.
    /// </summary>
    public abstract PinnedHostMemory AllocatePinned(long bytes);

    /// <summary>
    /// The kernel <paramref name="key"/> of this build; <paramref name="kernel"/> is its ILGPU method (what the CPU
    /// accelerator compiles; the CUDA driver loads the PTX compiled from it at build time under the same key).
    /// </summary>
    public abstract GpuKernel LoadKernel(string key, Delegate kernel);

    /// <summary>Frees everything the context holds.</summary>
    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Releases the GPU's resources.</summary>
    protected abstract void Dispose(bool disposing);
}

/// <summary>An ordered queue of copies and kernel launches on one GPU.</summary>
public abstract class GpuStream : IDisposable
{
    /// <summary>The GPU this stream belongs to.</summary>
    public abstract GpuContext Gpu { get; }

    /// <summary>The driver's handle (a CUstream; 0 on the CPU accelerator and for CUDA's legacy default stream).</summary>
    public virtual nint Handle => 0;

    /// <summary>Waits until everything queued so far has run.</summary>
    public abstract void Synchronize();

    /// <summary>Queues a host-to-device copy; with <paramref name="pinned"/> false the source may be reused when this returns.</summary>
    protected internal abstract unsafe void CopyHostToDevice(nint destination, void* source, long bytes, bool pinned);

    /// <summary>Waits for the stream, then copies device memory to the host.</summary>
    protected internal abstract unsafe void CopyDeviceToHost(void* destination, nint source, long bytes);

    /// <summary>Queues a device-to-device copy.</summary>
    protected internal abstract void CopyDeviceToDevice(nint destination, nint source, long bytes);

    /// <summary>Queues zeroing device memory.</summary>
    protected internal abstract void Zero(nint destination, long bytes);

    /// <summary>Frees the stream (not the default one).</summary>
    public virtual void Dispose() => GC.SuppressFinalize(this);

    /// <summary>The default stream of the ILGPU CPU accelerator's context (what tests that drive the kernels directly pass).</summary>
    public static implicit operator GpuStream(ILGPU.Runtime.AcceleratorStream stream) => IlgpuCpuGpu.For(stream.Accelerator).DefaultStream;
}

/// <summary>Device memory the engine allocated and frees, of any element type.</summary>
public abstract class GpuAllocation : IDisposable
{
    /// <summary>Bytes held.</summary>
    public abstract long LengthInBytes { get; }

    /// <summary>Frees the memory; a second call does nothing.</summary>
    public abstract void Dispose();
}

/// <summary>An array in device memory, freed on <see cref="Dispose"/>.</summary>
public sealed class GpuArray<T> : GpuAllocation where T : unmanaged
{
    readonly GpuContext _gpu;
    nint _ptr;

    internal GpuArray(GpuContext gpu, nint ptr, long length)
    {
        _gpu = gpu;
        _ptr = ptr;
        Length = length;
    }

    /// <summary>Elements in the array.</summary>
    public long Length { get; }

    /// <inheritdoc />
    public override unsafe long LengthInBytes => Length * sizeof(T);

    /// <summary>The whole array.</summary>
    public GpuView<T> View
    {
        get
        {
            ObjectDisposedException.ThrowIf(_ptr == 0 && Length > 0, this);
            return new GpuView<T>(_ptr, Length);
        }
    }

    /// <summary>Queues zeroing the array on <paramref name="stream"/>.</summary>
    public void MemSetToZero(GpuStream stream) => View.MemSetToZero(stream);

    /// <summary>Zeroes the array and waits.</summary>
    public void MemSetToZero()
    {
        View.MemSetToZero(_gpu.DefaultStream);
        _gpu.DefaultStream.Synchronize();
    }

    /// <summary>Copies the whole array to a new host array (waits for the default stream).</summary>
    public T[] GetAsArray1D()
    {
        var a = new T[Length];
        View.CopyToCPU(_gpu.DefaultStream, a);
        return a;
    }

    /// <inheritdoc />
    public override void Dispose()
    {
        var p = Interlocked.Exchange(ref _ptr, 0);
        if (p != 0) _gpu.FreeBytes(p);
    }
}

/// <summary>Host memory the GPU reads asynchronously (page-locked on CUDA), freed on <see cref="Dispose"/>.</summary>
public abstract class PinnedHostMemory : IDisposable
{
    /// <summary>Start of the memory.</summary>
    public abstract nint Pointer { get; }
    /// <summary>Bytes held.</summary>
    public abstract long Bytes { get; }

    /// <summary>The memory as <typeparamref name="T"/> (whole elements).</summary>
    public unsafe Span<T> AsSpan<T>() where T : unmanaged => new((void*)Pointer, checked((int)(Bytes / sizeof(T))));

    /// <summary>Frees the memory; a second call does nothing.</summary>
    public abstract void Dispose();
}

/// <summary>
/// One kernel of this build, loaded on one GPU. Launch it through a typed launcher from <see cref="KernelSource"/>:
/// every argument is a <see cref="GpuView{T}"/> or an unmanaged struct, in the kernel's parameter order.
/// </summary>
public abstract class GpuKernel
{
    /// <summary>The kernel's key in this build's catalog (<see cref="GpuKernelCatalog"/>).</summary>
    public abstract string Key { get; }

    /// <summary>True when the arguments go to <see cref="LaunchBoxed"/> (the ILGPU CPU accelerator) rather than <see cref="Launch"/>.</summary>
    public abstract bool TakesBoxedArguments { get; }

    /// <summary>Throws when the launcher's argument sizes (bytes, in order) do not match the kernel's parameters.</summary>
    public abstract void CheckArguments(ReadOnlySpan<int> sizes);

    /// <summary>Queues the kernel on <paramref name="stream"/>; <paramref name="args"/> points at each argument's bytes.</summary>
    public abstract unsafe void Launch(GpuStream stream, KernelConfig config, void** args, int count);

    /// <summary>Runs the kernel with boxed arguments (the CPU accelerator's launcher takes objects).</summary>
    public abstract void LaunchBoxed(GpuStream stream, KernelConfig config, object[] args);
}
