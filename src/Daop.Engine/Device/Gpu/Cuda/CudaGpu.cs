using System.Runtime.InteropServices;
using System.Text;
using Daop.Kernels.Gpu;
using ILGPU;
using static Daop.Engine.Device.Gpu.Cuda.CudaApi;

namespace Daop.Engine.Device.Gpu.Cuda;

/// <summary>
/// One NVIDIA GPU through the CUDA driver API, with the kernels this build compiled to PTX: no ILGPU at run time, so
/// the JIT tool and the NativeAOT binary drive the GPU the same way. Works in the device's primary context (the one
/// the CUDA runtime and other libraries share), bound on each calling thread as needed, so every member may be called
/// from any thread.
/// </summary>
public sealed unsafe class CudaGpu : GpuContext
{
    static long s_nextId;
    // The CudaGpu whose context this thread has current: binding costs a driver call only when it changes.
    [ThreadStatic] static long t_boundId;

    readonly long _id = Interlocked.Increment(ref s_nextId);
    readonly int _device;
    readonly nint _context;
    readonly Func<string, PtxImage?> _images;
    readonly Dictionary<string, DriverKernel> _kernels = [];
    readonly HashSet<DriverStream> _streams = [];
    readonly DriverStream _defaultStream;
    volatile bool _disposed;

    /// <summary>GPUs the CUDA driver sees: 0 when there is no driver or no device (never throws).</summary>
    public static int DeviceCount()
    {
        if (!TryLoad(out _)) return 0;
        int n;
        return cuDeviceGetCount(&n) == Success ? n : 0;
    }

    /// <summary>
    /// The GPU of ordinal <paramref name="ordinal"/>, loading each kernel's PTX from <paramref name="kernels"/> (by
    /// catalog key; null for a kernel this build lacks) when first asked for. Throws
    /// <see cref="InvalidOperationException"/> when the driver is missing or the ordinal names no GPU, and
    /// <see cref="CudaException"/> when the driver fails (CUDA_ERROR_NO_DEVICE from cuInit on a machine without one).
    /// </summary>
    public static CudaGpu Create(int ordinal, Func<string, PtxImage?> kernels)
    {
        ArgumentNullException.ThrowIfNull(kernels);
        CudaApi.Load();
        int count;
        Check(cuDeviceGetCount(&count), "cuDeviceGetCount");
        if (ordinal < 0 || ordinal >= count)
            throw new InvalidOperationException(count == 0
                ? "the CUDA driver sees no GPU"
                : $"CUDA device {ordinal} does not exist: the driver sees {count} (ordinals 0 to {count - 1})");
        int device;
        Check(cuDeviceGet(&device, ordinal), "cuDeviceGet");
        nint context;
        Check(cuDevicePrimaryCtxRetain(&context, device), "cuDevicePrimaryCtxRetain");
        try
        {
            return new CudaGpu(ordinal, device, context, kernels);
        }
        catch
        {
            cuDevicePrimaryCtxRelease_v2(device);
            throw;
        }
    }

    CudaGpu(int ordinal, int device, nint context, Func<string, PtxImage?> images)
    {
        Ordinal = ordinal;
        _device = device;
        _context = context;
        _images = images;
        Bind();

        const int NameBytes = 256;
        byte* name = stackalloc byte[NameBytes];
        Check(cuDeviceGetName(name, NameBytes, device), "cuDeviceGetName");
        Name = Marshal.PtrToStringUTF8((nint)name) ?? $"CUDA device {ordinal}";
        nuint total;
        Check(cuDeviceTotalMem_v2(&total, device), "cuDeviceTotalMem_v2");
        MemorySize = (long)total;
        WarpSize = Attribute(AttributeWarpSize);
        MaxThreadsPerGroup = Attribute(AttributeMaxThreadsPerBlock);
        Multiprocessors = Attribute(AttributeMultiprocessorCount);
        ComputeCapability = (Attribute(AttributeComputeCapabilityMajor), Attribute(AttributeComputeCapabilityMinor));
        // A stream of our own rather than ILGPU's legacy default stream (handle 0): non-blocking like ILGPU's other
        // streams, so it never serialises with the copy stream, and unlike the legacy stream it can be captured into a
        // CUDA graph.
        _defaultStream = NewStream(isDefault: true);
    }

    int Attribute(int attribute)
    {
        int v;
        Check(cuDeviceGetAttribute(&v, attribute, _device), "cuDeviceGetAttribute");
        return v;
    }

    /// <summary>The device's ordinal among the driver's GPUs.</summary>
    public int Ordinal { get; }

    /// <summary>Compute capability (9.0 on an H100).</summary>
    public override (int Major, int Minor) ComputeCapability { get; }

    /// <inheritdoc />
    public override string Name { get; }
    /// <inheritdoc />
    public override bool IsCpu => false;
    /// <inheritdoc />
    public override int WarpSize { get; }
    /// <inheritdoc />
    public override int MaxThreadsPerGroup { get; }
    /// <inheritdoc />
    public override int Multiprocessors { get; }
    /// <inheritdoc />
    public override long MemorySize { get; }
    /// <inheritdoc />
    public override GpuStream DefaultStream => _defaultStream;

    /// <summary>
    /// Makes this GPU's context current on the calling thread (cuCtxSetCurrent), always: call it after code outside
    /// this class changed the thread's context. Members bind by themselves and skip the call when this thread's last
    /// bind was theirs.
    /// </summary>
    public override void Bind()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        Check(cuCtxSetCurrent(_context), "cuCtxSetCurrent");
        t_boundId = _id;
    }

    void EnsureBound()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (t_boundId != _id) Bind();
    }

    /// <inheritdoc />
    public override (long Free, long Total) MemoryInfo()
    {
        EnsureBound();
        nuint free, total;
        Check(cuMemGetInfo_v2(&free, &total), "cuMemGetInfo_v2");
        return ((long)free, (long)total);
    }

    /// <inheritdoc />
    public override GpuStream CreateStream() => NewStream(isDefault: false);

    DriverStream NewStream(bool isDefault)
    {
        EnsureBound();
        nint h;
        // CU_STREAM_NON_BLOCKING as ILGPU's CreateStream: no implicit synchronisation with the legacy default stream.
        Check(cuStreamCreate(&h, StreamNonBlocking), "cuStreamCreate");
        var s = new DriverStream(this, h, isDefault);
        lock (_streams) _streams.Add(s);
        return s;
    }

    DriverStream Own(GpuStream stream) =>
        stream is DriverStream s && s.Owner == this ? s : throw new ArgumentException($"the stream is not one of {Name}'s (CUDA device {Ordinal})", nameof(stream));

    /// <inheritdoc />
    protected override nint AllocateBytes(long bytes)
    {
        EnsureBound();
        nint p;
        int rc = cuMemAlloc_v2(&p, (nuint)bytes);
        if (rc != Success) throw new CudaException("cuMemAlloc_v2", rc, $"allocating {bytes} bytes on {Name}");
        return p;
    }

    /// <inheritdoc />
    protected override void FreeBytes(nint ptr)
    {
        // Releasing the context at Dispose freed its memory with it.
        if (_disposed) return;
        EnsureBound();
        Check(cuMemFree_v2(ptr), "cuMemFree_v2");
    }

    /// <summary>Page-locked host memory (cuMemHostAlloc, portable: pinned for every context), page aligned.</summary>
    public override PinnedHostMemory AllocatePinned(long bytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        EnsureBound();
        void* p;
        int rc = cuMemHostAlloc(&p, (nuint)Math.Max(1, bytes), MemHostAllocPortable);
        if (rc != Success) throw new CudaException("cuMemHostAlloc", rc, $"pinning {bytes} bytes of host memory");
        return new Pinned(this, (nint)p, bytes);
    }

    /// <summary>
    /// The kernel <paramref name="key"/>: its PTX from the build's images, JIT-compiled by the driver once per key
    /// (cuModuleLoadDataEx; the driver caches the result on disk). <paramref name="kernel"/> is not used (it is what
    /// the ILGPU CPU accelerator compiles). Throws <see cref="InvalidOperationException"/> when the build has no PTX
    /// for the key and <see cref="CudaException"/> with the JIT's log when the driver rejects it.
    /// </summary>
    public override GpuKernel LoadKernel(string key, Delegate kernel)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        // No catalog check: a key outside the catalog has no PTX either, and the images alone say what this build has.
        lock (_kernels)
        {
            if (_kernels.TryGetValue(key, out var k)) return k;
            var image = _images(key) ?? throw new InvalidOperationException($"kernel {key} was not compiled into this build");
            k = LoadImage(key, image);
            _kernels[key] = k;
            return k;
        }
    }

    DriverKernel LoadImage(string key, PtxImage image)
    {
        EnsureBound();
        byte[] ptx = new byte[Encoding.UTF8.GetByteCount(image.Ptx) + 1]; // NUL-terminated, as the driver reads PTX
        Encoding.UTF8.GetBytes(image.Ptx, ptx);
        const int LogBytes = 16 << 10;
        byte[] log = new byte[LogBytes];
        nint module, function;
        fixed (byte* pPtx = ptx, pLog = log)
        {
            int* options = stackalloc int[] { JitErrorLogBuffer, JitErrorLogBufferSizeBytes };
            void** values = stackalloc void*[] { pLog, (void*)LogBytes };
            int rc = cuModuleLoadDataEx(&module, pPtx, 2, options, values);
            if (rc != Success)
            {
                var text = Marshal.PtrToStringUTF8((nint)pLog)?.Trim();
                throw new CudaException("cuModuleLoadDataEx", rc,
                    $"loading kernel {key}" + (string.IsNullOrEmpty(text) ? "" : ":\n" + text));
            }
        }
        byte[] entry = new byte[Encoding.UTF8.GetByteCount(image.EntryName) + 1];
        Encoding.UTF8.GetBytes(image.EntryName, entry);
        fixed (byte* pEntry = entry)
        {
            int rc = cuModuleGetFunction(&function, module, pEntry);
            if (rc != Success)
            {
                cuModuleUnload(module);
                throw new CudaException("cuModuleGetFunction", rc, $"entry {image.EntryName} of kernel {key}");
            }
        }
        return new DriverKernel(this, key, module, function, image.ParameterSizes);
    }

    /// <summary>
    /// Null when the launcher's argument sizes match the kernel's parameter sizes (count and each size), else the
    /// message saying which differs.
    /// </summary>
    internal static string? CompareParameterSizes(string key, ReadOnlySpan<int> launcher, ReadOnlySpan<int> kernel)
    {
        if (launcher.Length != kernel.Length)
            return $"kernel {key}: the launcher passes {launcher.Length} arguments, the PTX entry takes {kernel.Length}";
        for (int i = 0; i < launcher.Length; i++)
            if (launcher[i] != kernel[i])
                return $"kernel {key}: parameter {i} is {launcher[i]} bytes in the launcher, {kernel[i]} in the PTX entry";
        return null;
    }

    /// <summary>
    /// Records what <paramref name="body"/> queues on <paramref name="stream"/> into a CUDA graph, without running it,
    /// and instantiates it: launching the graph replays every launch and copy at the cost of one driver call. The body
    /// may only queue work on <paramref name="stream"/> (launches, device copies, copies from pinned memory): anything
    /// that waits (a copy to the host, Synchronize, allocation) fails the capture. Capture is thread-local, so other
    /// threads keep using the GPU meanwhile.
    /// </summary>
    public CudaGraph Capture(GpuStream stream, Action body)
    {
        nint graph = CaptureGraph(stream, body);
        nint exec;
        int rc = cuGraphInstantiateWithFlags(&exec, graph, 0);
        // The executable graph is a copy: the graph itself is not needed once instantiated (or failed to be).
        cuGraphDestroy(graph);
        Check(rc, "cuGraphInstantiateWithFlags");
        return new CudaGraph(this, exec);
    }

    /// <summary>
    /// Captures <paramref name="body"/> again into <paramref name="graph"/>: the executable graph is updated in place
    /// when the new capture has the same shape (same kernels in the same order; arguments may differ, as a decode step's
    /// position does), which costs far less than instantiating; otherwise it is instantiated anew.
    /// </summary>
    public void Recapture(CudaGraph graph, GpuStream stream, Action body)
    {
        ArgumentNullException.ThrowIfNull(graph);
        nint captured = CaptureGraph(stream, body);
        try
        {
            if (graph.Exec != 0 && s_execUpdate)
            {
                GraphExecUpdateResultInfo info;
                try
                {
                    if (cuGraphExecUpdate_v2(graph.Exec, captured, &info) == Success) return;
                }
                catch (EntryPointNotFoundException)
                {
                    s_execUpdate = false; // a driver before CUDA 12: instantiate every time
                }
            }
            nint exec;
            Check(cuGraphInstantiateWithFlags(&exec, captured, 0), "cuGraphInstantiateWithFlags");
            graph.Replace(exec);
        }
        finally
        {
            cuGraphDestroy(captured);
        }
    }

    static bool s_execUpdate = true;

    nint CaptureGraph(GpuStream stream, Action body)
    {
        ArgumentNullException.ThrowIfNull(body);
        var s = Own(stream);
        EnsureBound();
        Check(cuStreamBeginCapture_v2(s.Handle, CaptureModeThreadLocal), "cuStreamBeginCapture_v2");
        nint graph = 0;
        try
        {
            body();
        }
        catch
        {
            // End the capture so the stream works again; what was captured is thrown away.
            cuStreamEndCapture(s.Handle, &graph);
            if (graph != 0) cuGraphDestroy(graph);
            throw;
        }
        Check(cuStreamEndCapture(s.Handle, &graph), "cuStreamEndCapture");
        return graph;
    }

    internal void LaunchGraph(nint exec, GpuStream stream)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var s = Own(stream);
        EnsureBound();
        Check(cuGraphLaunch(exec, s.Handle), "cuGraphLaunch");
    }

    internal void DestroyGraph(nint exec)
    {
        if (_disposed) return; // gone with the context
        EnsureBound();
        cuGraphExecDestroy(exec);
    }

    /// <summary>Waits for the GPU to finish everything queued, then frees the streams and kernels and releases the primary context.</summary>
    protected override void Dispose(bool disposing)
    {
        if (_disposed) return;
        _disposed = true;
        // Errors are ignored from here on: teardown frees what it can.
        cuCtxSetCurrent(_context);
        t_boundId = _id;
        cuCtxSynchronize();
        lock (_kernels)
        {
            foreach (var k in _kernels.Values) cuModuleUnload(k.Module);
            _kernels.Clear();
        }
        lock (_streams)
        {
            foreach (var s in _streams) cuStreamDestroy_v2(s.Handle);
            _streams.Clear();
        }
        cuDevicePrimaryCtxRelease_v2(_device);
        t_boundId = 0;
    }

    sealed class DriverStream(CudaGpu gpu, nint handle, bool isDefault) : GpuStream
    {
        public CudaGpu Owner => gpu;
        public override GpuContext Gpu => gpu;
        public override nint Handle => handle;

        public override void Synchronize()
        {
            gpu.EnsureBound();
            Check(cuStreamSynchronize(handle), "cuStreamSynchronize");
        }

        // From pageable memory the driver stages the source before returning, so the caller may reuse it at once.
        protected override void CopyHostToDevice(nint destination, void* source, long bytes, bool pinned)
        {
            if (bytes == 0) return;
            gpu.EnsureBound();
            Check(cuMemcpyHtoDAsync_v2(destination, source, (nuint)bytes, handle), "cuMemcpyHtoDAsync_v2");
        }

        protected override void CopyDeviceToHost(void* destination, nint source, long bytes)
        {
            if (bytes == 0) return;
            gpu.EnsureBound();
            Check(cuMemcpyDtoHAsync_v2(destination, source, (nuint)bytes, handle), "cuMemcpyDtoHAsync_v2");
            Check(cuStreamSynchronize(handle), "cuStreamSynchronize");
        }

        protected override void CopyDeviceToDevice(nint destination, nint source, long bytes)
        {
            if (bytes == 0) return;
            gpu.EnsureBound();
            Check(cuMemcpyDtoDAsync_v2(destination, source, (nuint)bytes, handle), "cuMemcpyDtoDAsync_v2");
        }

        protected override void Zero(nint destination, long bytes)
        {
            if (bytes == 0) return;
            gpu.EnsureBound();
            Check(cuMemsetD8Async(destination, 0, (nuint)bytes, handle), "cuMemsetD8Async");
        }

        public override void Dispose()
        {
            // The default stream lives as long as the GPU; a stream the GPU's Dispose already destroyed is gone.
            if (isDefault || gpu._disposed) return;
            lock (gpu._streams)
                if (!gpu._streams.Remove(this)) return;
            gpu.EnsureBound();
            cuStreamDestroy_v2(handle);
            base.Dispose();
        }
    }

    sealed class DriverKernel(CudaGpu gpu, string key, nint module, nint function, int[] sizes) : GpuKernel
    {
        public nint Module => module;
        public override string Key => key;
        public override bool TakesBoxedArguments => false;

        public override void CheckArguments(ReadOnlySpan<int> launcher)
        {
            if (CompareParameterSizes(key, launcher, sizes) is { } message) throw new InvalidOperationException(message);
        }

        public override void Launch(GpuStream stream, KernelConfig config, void** args, int count)
        {
            if (count != sizes.Length)
                throw new ArgumentException($"kernel {key}: {count} arguments for {sizes.Length} parameters", nameof(count));
            if (config.UsesDynamicSharedMemory)
                throw new NotSupportedException($"kernel {key}: dynamic shared memory (the precompiled kernels use none)");
            var s = gpu.Own(stream);
            var (grid, group) = config.ToDimensions();
            // An empty grid runs nothing, as on the CPU accelerator, where the driver would call it invalid.
            if (grid.LongSize == 0 || group.LongSize == 0) return;
            gpu.EnsureBound();
            Check(cuLaunchKernel(function, (uint)grid.X, (uint)grid.Y, (uint)grid.Z, (uint)group.X, (uint)group.Y, (uint)group.Z,
                0, s.Handle, args, null), "cuLaunchKernel");
        }

        public override void LaunchBoxed(GpuStream stream, KernelConfig config, object[] args) =>
            throw new NotSupportedException($"kernel {key}: the CUDA driver takes the arguments' bytes (Launch), not boxed arguments");
    }

    sealed class Pinned(CudaGpu gpu, nint pointer, long bytes) : PinnedHostMemory
    {
        nint _pointer = pointer;

        public override nint Pointer => _pointer;
        public override long Bytes => bytes;

        public override void Dispose()
        {
            var p = Interlocked.Exchange(ref _pointer, 0);
            if (p == 0 || gpu._disposed) return; // freed with the context
            gpu.EnsureBound();
            cuMemFreeHost((void*)p);
        }
    }
}

/// <summary>
/// A CUDA graph captured by <see cref="CudaGpu.Capture"/>: the launches and copies it recorded, replayed by
/// <see cref="Launch"/> with the arguments they had at capture (the same device pointers, the same scalars).
/// </summary>
public sealed class CudaGraph : IDisposable
{
    readonly CudaGpu _gpu;
    nint _exec;

    internal CudaGraph(CudaGpu gpu, nint exec)
    {
        _gpu = gpu;
        _exec = exec;
    }

    /// <summary>An empty graph for <see cref="CudaGpu.Recapture"/> to fill.</summary>
    public CudaGraph(CudaGpu gpu) => _gpu = gpu;

    internal nint Exec => _exec;

    internal void Replace(nint exec)
    {
        var old = Interlocked.Exchange(ref _exec, exec);
        if (old != 0) _gpu.DestroyGraph(old);
    }

    /// <summary>Queues the whole graph on <paramref name="stream"/> (a stream of the GPU that captured it).</summary>
    public void Launch(GpuStream stream)
    {
        ObjectDisposedException.ThrowIf(_exec == 0, this);
        _gpu.LaunchGraph(_exec, stream);
    }

    /// <summary>Frees the executable graph; a second call does nothing.</summary>
    public void Dispose()
    {
        var e = Interlocked.Exchange(ref _exec, 0);
        if (e != 0) _gpu.DestroyGraph(e);
    }
}
