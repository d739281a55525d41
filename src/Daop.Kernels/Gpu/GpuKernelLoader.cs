using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime;

namespace Daop.Kernels.Gpu;

/// <summary>
/// The kernels of one accelerator, each loaded once and shared by every kernel set (<see cref="GpuKernels"/>, one per
/// <see cref="GpuKernelOptions"/>) made on it, with the accelerator's launch limits and placeholder buffers for
/// unused kernel parameters.
/// </summary>
internal sealed class GpuKernelLoader
{
    static readonly ConditionalWeakTable<Accelerator, GpuKernelLoader> s_cache = new();
    static readonly Lock s_lock = new();

    readonly Dictionary<(string Kernel, int Type, int Type2), Delegate> _kernels = [];
    readonly MemoryBuffer1D<float, Stride1D.Dense> _dummyF;
    readonly MemoryBuffer1D<int, Stride1D.Dense> _dummyI;
    readonly MemoryBuffer1D<Float4, Stride1D.Dense> _dummy4;

    GpuKernelLoader(Accelerator acc)
    {
        Accelerator = acc;
        IsCpu = acc.AcceleratorType == AcceleratorType.CPU;
        // On the CPU accelerator every thread is an OS thread: one group per multiprocessor.
        GroupSize = IsCpu ? acc.MaxNumThreadsPerGroup : Math.Min(128, acc.MaxNumThreadsPerGroup) / acc.WarpSize * acc.WarpSize;
        MaxGroups = Math.Max(1, acc.NumMultiprocessors) * (IsCpu ? 1 : 64);
        _dummyF = acc.Allocate1D<float>(4);
        _dummyI = acc.Allocate1D<int>(4);
        _dummy4 = acc.Allocate1D<Float4>(1);
    }

    /// <summary>The loader of <paramref name="accelerator"/>, made on first request.</summary>
    public static GpuKernelLoader For(Accelerator accelerator)
    {
        lock (s_lock)
        {
            if (!s_cache.TryGetValue(accelerator, out var l))
            {
                l = new GpuKernelLoader(accelerator);
                s_cache.Add(accelerator, l);
            }
            return l;
        }
    }

    public Accelerator Accelerator { get; }
    /// <summary>True on the ILGPU CPU accelerator (the CI stand-in for a GPU).</summary>
    public bool IsCpu { get; }
    /// <summary>Threads per group of the row and element-wise kernels.</summary>
    public int GroupSize { get; }
    /// <summary>Most groups a grid-stride launch asks for.</summary>
    public int MaxGroups { get; }

    /// <summary>Stand-ins for unused float, int and Float4 parameters.</summary>
    public ArrayView<float> DummyF => _dummyF.View;
    public ArrayView<int> DummyI => _dummyI.View;
    public ArrayView<Float4> Dummy4 => _dummy4.View;

    /// <summary>The kernel <paramref name="name"/>, loaded by <paramref name="load"/> the first time any kernel set asks.</summary>
    public TLaunch Load<TLaunch>(string name, Func<Accelerator, TLaunch> load) where TLaunch : Delegate
    {
        lock (_kernels)
        {
            var key = (name, -1, -1);
            if (!_kernels.TryGetValue(key, out var d)) _kernels[key] = d = load(Accelerator);
            return (TLaunch)d;
        }
    }

    /// <summary>The kernel <paramref name="name"/> instantiated for the weight formats of t1 (and t2), loaded on first use.</summary>
    public TLaunch Typed<TLaunch>(string name, DType t1, DType t2, IKernelMaker<TLaunch> maker) where TLaunch : Delegate
    {
        lock (_kernels)
        {
            var key = (name, (int)t1, (int)t2);
            if (!_kernels.TryGetValue(key, out var d)) _kernels[key] = d = Formats.With(t1, new Outer<TLaunch>(Accelerator, maker, t2));
            return (TLaunch)d;
        }
    }

    sealed class Outer<TLaunch>(Accelerator acc, IKernelMaker<TLaunch> maker, DType t2) : Formats.IFunc<TLaunch>
    {
        public TLaunch Invoke<T1>() where T1 : struct, IWeightFormat => Formats.With(t2, new Inner<T1>(acc, maker));

        sealed class Inner<T1>(Accelerator acc, IKernelMaker<TLaunch> maker) : Formats.IFunc<TLaunch> where T1 : struct, IWeightFormat
        {
            public TLaunch Invoke<T2>() where T2 : struct, IWeightFormat => maker.Make<T1, T2>(acc);
        }
    }
}

/// <summary>Loads one generic kernel for weight formats T1 (and T2, for kernels that read two matrices).</summary>
internal interface IKernelMaker<TLaunch>
{
    TLaunch Make<T1, T2>(Accelerator acc) where T1 : struct, IWeightFormat where T2 : struct, IWeightFormat;
}
