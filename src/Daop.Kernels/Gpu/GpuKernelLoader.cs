using System.Runtime.CompilerServices;

namespace Daop.Kernels.Gpu;

/// <summary>
/// The kernels of one GPU, each loaded once by its catalog key and shared by every kernel set (<see cref="GpuKernels"/>,
/// one per <see cref="GpuKernelOptions"/>) made on it, with the GPU's launch limits and placeholder buffers for unused
/// kernel parameters.
/// </summary>
internal sealed class GpuKernelLoader
{
    static readonly ConditionalWeakTable<GpuContext, GpuKernelLoader> s_cache = new();
    static readonly Lock s_lock = new();

    readonly Dictionary<string, Delegate> _kernels = [];
    readonly GpuArray<float> _dummyF;
    readonly GpuArray<int> _dummyI;
    readonly GpuArray<Float4> _dummy4;

    GpuKernelLoader(GpuContext gpu)
    {
        Gpu = gpu;
        IsCpu = gpu.IsCpu;
        // On the CPU accelerator every thread is an OS thread: one group per multiprocessor.
        GroupSize = IsCpu ? gpu.MaxThreadsPerGroup : Math.Min(128, gpu.MaxThreadsPerGroup) / gpu.WarpSize * gpu.WarpSize;
        MaxGroups = Math.Max(1, gpu.Multiprocessors) * (IsCpu ? 1 : 64);
        _dummyF = gpu.Allocate1D<float>(4);
        _dummyI = gpu.Allocate1D<int>(4);
        _dummy4 = gpu.Allocate1D<Float4>(1);
    }

    /// <summary>The loader of <paramref name="gpu"/>, made on first request.</summary>
    public static GpuKernelLoader For(GpuContext gpu)
    {
        lock (s_lock)
        {
            if (!s_cache.TryGetValue(gpu, out var l))
            {
                l = new GpuKernelLoader(gpu);
                s_cache.Add(gpu, l);
            }
            return l;
        }
    }

    public GpuContext Gpu { get; }
    /// <summary>True on the ILGPU CPU accelerator (the CI stand-in for a GPU).</summary>
    public bool IsCpu { get; }
    /// <summary>Threads per group of the row and element-wise kernels.</summary>
    public int GroupSize { get; }
    /// <summary>Most groups a grid-stride launch asks for.</summary>
    public int MaxGroups { get; }

    /// <summary>Stand-ins for unused float, int and Float4 parameters.</summary>
    public GpuView<float> DummyF => _dummyF.View;
    public GpuView<int> DummyI => _dummyI.View;
    public GpuView<Float4> Dummy4 => _dummy4.View;

    /// <summary>The kernel <paramref name="key"/>, bound by <paramref name="bind"/> the first time any kernel set asks.</summary>
    public TLaunch Load<TLaunch>(string key, Func<KernelSource, TLaunch> bind) where TLaunch : Delegate
    {
        lock (_kernels)
        {
            if (!_kernels.TryGetValue(key, out var d)) _kernels[key] = d = bind(new KernelSource(Gpu, key));
            return (TLaunch)d;
        }
    }

    /// <summary>The catalog key of kernel <paramref name="name"/> instantiated for weight formats t1 (and t2).</summary>
    public static string TypedKey(string name, DType t1, DType t2) => t1 == t2 ? $"{name}.{t1}" : $"{name}.{t1}.{t2}";

    /// <summary>The kernel <paramref name="name"/> instantiated for the weight formats of t1 (and t2), loaded on first use.</summary>
    public TLaunch Typed<TLaunch>(string name, DType t1, DType t2, IKernelMaker<TLaunch> maker) where TLaunch : Delegate
    {
        var key = TypedKey(name, t1, t2);
        lock (_kernels)
        {
            if (!_kernels.TryGetValue(key, out var d)) _kernels[key] = d = Formats.With(t1, new Outer<TLaunch>(new KernelSource(Gpu, key), maker, t2));
            return (TLaunch)d;
        }
    }

    sealed class Outer<TLaunch>(KernelSource src, IKernelMaker<TLaunch> maker, DType t2) : Formats.IFunc<TLaunch>
    {
        public TLaunch Invoke<T1>() where T1 : struct, IWeightFormat => Formats.With(t2, new Inner<T1>(src, maker));

        sealed class Inner<T1>(KernelSource src, IKernelMaker<TLaunch> maker) : Formats.IFunc<TLaunch> where T1 : struct, IWeightFormat
        {
            public TLaunch Invoke<T2>() where T2 : struct, IWeightFormat => maker.Make<T1, T2>(src);
        }
    }
}

/// <summary>Binds one generic kernel for weight formats T1 (and T2, for kernels that read two matrices).</summary>
internal interface IKernelMaker<TLaunch>
{
    TLaunch Make<T1, T2>(KernelSource src) where T1 : struct, IWeightFormat where T2 : struct, IWeightFormat;
}
