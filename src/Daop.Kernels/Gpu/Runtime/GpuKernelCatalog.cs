using System.Collections.Frozen;
using Daop.Kernels.Generated;
using ILGPU;

namespace Daop.Kernels.Gpu;

/// <summary>
/// Every kernel this build can launch, by key: what the build step compiles to PTX and what a GPU may load. The catalog
/// is the engine's own walk over its launchers (every kernel set option that picks a different kernel, every weight
/// format, every generated expert shape) on a GPU that only records what it is asked to load. A key the engine asks for
/// that is not here fails at once on every GPU, the CPU accelerator included, so CI's tests catch a launch the
/// precompiled kernels would miss.
/// </summary>
public static class GpuKernelCatalog
{
    /// <summary>One kernel: its key, its ILGPU method (what the PTX is compiled from) and the byte size of each argument its launcher passes.</summary>
    public sealed record Entry(string Key, Delegate Kernel, int[] ArgumentSizes);

    static readonly Lazy<IReadOnlyList<Entry>> s_entries = new(Walk);
    static readonly Lazy<FrozenSet<string>> s_keys = new(() => s_entries.Value.Select(e => e.Key).ToFrozenSet());

    /// <summary>Every kernel of this build, in a stable order (by key).</summary>
    public static IReadOnlyList<Entry> Entries => s_entries.Value;

    /// <summary>Whether <paramref name="key"/> is a kernel of this build.</summary>
    public static bool Contains(string key) => s_keys.Value.Contains(key);

    /// <summary>Throws when <paramref name="key"/> is not in the catalog.</summary>
    public static void Require(string key)
    {
        if (!Contains(key))
            throw new InvalidOperationException($"kernel {key} is not in the GPU kernel catalog, so no build precompiles it: add it to the walk (GpuKernels.LoadAll)");
    }

    static IReadOnlyList<Entry> Walk()
    {
        var gpu = new RecordingGpu();
        // Options that pick other kernels: the GEMV unroll (the others change launch shapes only). Tensor cores on, so
        // the mma kernels are walked; the generated experts are every shape of this build.
        foreach (int unroll in new[] { 2, 4, 8 })
            GpuKernels.For(gpu, new GpuKernelOptions { GemvUnroll = unroll, TensorCores = true }).LoadAll();
        // The single-expert launcher of each generated shape (GeneratedGpuExpert.Forward).
        foreach (var e in GeneratedIlgpuKernels.All) e.LoadAll(gpu);
        return [.. gpu.Recorded.Values.OrderBy(e => e.Key, StringComparer.Ordinal)];
    }

    // A GPU that hands out fake device addresses and records the kernels it is asked for.
    sealed class RecordingGpu : GpuContext
    {
        long _next = 1 << 20;
        readonly RecordingStream _stream;

        public RecordingGpu() => _stream = new RecordingStream(this);

        public Dictionary<string, Entry> Recorded { get; } = [];

        public override string Name => "catalog";
        public override bool IsCpu => false;
        public override int WarpSize => 32;
        public override int MaxThreadsPerGroup => 1024;
        public override int Multiprocessors => 1;
        public override long MemorySize => 1L << 40;
        public override (int Major, int Minor) ComputeCapability => (8, 0);
        public override GpuStream DefaultStream => _stream;
        public override GpuStream CreateStream() => _stream;
        protected internal override nint AllocateBytes(long bytes) => (nint)Interlocked.Add(ref _next, (bytes + 255) / 256 * 256);
        protected internal override void FreeBytes(nint ptr) { }
        public override PinnedHostMemory AllocatePinned(long bytes) => throw new NotSupportedException("the catalog walk allocates no host memory");
        public override GpuKernel LoadKernel(string key, Delegate kernel) => new RecordedKernel(this, key, kernel);
        protected override void Dispose(bool disposing) { }

        sealed class RecordedKernel(RecordingGpu gpu, string key, Delegate kernel) : GpuKernel
        {
            public override string Key => key;
            public override bool TakesBoxedArguments => false;

            public override void CheckArguments(ReadOnlySpan<int> sizes)
            {
                var entry = new Entry(key, kernel, sizes.ToArray());
                lock (gpu.Recorded)
                {
                    if (gpu.Recorded.TryGetValue(key, out var seen) && seen.Kernel.Method != kernel.Method)
                        throw new InvalidOperationException($"kernel key {key} names two kernels: {seen.Kernel.Method.Name} and {kernel.Method.Name}");
                    gpu.Recorded[key] = entry;
                }
            }

            public override unsafe void Launch(GpuStream stream, KernelConfig config, void** args, int count) =>
                throw new NotSupportedException("the catalog walk launches nothing");

            public override void LaunchBoxed(GpuStream stream, KernelConfig config, object[] args) =>
                throw new NotSupportedException("the catalog walk launches nothing");
        }

        sealed class RecordingStream(RecordingGpu gpu) : GpuStream
        {
            public override GpuContext Gpu => gpu;
            public override void Synchronize() { }
            protected internal override unsafe void CopyHostToDevice(nint destination, void* source, long bytes, bool pinned) { }
            protected internal override unsafe void CopyDeviceToHost(void* destination, nint source, long bytes) { }
            protected internal override void CopyDeviceToDevice(nint destination, nint source, long bytes) { }
            protected internal override void Zero(nint destination, long bytes) { }
        }
    }
}
