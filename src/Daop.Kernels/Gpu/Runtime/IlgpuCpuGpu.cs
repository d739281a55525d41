using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;

namespace Daop.Kernels.Gpu;

/// <summary>
/// The GPU path on ILGPU's CPU accelerator: each kernel compiled by ILGPU at first use and run on OS threads (one per
/// GPU thread), device memory in host memory. Launches and copies complete before they return, so the stream is a
/// formality. This is how CI runs every GPU kernel without a GPU; it needs the JIT (ILGPU emits code at run time).
/// </summary>
public sealed class IlgpuCpuGpu : GpuContext
{
    static readonly ConditionalWeakTable<Accelerator, IlgpuCpuGpu> s_byAccelerator = new();
    static readonly Lock s_lock = new();

    readonly Context? _ownedContext;
    readonly Dictionary<string, Kernel> _kernels = [];
    readonly CpuStream _stream;

    IlgpuCpuGpu(Accelerator accelerator, Context? ownedContext)
    {
        if (accelerator.AcceleratorType != AcceleratorType.CPU)
            throw new ArgumentException($"{accelerator.Name} is not ILGPU's CPU accelerator: CUDA GPUs run through the CUDA driver (CudaGpu)", nameof(accelerator));
        Accelerator = accelerator;
        _ownedContext = ownedContext;
        _stream = new CpuStream(this);
    }

    /// <summary>The context over <paramref name="accelerator"/> (a CPU accelerator the caller keeps owning), one per accelerator.</summary>
    public static IlgpuCpuGpu For(Accelerator accelerator)
    {
        lock (s_lock)
        {
            if (!s_byAccelerator.TryGetValue(accelerator, out var g))
            {
                g = new IlgpuCpuGpu(accelerator, null);
                s_byAccelerator.Add(accelerator, g);
            }
            return g;
        }
    }

    /// <summary>A CPU accelerator of its own with <paramref name="multiprocessors"/> groups at once, disposed with the context.</summary>
    public static IlgpuCpuGpu Create(int multiprocessors)
    {
        var ctx = Context.Create(b => b.Optimize(OptimizationLevel.O1).CPU(GpuKernels.CpuDevice(multiprocessors: multiprocessors)));
        try
        {
            var acc = ctx.GetCPUDevice(0).CreateCPUAccelerator(ctx, CPUAcceleratorMode.Parallel);
            var g = new IlgpuCpuGpu(acc, ctx);
            lock (s_lock) s_byAccelerator.Add(acc, g);
            return g;
        }
        catch
        {
            ctx.Dispose();
            throw;
        }
    }

    /// <summary>The ILGPU accelerator the kernels run on.</summary>
    public Accelerator Accelerator { get; }

    /// <inheritdoc />
    public override string Name => "ilgpu-cpu";
    /// <inheritdoc />
    public override bool IsCpu => true;
    /// <inheritdoc />
    public override int WarpSize => Accelerator.WarpSize;
    /// <inheritdoc />
    public override int MaxThreadsPerGroup => Accelerator.MaxNumThreadsPerGroup;
    /// <inheritdoc />
    public override int Multiprocessors => Accelerator.NumMultiprocessors;
    /// <inheritdoc />
    public override long MemorySize => Accelerator.MemorySize;
    /// <inheritdoc />
    public override GpuStream DefaultStream => _stream;

    /// <inheritdoc />
    public override GpuStream CreateStream() => new CpuStream(this);

    /// <inheritdoc />
    protected internal override unsafe nint AllocateBytes(long bytes) => (nint)NativeMemory.AlignedAlloc((nuint)bytes, 256);

    /// <inheritdoc />
    protected internal override unsafe void FreeBytes(nint ptr) => NativeMemory.AlignedFree((void*)ptr);

    /// <inheritdoc />
    public override PinnedHostMemory AllocatePinned(long bytes) => new HostMemory(bytes);

    /// <inheritdoc />
    public override GpuKernel LoadKernel(string key, Delegate kernel)
    {
        // This library's kernels must be in the catalog (the CUDA build has them precompiled); kernels of other
        // assemblies (tests) can only ever run here.
        if (kernel.Method.DeclaringType?.Assembly == typeof(GpuKernelCatalog).Assembly) GpuKernelCatalog.Require(key);
        lock (_kernels)
        {
            if (!_kernels.TryGetValue(key, out var k)) _kernels[key] = k = Accelerator.LoadKernel(kernel.Method);
            return new CpuKernel(this, key, k);
        }
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (!disposing || _ownedContext is null) return;
        Accelerator.Dispose();
        _ownedContext.Dispose();
    }

    sealed class CpuKernel(IlgpuCpuGpu gpu, string key, Kernel kernel) : GpuKernel
    {
        readonly ParameterInfo[] _parameters = kernel.Launcher!.GetParameters();

        public override string Key => key;
        public override bool TakesBoxedArguments => true;

        public override void CheckArguments(ReadOnlySpan<int> sizes)
        {
            // The launcher's parameters: the kernel, the stream, the launch shape, then the kernel's own.
            int own = _parameters.Length - 3;
            if (sizes.Length != own)
                throw new InvalidOperationException($"kernel {key}: the launcher passes {sizes.Length} arguments, the kernel takes {own}");
            for (int i = 0; i < own; i++)
            {
                // As the PTX declares them: a view is { pointer, length }, anything else its unmanaged size.
                var t = _parameters[i + 3].ParameterType;
                int size = t.IsGenericType && t.GetGenericTypeDefinition() == typeof(ArrayView<>) ? 16 : RuntimeHelpers.SizeOf(t.TypeHandle);
                if (sizes[i] != size)
                    throw new InvalidOperationException($"kernel {key}: argument {i} is {sizes[i]} bytes in the launcher, {size} ({t.Name}) in the kernel");
            }
        }

        public override unsafe void Launch(GpuStream stream, KernelConfig config, void** args, int count) =>
            throw new NotSupportedException("the CPU accelerator takes boxed arguments");

        public override void LaunchBoxed(GpuStream stream, KernelConfig config, object[] args)
        {
            var all = new object[args.Length + 3];
            all[0] = kernel;
            all[1] = gpu.Accelerator.DefaultStream;
            all[2] = config;
            for (int i = 0; i < args.Length; i++)
                all[i + 3] = args[i] is IIlgpuArgument a ? a.ToIlgpu(gpu.Accelerator) : args[i];
            kernel.Launcher!.Invoke(null, all);
        }
    }

    sealed class CpuStream(IlgpuCpuGpu gpu) : GpuStream
    {
        public override GpuContext Gpu => gpu;
        public override void Synchronize() { }

        protected internal override unsafe void CopyHostToDevice(nint destination, void* source, long bytes, bool pinned) =>
            Buffer.MemoryCopy(source, (void*)destination, bytes, bytes);

        protected internal override unsafe void CopyDeviceToHost(void* destination, nint source, long bytes) =>
            Buffer.MemoryCopy((void*)source, destination, bytes, bytes);

        protected internal override unsafe void CopyDeviceToDevice(nint destination, nint source, long bytes) =>
            Buffer.MemoryCopy((void*)source, (void*)destination, bytes, bytes);

        protected internal override unsafe void Zero(nint destination, long bytes) => NativeMemory.Clear((void*)destination, (nuint)bytes);
    }

    sealed unsafe class HostMemory : PinnedHostMemory
    {
        nint _ptr;

        public HostMemory(long bytes)
        {
            Bytes = bytes;
            _ptr = (nint)NativeMemory.AlignedAlloc((nuint)Math.Max(1, bytes), 64);
        }

        public override nint Pointer => _ptr;
        public override long Bytes { get; }

        public override void Dispose()
        {
            var p = Interlocked.Exchange(ref _ptr, 0);
            if (p != 0) NativeMemory.AlignedFree((void*)p);
        }
    }
}
