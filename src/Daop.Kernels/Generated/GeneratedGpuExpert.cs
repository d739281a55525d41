using System.Reflection;
using System.Runtime.CompilerServices;
using Daop.Kernels.Gpu;
using ILGPU;
using ILGPU.Runtime;

namespace Daop.Kernels.Generated;

/// <summary>
/// The ILGPU kernels the source generator emitted for one expert shape, shape constants inlined: single-token gate/up
/// + SwiGLU and down with a launcher (<see cref="Forward"/>; weights are <see cref="GpuMatrix"/> uploads of one
/// expert), and, for shapes whose rows are whole Float4s, routed kernels with the parameters of the generic row
/// kernels (<see cref="RowKernels.GateUp{TG, TU}"/>, <see cref="RowKernels.Down{TW}"/>,
/// <see cref="RowKernels.DownCombine{TW}"/>) that <see cref="GpuKernels"/> runs in their place.
/// </summary>
public sealed class GeneratedGpuExpert
{
    readonly Action<ArrayView<Chunk16>, ArrayView<Chunk16>, ArrayView<float>, ArrayView<Float4>, ArrayView<float>, int> _gateUp;
    readonly Action<ArrayView<Chunk16>, ArrayView<float>, ArrayView<Float4>, ArrayView<float>, int> _down;
    readonly Action<ArrayView<Chunk16>, ArrayView<Chunk16>, ArrayView<float>, ArrayView<Float4>, ArrayView<int>, ArrayView<float>, RowArgs>? _gateUpRouted;
    readonly Action<ArrayView<Chunk16>, ArrayView<float>, ArrayView<Float4>, ArrayView<int>, ArrayView<float>, ArrayView<float>, RowArgs>? _downRouted;
    readonly Action<ArrayView<Chunk16>, ArrayView<float>, ArrayView<Float4>, ArrayView<int>, ArrayView<float>, ArrayView<float>, RowArgs>? _downCombine;
    readonly ConditionalWeakTable<GpuContext, Loaded> _loaded = new();
    readonly ConditionalWeakTable<GpuContext, RoutedKernels> _routed = new();
    readonly Lock _lock = new();

    /// <summary>Wraps the generated kernel methods (called by generated code).</summary>
    public GeneratedGpuExpert(int hidden, int inter, DType type,
        Action<ArrayView<Chunk16>, ArrayView<Chunk16>, ArrayView<float>, ArrayView<Float4>, ArrayView<float>, int> gateUp,
        Action<ArrayView<Chunk16>, ArrayView<float>, ArrayView<Float4>, ArrayView<float>, int> down)
    {
        Hidden = hidden;
        Inter = inter;
        Type = type;
        _gateUp = gateUp;
        _down = down;
        Name = $"generated gpu H{hidden}xI{inter} {type.ToString().ToLowerInvariant()}";
    }

    /// <summary>Wraps the generated kernel methods, routed ones included (called by generated code).</summary>
    public GeneratedGpuExpert(int hidden, int inter, DType type,
        Action<ArrayView<Chunk16>, ArrayView<Chunk16>, ArrayView<float>, ArrayView<Float4>, ArrayView<float>, int> gateUp,
        Action<ArrayView<Chunk16>, ArrayView<float>, ArrayView<Float4>, ArrayView<float>, int> down,
        Action<ArrayView<Chunk16>, ArrayView<Chunk16>, ArrayView<float>, ArrayView<Float4>, ArrayView<int>, ArrayView<float>, RowArgs> gateUpRouted,
        Action<ArrayView<Chunk16>, ArrayView<float>, ArrayView<Float4>, ArrayView<int>, ArrayView<float>, ArrayView<float>, RowArgs> downRouted,
        Action<ArrayView<Chunk16>, ArrayView<float>, ArrayView<Float4>, ArrayView<int>, ArrayView<float>, ArrayView<float>, RowArgs> downCombine)
        : this(hidden, inter, type, gateUp, down)
    {
        _gateUpRouted = gateUpRouted;
        _downRouted = downRouted;
        _downCombine = downCombine;
    }

    /// <summary>Model width.</summary>
    public int Hidden { get; }
    /// <summary>Expert width.</summary>
    public int Inter { get; }
    /// <summary>Weight dtype.</summary>
    public DType Type { get; }
    /// <summary>For logs, e.g. "generated gpu H4096xI14336 bf16".</summary>
    public string Name { get; }

    /// <summary>The gate/up kernel (explicitly grouped), e.g. for PTX inspection.</summary>
    public MethodInfo GateUpMethod => _gateUp.Method;
    /// <summary>The down kernel (explicitly grouped).</summary>
    public MethodInfo DownMethod => _down.Method;

    /// <summary>
    /// Whether the routed kernels were generated (rows of Hidden and Inter floats are whole Float4s): then
    /// <see cref="GpuKernels"/> runs them for this shape in place of the generic row kernels.
    /// </summary>
    public bool HasRoutedKernels => _gateUpRouted != null;

    /// <summary>The routed gate/up, down and down-combine kernels (explicitly grouped), empty without them.</summary>
    public IReadOnlyList<MethodInfo> RoutedMethods => _gateUpRouted == null ? [] : [_gateUpRouted.Method, _downRouted!.Method, _downCombine!.Method];

    /// <summary>
    /// y = W_down · (SiLU(W_gate·x) ⊙ (W_up·x)) for one token: two launches on <paramref name="stream"/>, h
    /// ([Inter] floats) as the intermediate. <paramref name="lanes"/> threads share a row: a power of two ≤ the warp
    /// size (0 picks the warp size on a GPU and 1 on the CPU accelerator, where each thread is an OS thread).
    /// x, h and y must start 16-byte aligned (whole buffers are). For stacks of experts, <paramref name="expert"/>
    /// picks the matrices.
    /// </summary>
    public void Forward(GpuStream stream, in GpuMatrix gate, in GpuMatrix up, in GpuMatrix down,
        GpuView<float> x, GpuView<float> h, GpuView<float> y, int lanes = 0, int expert = 0)
    {
        Check(gate, Inter, Hidden, nameof(gate));
        Check(up, Inter, Hidden, nameof(up));
        Check(down, Hidden, Inter, nameof(down));
        if (x.Length < Hidden || y.Length < Hidden || h.Length < Inter)
            throw new ArgumentException($"x, y need {Hidden} floats and h {Inter}; got {x.Length}, {y.Length}, {h.Length}");
        var gpu = stream.Gpu;
        bool cpu = gpu.IsCpu;
        if (lanes == 0) lanes = cpu ? 1 : gpu.WarpSize;
        int groupSize = cpu ? gpu.MaxThreadsPerGroup : Math.Min(128, gpu.MaxThreadsPerGroup) / gpu.WarpSize * gpu.WarpSize;
        if (lanes < 1 || lanes > gpu.WarpSize || (lanes & (lanes - 1)) != 0 || groupSize % lanes != 0)
            throw new ArgumentOutOfRangeException(nameof(lanes), $"lanes must be a power of two ≤ {gpu.WarpSize}");
        int maxGroups = Math.Max(1, gpu.Multiprocessors) * (cpu ? 1 : 64);
        var k = Load(gpu);
        if (expert < 0 || expert >= gate.Count || expert >= up.Count || expert >= down.Count)
            throw new ArgumentOutOfRangeException(nameof(expert));
        k.GateUp(stream, Config(Inter, lanes, groupSize, maxGroups), Expert(gate, expert), Expert(up, expert), x, AsFloat4(x), h, lanes);
        k.Down(stream, Config(Hidden, lanes, groupSize, maxGroups), Expert(down, expert), h, AsFloat4(h), y, lanes);
    }

    void Check(in GpuMatrix w, int rows, int cols, string name)
    {
        if (w.Rows != rows || w.Cols != cols || w.Type != Type)
            throw new ArgumentException($"{name} is [{w.Rows}, {w.Cols}] {w.Type}, this kernel needs [{rows}, {cols}] {Type}", name);
    }

    static GpuView<Chunk16> Expert(in GpuMatrix w, int e)
    {
        long n = (long)w.Rows * w.RowChunks;
        return w.Data.SubView(e * n, n);
    }

    static KernelConfig Config(int rows, int lanes, int groupSize, int maxGroups) =>
        new((int)Math.Clamp(((long)rows * lanes + groupSize - 1) / groupSize, 1, maxGroups), groupSize);

    // Whole Float4s only: the kernels never read the last (partial) 4 floats through this view.
    static GpuView<Float4> AsFloat4(GpuView<float> v) => v.SubView(0, v.Length / 4 * 4).Cast<Float4>();

    /// <summary>The catalog key of this shape's kernel <paramref name="kernel"/> (GateUp, Down, GateUpRouted, DownRouted, DownCombine).</summary>
    public string Key(string kernel) => $"Generated.H{Hidden}xI{Inter}.{Type}.{kernel}";

    /// <summary>Binds every kernel of this shape on <paramref name="gpu"/> (the catalog's walk).</summary>
    internal void LoadAll(GpuContext gpu)
    {
        Load(gpu);
        if (HasRoutedKernels) LoadRouted(gpu);
    }

    Loaded Load(GpuContext gpu)
    {
        lock (_lock)
        {
            if (!_loaded.TryGetValue(gpu, out var k))
            {
                k = new Loaded(
                    new KernelSource(gpu, Key("GateUp")).Bind<GpuView<Chunk16>, GpuView<Chunk16>, GpuView<float>, GpuView<Float4>, GpuView<float>, int>(_gateUp),
                    new KernelSource(gpu, Key("Down")).Bind<GpuView<Chunk16>, GpuView<float>, GpuView<Float4>, GpuView<float>, int>(_down));
                _loaded.Add(gpu, k);
            }
            return k;
        }
    }

    /// <summary>The routed kernels loaded on <paramref name="gpu"/> (once per GPU); throws without them.</summary>
    internal RoutedKernels LoadRouted(GpuContext gpu)
    {
        if (_gateUpRouted == null || _downRouted == null || _downCombine == null)
            throw new NotSupportedException($"{Name} has no routed kernels");
        lock (_lock)
        {
            if (!_routed.TryGetValue(gpu, out var k))
            {
                k = new RoutedKernels(
                    new KernelSource(gpu, Key("GateUpRouted")).Bind<GpuView<Chunk16>, GpuView<Chunk16>, GpuView<float>, GpuView<Float4>, GpuView<int>, GpuView<float>, RowArgs>(_gateUpRouted),
                    new KernelSource(gpu, Key("DownRouted")).Bind<GpuView<Chunk16>, GpuView<float>, GpuView<Float4>, GpuView<int>, GpuView<float>, GpuView<float>, RowArgs>(_downRouted),
                    new KernelSource(gpu, Key("DownCombine")).Bind<GpuView<Chunk16>, GpuView<float>, GpuView<Float4>, GpuView<int>, GpuView<float>, GpuView<float>, RowArgs>(_downCombine));
                _routed.Add(gpu, k);
            }
            return k;
        }
    }

    /// <summary>Loaded routed kernels, launched like <see cref="RowKernels.GateUp{TG, TU}"/>, <see cref="RowKernels.Down{TW}"/> and <see cref="RowKernels.DownCombine{TW}"/>.</summary>
    internal sealed record RoutedKernels(GateUpLaunch GateUp, DownLaunch Down, DownLaunch DownCombine);

    sealed record Loaded(
        Action<GpuStream, KernelConfig, GpuView<Chunk16>, GpuView<Chunk16>, GpuView<float>, GpuView<Float4>, GpuView<float>, int> GateUp,
        Action<GpuStream, KernelConfig, GpuView<Chunk16>, GpuView<float>, GpuView<Float4>, GpuView<float>, int> Down);
}
