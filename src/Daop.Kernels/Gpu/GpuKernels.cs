using System.Runtime.CompilerServices;
using System.Reflection;
using ILGPU;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;
using GemvLaunch = System.Action<ILGPU.Runtime.AcceleratorStream, ILGPU.KernelConfig, ILGPU.ArrayView<Daop.Kernels.Gpu.Chunk16>,
    ILGPU.ArrayView<float>, ILGPU.ArrayView<Daop.Kernels.Gpu.Float4>, ILGPU.ArrayView<float>, ILGPU.ArrayView<float>, Daop.Kernels.Gpu.RowArgs>;
using GateUpLaunch = System.Action<ILGPU.Runtime.AcceleratorStream, ILGPU.KernelConfig, ILGPU.ArrayView<Daop.Kernels.Gpu.Chunk16>,
    ILGPU.ArrayView<Daop.Kernels.Gpu.Chunk16>, ILGPU.ArrayView<float>, ILGPU.ArrayView<Daop.Kernels.Gpu.Float4>, ILGPU.ArrayView<int>,
    ILGPU.ArrayView<float>, Daop.Kernels.Gpu.RowArgs>;
using DownLaunch = System.Action<ILGPU.Runtime.AcceleratorStream, ILGPU.KernelConfig, ILGPU.ArrayView<Daop.Kernels.Gpu.Chunk16>,
    ILGPU.ArrayView<float>, ILGPU.ArrayView<Daop.Kernels.Gpu.Float4>, ILGPU.ArrayView<int>, ILGPU.ArrayView<float>, ILGPU.ArrayView<float>,
    Daop.Kernels.Gpu.RowArgs>;
using TileLinearLaunch = System.Action<ILGPU.Runtime.AcceleratorStream, ILGPU.KernelConfig, ILGPU.ArrayView<Daop.Kernels.Gpu.Chunk16>,
    ILGPU.ArrayView<float>, ILGPU.ArrayView<Daop.Kernels.Gpu.Float4>, ILGPU.ArrayView<float>, ILGPU.ArrayView<float>, Daop.Kernels.Gpu.TileArgs>;
using TileGateUpLaunch = System.Action<ILGPU.Runtime.AcceleratorStream, ILGPU.KernelConfig, ILGPU.ArrayView<Daop.Kernels.Gpu.Chunk16>,
    ILGPU.ArrayView<Daop.Kernels.Gpu.Chunk16>, ILGPU.ArrayView<float>, ILGPU.ArrayView<Daop.Kernels.Gpu.Float4>, ILGPU.ArrayView<int>,
    ILGPU.ArrayView<float>, Daop.Kernels.Gpu.TileArgs>;
using TileDownLaunch = System.Action<ILGPU.Runtime.AcceleratorStream, ILGPU.KernelConfig, ILGPU.ArrayView<Daop.Kernels.Gpu.Chunk16>,
    ILGPU.ArrayView<float>, ILGPU.ArrayView<Daop.Kernels.Gpu.Float4>, ILGPU.ArrayView<int>, ILGPU.ArrayView<float>, ILGPU.ArrayView<float>,
    Daop.Kernels.Gpu.TileArgs>;

namespace Daop.Kernels.Gpu;

/// <summary>
/// Every Daop kernel loaded once for one accelerator, with host-side launchers that pick the launch shape and
/// count launches. Get it with <see cref="For"/>: the instance is cached per accelerator.
/// </summary>
/// <remarks>
/// Launch shapes: on a GPU, row kernels run a warp per output row (<see cref="Lanes"/> = warp size) in groups
/// of <see cref="GroupSize"/> threads. On the ILGPU CPU accelerator every thread is an OS thread and every
/// shuffle a barrier, so the default there is one lane per row and one group per multiprocessor; tests set
/// <see cref="Lanes"/> and <see cref="AttentionLanes"/> to exercise the shuffle paths.
/// </remarks>
public sealed class GpuKernels
{
    static readonly ConditionalWeakTable<Accelerator, GpuKernels> s_cache = new();
    static readonly Lock s_lock = new();

    readonly Dictionary<(string Kernel, int Type, int Type2), Delegate> _typed = [];
    Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<Float4>, ArrayView<int>, ArrayView<Chunk16>, TileArgs>? _split;
    Action<AcceleratorStream, KernelConfig, ArrayView<Chunk16>, ArrayView<Chunk16>, ArrayView<float>, ArrayView<float>, TileArgs>? _mmaLinear;
    Action<AcceleratorStream, KernelConfig, ArrayView<Chunk16>, ArrayView<Chunk16>, ArrayView<Chunk16>, ArrayView<int>, ArrayView<float>, TileArgs>? _mmaGateUp;
    Action<AcceleratorStream, KernelConfig, ArrayView<Chunk16>, ArrayView<Chunk16>, ArrayView<int>, ArrayView<float>, ArrayView<float>, TileArgs>? _mmaDown;
    MemoryBuffer1D<Chunk16, Stride1D.Dense>? _splitScratch;
    readonly Lock _splitLock = new();
    readonly Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, NormArgs> _norm;
    readonly Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, RopeArgs> _rope;
    readonly Action<AcceleratorStream, KernelConfig, ArrayView<Chunk16>, ArrayView<int>, ArrayView<float>, int, int, int, int> _embed;
    readonly Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, int> _add;
    readonly Action<AcceleratorStream, KernelConfig, ArrayView<float>, int, float> _clamp;
    readonly Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int> _addSigmoid;
    readonly Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, int, int, int> _combine;
    readonly Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<Float4>, ArrayView<Float4>, ArrayView<Float4>, AttnArgs> _attention;
    readonly MemoryBuffer1D<float, Stride1D.Dense> _dummyF;
    readonly MemoryBuffer1D<int, Stride1D.Dense> _dummyI;
    readonly MemoryBuffer1D<Float4, Stride1D.Dense> _dummy4;
    long _launches;
    int _lanes, _attnLanes, _attnTeams = AttentionKernel.MaxTeams, _gemvUnroll = 4, _gemvGroup, _mmaGroup = 128;

    /// <summary>The accelerator the kernels run on.</summary>
    public Accelerator Accelerator { get; }
    /// <summary>True on the ILGPU CPU accelerator (the CI stand-in for a GPU).</summary>
    public bool IsCpu { get; }
    /// <summary>Threads per group of the row and element-wise kernels.</summary>
    public int GroupSize { get; }
    /// <summary>Most groups a grid-stride launch asks for.</summary>
    public int MaxGroups { get; }

    /// <summary>Threads per output row in the row and norm kernels: a power of two ≤ the warp size.</summary>
    public int Lanes
    {
        get => _lanes;
        set
        {
            if (value < 1 || value > Accelerator.WarpSize || (value & (value - 1)) != 0 || GroupSize % value != 0)
                throw new ArgumentOutOfRangeException(nameof(value), $"lanes must be a power of two ≤ {Accelerator.WarpSize}");
            _lanes = value;
        }
    }

    /// <summary>Threads per (token, head) in the attention kernel: 1 or the warp size.</summary>
    public int AttentionLanes
    {
        get => _attnLanes;
        set
        {
            if (value != 1 && value != Accelerator.WarpSize)
                throw new ArgumentOutOfRangeException(nameof(value), $"attention lanes must be 1 or {Accelerator.WarpSize}");
            _attnLanes = value;
        }
    }

    /// <summary>
    /// Teams that split one (token, head)'s key positions in the attention kernel (≤ <see cref="AttentionKernel.MaxTeams"/>;
    /// at most 4 on the CPU accelerator, whose groups are small).
    /// </summary>
    public int AttentionTeams
    {
        get => _attnTeams;
        set => _attnTeams = value >= 1 && value <= AttentionKernel.MaxTeams ? value
            : throw new ArgumentOutOfRangeException(nameof(value), $"attention teams must be 1..{AttentionKernel.MaxTeams}");
    }

    /// <summary>Kernel launches so far (all launchers, all callers).</summary>
    public long Launches => Interlocked.Read(ref _launches);

    /// <summary>The kernels of <paramref name="accelerator"/>, loaded (compiled lazily by ILGPU) on first request.</summary>
    public static GpuKernels For(Accelerator accelerator)
    {
        lock (s_lock)
        {
            if (!s_cache.TryGetValue(accelerator, out var k))
            {
                k = new GpuKernels(accelerator);
                s_cache.Add(accelerator, k);
            }
            return k;
        }
    }

    GpuKernels(Accelerator acc)
    {
        Accelerator = acc;
        IsCpu = acc.AcceleratorType == AcceleratorType.CPU;
        if (IsCpu)
        {
            GroupSize = acc.MaxNumThreadsPerGroup;
            MaxGroups = Math.Max(1, acc.NumMultiprocessors);
            _lanes = 1;
            _attnLanes = 1;
        }
        else
        {
            GroupSize = Math.Min(128, acc.MaxNumThreadsPerGroup) / acc.WarpSize * acc.WarpSize;
            MaxGroups = Math.Max(1, acc.NumMultiprocessors) * 64;
            _lanes = acc.WarpSize;
            _attnLanes = acc.WarpSize;
        }
        _gemvGroup = GroupSize;
        _mmaGroup = Math.Max(32, Math.Min(128, acc.MaxNumThreadsPerGroup) / 32 * 32);
        TensorCores = !IsCpu && acc is CudaAccelerator ca && ca.Architecture is { } arch && arch.Major >= 8;
        _norm = acc.LoadKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, NormArgs>(VectorKernels.Norm);
        _rope = acc.LoadKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, RopeArgs>(VectorKernels.Rope);
        _embed = acc.LoadKernel<ArrayView<Chunk16>, ArrayView<int>, ArrayView<float>, int, int, int, int>(VectorKernels.Embed);
        _add = acc.LoadKernel<ArrayView<float>, ArrayView<float>, int>(VectorKernels.Add);
        _clamp = acc.LoadKernel<ArrayView<float>, int, float>(VectorKernels.Clamp);
        _addSigmoid = acc.LoadKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int>(VectorKernels.AddSigmoidScaled);
        _combine = acc.LoadKernel<ArrayView<float>, ArrayView<float>, int, int, int>(VectorKernels.Combine);
        _attention = acc.LoadKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<Float4>, ArrayView<Float4>, ArrayView<Float4>, AttnArgs>(AttentionKernel.Causal);
        _dummyF = acc.Allocate1D<float>(4);
        _dummyI = acc.Allocate1D<int>(4);
        _dummy4 = acc.Allocate1D<Float4>(1);
    }

    /// <summary>
    /// Every kernel entry point by name (all explicitly grouped); generic row kernels by their bf16 instantiation, and
    /// <c>Gemv1.F16</c>, <c>Gemv1.F32</c> for the other dtypes' decode GEMV.
    /// </summary>
    public static IReadOnlyDictionary<string, MethodInfo> KernelMethods { get; } = new Dictionary<string, MethodInfo>
    {
        ["Gemv"] = M(RowKernels.Gemv<Bf16Format>),
        ["Gemv1"] = M(GemvKernels.Gemv1<Bf16Format, Unroll4>),
        ["Gemv1.F16"] = M(GemvKernels.Gemv1<F16Format, Unroll4>),
        ["Gemv1.F32"] = M(GemvKernels.Gemv1<F32Format, Unroll4>),
        ["GateUp"] = M(RowKernels.GateUp<Bf16Format, Bf16Format>),
        ["Down"] = M(RowKernels.Down<Bf16Format>),
        ["DownCombine"] = M(RowKernels.DownCombine<Bf16Format>),
        ["TileLinear"] = M(TileKernels.Linear<Bf16Format>),
        ["TileGateUp"] = M(TileKernels.GateUp<Bf16Format, Bf16Format>),
        ["TileDown"] = M(TileKernels.Down<Bf16Format>),
        ["MmaSplit"] = typeof(MmaKernels).GetMethod(nameof(MmaKernels.Split))!,
        ["MmaLinear"] = M(MmaKernels.Linear<TensorCoreAcc>),
        ["MmaGateUp"] = M(MmaKernels.GateUp<TensorCoreAcc>),
        ["MmaDown"] = M(MmaKernels.Down<TensorCoreAcc>),
        ["Norm"] = typeof(VectorKernels).GetMethod(nameof(VectorKernels.Norm))!,
        ["Rope"] = typeof(VectorKernels).GetMethod(nameof(VectorKernels.Rope))!,
        ["Embed"] = typeof(VectorKernels).GetMethod(nameof(VectorKernels.Embed))!,
        ["Add"] = typeof(VectorKernels).GetMethod(nameof(VectorKernels.Add))!,
        ["Clamp"] = typeof(VectorKernels).GetMethod(nameof(VectorKernels.Clamp))!,
        ["AddSigmoidScaled"] = typeof(VectorKernels).GetMethod(nameof(VectorKernels.AddSigmoidScaled))!,
        ["Combine"] = typeof(VectorKernels).GetMethod(nameof(VectorKernels.Combine))!,
        ["Attention"] = typeof(AttentionKernel).GetMethod(nameof(AttentionKernel.Causal))!,
    };

    static MethodInfo M(Delegate kernel) => kernel.Method;

    /// <summary>
    /// PTX of every kernel for <paramref name="architecture"/> / <paramref name="instructionSet"/>, generated without a GPU
    /// (ILGPU's PTX backend alone): for inspecting the code and checking in CI that the CUDA path compiles.
    /// </summary>
    public static Dictionary<string, string> CompilePtx(CudaArchitecture architecture, CudaInstructionSet instructionSet)
    {
        using var ctx = Context.Create(b => b.Optimize(OptimizationLevel.O1));
        using var backend = new PTXBackend(ctx, architecture, instructionSet, null!);
        var ptx = new Dictionary<string, string>();
        foreach (var (name, method) in KernelMethods)
        {
            var entry = EntryPointDescription.FromExplicitlyGroupedKernel(method);
            ptx[name] = ((PTXCompiledKernel)backend.Compile(entry, new KernelSpecialization())).PTXAssembly;
        }
        return ptx;
    }

    /// <summary>Creates the ILGPU CPU accelerator Daop tests and CPU fallbacks use: warps of 4 threads, one warp per group, one multiprocessor.</summary>
    public static CPUDevice CpuDevice(int warpSize = 4, int warpsPerGroup = 1, int multiprocessors = 1) =>
        new(warpSize, warpsPerGroup, multiprocessors);

    KernelConfig Elementwise(long n)
    {
        long groups = Math.Clamp((n + GroupSize - 1) / GroupSize, 1, MaxGroups);
        Interlocked.Increment(ref _launches);
        return new KernelConfig((int)groups, GroupSize);
    }

    KernelConfig Teams(long teams, int lanes, int groupSize)
    {
        long groups = Math.Clamp((teams * lanes + groupSize - 1) / groupSize, 1, IsCpu ? MaxGroups : int.MaxValue);
        Interlocked.Increment(ref _launches);
        return new KernelConfig((int)groups, groupSize);
    }

    ArrayView<Float4> AsFloat4(ArrayView<float> v) =>
        v.Length >= 4 ? v.SubView(0, v.Length / 4 * 4).Cast<Float4>() : _dummy4.View;

    static int AlignedFlag(int cols) => cols % 4 == 0 ? RowKernels.FlagAligned : 0;

    RowArgs Args(in GpuMatrix w, int tokens) => new()
    {
        Rows = w.Rows, Cols = w.Cols, RowChunks = w.RowChunks,
        Tokens = tokens, Lanes = _lanes, Flags = AlignedFlag(w.Cols), TopK = 1,
    };

    /// <summary>Up to this many positions (per weight load) the row kernels take; more go to the batched kernels.</summary>
    public const int RowTokens = 4;

    /// <summary>
    /// Whether bf16 batched work runs on the tensor cores (<see cref="MmaKernels"/>): on by default on CUDA devices of
    /// compute capability 8.0 and up; off, it takes the fp32 FMA <see cref="TileKernels"/> like the other dtypes. On
    /// the CPU accelerator (32-wide warps only) it runs the kernels with the mma emulated, for tests.
    /// </summary>
    public bool TensorCores { get; set; }

    /// <summary>Independent 16-byte loads in flight per lane in the single-token GEMV: 2, 4 or 8.</summary>
    public int GemvUnroll
    {
        get => _gemvUnroll;
        set => _gemvUnroll = value is 2 or 4 or 8 ? value : throw new ArgumentOutOfRangeException(nameof(value), "2, 4 or 8");
    }

    /// <summary>Threads per group of the single-token GEMV (a multiple of the warp size, ≤ the accelerator's limit).</summary>
    public int GemvGroupSize
    {
        get => _gemvGroup;
        set => _gemvGroup = value >= Accelerator.WarpSize && value <= Accelerator.MaxNumThreadsPerGroup && value % Accelerator.WarpSize == 0
            ? value : throw new ArgumentOutOfRangeException(nameof(value));
    }

    /// <summary>Threads per group of the tensor-core kernels (a multiple of 32; warps of a group share a tile).</summary>
    public int MmaGroupSize
    {
        get => _mmaGroup;
        set => _mmaGroup = value >= 32 && value <= Accelerator.MaxNumThreadsPerGroup && value % 32 == 0
            ? value : throw new ArgumentOutOfRangeException(nameof(value));
    }

    bool Mma(DType type) => TensorCores && type == DType.BF16;

    /// <summary>
    /// Positions per tile the batched kernels take for weights of <paramref name="type"/> (callers building grouped
    /// tile lists for <see cref="GateUp"/> / <see cref="Down"/> with <c>batched: true</c> use this size).
    /// </summary>
    public int BatchTileTokens(DType type) => Mma(type) ? MmaKernels.TileTokens : TileKernels.TileTokens;

    /// <summary>
    /// y [T, rows] = x [T, cols] · Wᵀ (+ bias [rows]). x and y must be whole buffers (16-byte aligned starts).
    /// One token: the decode GEMV; up to <see cref="RowTokens"/>: the row kernel; more: the batched kernels.
    /// </summary>
    public void Gemv(AcceleratorStream s, in GpuMatrix w, ArrayView<float> x, ArrayView<float> y, int tokens, ArrayView<float>? bias = null)
    {
        if (tokens <= 0 || w.Rows == 0) return;
        var a = Args(w, tokens);
        if (bias is { } b) a.Flags |= RowKernels.FlagBias;
        var bv = bias ?? _dummyF.View;
        if (tokens == 1)
        {
            Gemv1Kernel(w.Type, _gemvUnroll)(s, Teams(w.Rows, _lanes, _gemvGroup), w.Data, x, AsFloat4(x), bv, y, a);
            return;
        }
        if (tokens <= RowTokens)
        {
            Typed<GemvLaunch>("Gemv", w.Type, w.Type, GemvMaker.Instance)(s, Teams((long)w.Rows * ((tokens + 3) / 4), _lanes, GroupSize),
                w.Data, x, AsFloat4(x), bv, y, a);
            return;
        }
        var t = TileArgsOf(w, tokens, a.Flags);
        if (Mma(w.Type))
        {
            lock (_splitLock)
            {
                var xs = SplitRows(s, x, null, w, tokens, 1, ref t);
                LoadMma();
                _mmaLinear!(s, MmaConfig((long)t.Tiles * ((w.Rows + 15) / 16)), w.Data, xs, bv, y, t);
            }
            return;
        }
        Typed<TileLinearLaunch>("TileLinear", w.Type, w.Type, TileLinearMaker.Instance)(s, TileConfig(t), w.Data, x, AsFloat4(x), bv, y, t);
    }

    /// <summary>
    /// h [P, inter] = SiLU(x·Wgᵀ) ⊙ (x·Wuᵀ) for P positions. Without <paramref name="index"/>: dense, row p of x for
    /// position p, expert 0 (more than <see cref="RowTokens"/> positions take the batched kernels). With it:
    /// <paramref name="index"/>[p] is the routing slot of position p (x row = slot / topK) and [tileOffset, +3·tiles)
    /// holds (expert, first position, count) tiles over the expert stacks: counts ≤ 4 for the row kernel, or ≤
    /// <see cref="BatchTileTokens"/> with <paramref name="batched"/>.
    /// </summary>
    public void GateUp(AcceleratorStream s, in GpuMatrix gate, in GpuMatrix up, ArrayView<float> x, ArrayView<float> h, int positions,
        ArrayView<int>? index = null, int topK = 1, int tiles = 0, int tileOffset = 0, bool batched = false)
    {
        if (positions <= 0) return;
        if (index == null) batched = positions > RowTokens;
        if (batched)
        {
            var t = TileArgsOf(gate, positions, AlignedFlag(gate.Cols));
            t.TopK = topK;
            if (index != null) { t.Flags |= RowKernels.FlagGrouped; t.Tiles = tiles; t.TileOffset = tileOffset; }
            var iv = index ?? _dummyI.View;
            if (Mma(gate.Type) && up.Type == gate.Type)
            {
                if (index == null) t.Tiles = (positions + MmaKernels.TileTokens - 1) / MmaKernels.TileTokens;
                lock (_splitLock)
                {
                    var xs = SplitRows(s, x, index, gate, positions, topK, ref t);
                    LoadMma();
                    _mmaGateUp!(s, MmaConfig((long)t.Tiles * ((gate.Rows + 15) / 16)), gate.Data, up.Data, xs, iv, h, t);
                }
                return;
            }
            if (index == null) t.Tiles = (positions + TileKernels.TileTokens - 1) / TileKernels.TileTokens;
            Typed<TileGateUpLaunch>("TileGateUp", gate.Type, up.Type, TileGateUpMaker.Instance)(s, TileConfig(t), gate.Data, up.Data, x,
                AsFloat4(x), iv, h, t);
            return;
        }
        var a = Args(gate, positions);
        a.TopK = topK;
        if (index != null) { a.Flags |= RowKernels.FlagGrouped; a.Tiles = tiles; a.TileOffset = tileOffset; }
        else a.Tiles = (positions + 3) / 4;
        Typed<GateUpLaunch>("GateUp", gate.Type, up.Type, GateUpMaker.Instance)(s, Teams((long)a.Tiles * gate.Rows, _lanes, GroupSize),
            gate.Data, up.Data, x, AsFloat4(x), index ?? _dummyI.View, h, a);
    }

    /// <summary>
    /// Down projection of P positions of h [P, inter]. Dense: y[p] = Wd·h[p]. Grouped (index and tiles as in
    /// <see cref="GateUp"/>): y[slot] = scales[slot] · Wd[e]·h[p] with slot = index[p] — per-slot outputs for
    /// <see cref="Combine"/>.
    /// </summary>
    public void Down(AcceleratorStream s, in GpuMatrix down, ArrayView<float> h, ArrayView<float> y, int positions,
        ArrayView<int>? index = null, ArrayView<float>? scales = null, int tiles = 0, int tileOffset = 0, bool batched = false)
    {
        if (positions <= 0) return;
        if (index == null) batched = positions > RowTokens;
        var iv = index ?? _dummyI.View;
        var sv = scales ?? _dummyF.View;
        if (batched)
        {
            var t = TileArgsOf(down, positions, AlignedFlag(down.Cols));
            if (index != null) { t.Flags |= RowKernels.FlagGrouped; t.Tiles = tiles; t.TileOffset = tileOffset; }
            if (Mma(down.Type))
            {
                if (index == null) t.Tiles = (positions + MmaKernels.TileTokens - 1) / MmaKernels.TileTokens;
                lock (_splitLock)
                {
                    var split = t;
                    split.Flags &= ~RowKernels.FlagGrouped; // h rows are per position already
                    var xs = SplitRows(s, h, null, down, positions, 1, ref split);
                    t.LoOffset = split.LoOffset;
                    LoadMma();
                    _mmaDown!(s, MmaConfig((long)t.Tiles * ((down.Rows + 15) / 16)), down.Data, xs, iv, sv, y, t);
                }
                return;
            }
            if (index == null) t.Tiles = (positions + TileKernels.TileTokens - 1) / TileKernels.TileTokens;
            Typed<TileDownLaunch>("TileDown", down.Type, down.Type, TileDownMaker.Instance)(s, TileConfig(t), down.Data, h, AsFloat4(h), iv, sv, y, t);
            return;
        }
        var a = Args(down, positions);
        if (index != null) { a.Flags |= RowKernels.FlagGrouped; a.Tiles = tiles; a.TileOffset = tileOffset; }
        else a.Tiles = (positions + 3) / 4;
        Typed<DownLaunch>("Down", down.Type, down.Type, DownMaker.Instance)(s, Teams((long)a.Tiles * down.Rows, _lanes, GroupSize),
            down.Data, h, AsFloat4(h), iv, sv, y, a);
    }

    /// <summary>
    /// y [T, hidden] = Σ_j scales[t·topK+j] · Wd[expert(slot)]·h[pos(slot)] for T tokens; the slot → position and slot → expert maps
    /// sit at <paramref name="posOffset"/> and <paramref name="expertOffset"/> of <paramref name="index"/>.
    /// </summary>
    public void DownCombine(AcceleratorStream s, in GpuMatrix down, ArrayView<float> h, ArrayView<float> y, int tokens, int topK,
        ArrayView<int> index, ArrayView<float> scales, int posOffset, int expertOffset)
    {
        if (tokens <= 0) return;
        var a = Args(down, tokens);
        a.TopK = topK; a.PosOffset = posOffset; a.ExpertOffset = expertOffset;
        Typed<DownLaunch>("DownCombine", down.Type, down.Type, DownCombineMaker.Instance)(s, Teams((long)tokens * down.Rows, _lanes, GroupSize),
            down.Data, h, AsFloat4(h), index, scales, y, a);
    }

    static TileArgs TileArgsOf(in GpuMatrix w, int positions, int flags) => new()
    {
        Rows = w.Rows, Cols = w.Cols, RowChunks = w.RowChunks, Positions = positions, Flags = flags, TopK = 1,
        Tiles = (positions + TileKernels.TileTokens - 1) / TileKernels.TileTokens,
    };

    KernelConfig TileConfig(in TileArgs t)
    {
        long items = (long)t.Tiles * ((t.Rows + 3) / 4) * (TileKernels.TileTokens / 4);
        int group = IsCpu ? GroupSize : Math.Min(256, Accelerator.MaxNumThreadsPerGroup);
        return Teams(items, 1, group);
    }

    KernelConfig MmaConfig(long warpItems)
    {
        long groups = Math.Max(1, (warpItems * 32 + _mmaGroup - 1) / _mmaGroup);
        Interlocked.Increment(ref _launches);
        return new KernelConfig((int)Math.Min(groups, int.MaxValue), _mmaGroup);
    }

    // Splits P rows of x (gathered through index / topK when given) into bf16 hi/lo chunk rows in the shared scratch
    // (P + one tile of padding rows), sets t.LoOffset; one launch. Caller holds _splitLock until its kernel is queued.
    ArrayView<Chunk16> SplitRows(AcceleratorStream s, ArrayView<float> x, ArrayView<int>? index, in GpuMatrix w, int positions, int topK,
        ref TileArgs t)
    {
        int rc = GpuMatrix.ChunksPerRow(DType.BF16, w.Cols);
        long half = (long)(positions + MmaKernels.TileTokens) * rc;
        if (_splitScratch == null || _splitScratch.Length < 2 * half)
        {
            if (_splitScratch != null) { s.Synchronize(); _splitScratch.Dispose(); }
            _splitScratch = Accelerator.Allocate1D<Chunk16>(Math.Max(2 * half, 1 << 16));
        }
        if (2 * half > int.MaxValue) throw new NotSupportedException($"{positions} positions of {w.Cols} columns are too many for one batch");
        t.LoOffset = (int)half;
        var sa = new TileArgs
        {
            Rows = t.Rows, Cols = w.Cols, RowChunks = rc, Positions = positions, TopK = topK, LoOffset = (int)half,
            Flags = AlignedFlag(w.Cols) | (index != null ? RowKernels.FlagGrouped : 0),
        };
        LoadMma();
        _split!(s, Elementwise((long)positions * rc), x, AsFloat4(x), index ?? _dummyI.View, _splitScratch.View, sa);
        return _splitScratch.View;
    }

    void LoadMma()
    {
        if (_split != null) return;
        var acc = Accelerator;
        if (IsCpu)
        {
            if (acc.WarpSize != 32) throw new NotSupportedException("the emulated tensor-core kernels need 32-wide warps");
            _mmaLinear = acc.LoadKernel<ArrayView<Chunk16>, ArrayView<Chunk16>, ArrayView<float>, ArrayView<float>, TileArgs>(MmaKernels.Linear<EmulatedAcc>);
            _mmaGateUp = acc.LoadKernel<ArrayView<Chunk16>, ArrayView<Chunk16>, ArrayView<Chunk16>, ArrayView<int>, ArrayView<float>, TileArgs>(MmaKernels.GateUp<EmulatedAcc>);
            _mmaDown = acc.LoadKernel<ArrayView<Chunk16>, ArrayView<Chunk16>, ArrayView<int>, ArrayView<float>, ArrayView<float>, TileArgs>(MmaKernels.Down<EmulatedAcc>);
        }
        else
        {
            _mmaLinear = acc.LoadKernel<ArrayView<Chunk16>, ArrayView<Chunk16>, ArrayView<float>, ArrayView<float>, TileArgs>(MmaKernels.Linear<TensorCoreAcc>);
            _mmaGateUp = acc.LoadKernel<ArrayView<Chunk16>, ArrayView<Chunk16>, ArrayView<Chunk16>, ArrayView<int>, ArrayView<float>, TileArgs>(MmaKernels.GateUp<TensorCoreAcc>);
            _mmaDown = acc.LoadKernel<ArrayView<Chunk16>, ArrayView<Chunk16>, ArrayView<int>, ArrayView<float>, ArrayView<float>, TileArgs>(MmaKernels.Down<TensorCoreAcc>);
        }
        _split = acc.LoadKernel<ArrayView<float>, ArrayView<Float4>, ArrayView<int>, ArrayView<Chunk16>, TileArgs>(MmaKernels.Split);
    }

    GemvLaunch Gemv1Kernel(DType type, int unroll) => unroll switch
    {
        2 => Typed<GemvLaunch>("Gemv1.2", type, type, Gemv1Maker<Unroll2>.Instance),
        8 => Typed<GemvLaunch>("Gemv1.8", type, type, Gemv1Maker<Unroll8>.Instance),
        _ => Typed<GemvLaunch>("Gemv1.4", type, type, Gemv1Maker<Unroll4>.Instance),
    };

    // The kernel `name` instantiated for the weight formats of t1 (and t2), loaded on first use.
    TLaunch Typed<TLaunch>(string name, DType t1, DType t2, IKernelMaker<TLaunch> maker) where TLaunch : Delegate
    {
        var key = (name, (int)t1, (int)t2);
        lock (_typed)
        {
            if (!_typed.TryGetValue(key, out var d))
            {
                d = Formats.With(t1, new Outer<TLaunch>(Accelerator, maker, t2));
                _typed[key] = d;
            }
            return (TLaunch)d;
        }
    }

    interface IKernelMaker<TLaunch>
    {
        TLaunch Make<T1, T2>(Accelerator acc) where T1 : struct, IWeightFormat where T2 : struct, IWeightFormat;
    }

    sealed class Outer<TLaunch>(Accelerator acc, IKernelMaker<TLaunch> maker, DType t2) : Formats.IFunc<TLaunch>
    {
        public TLaunch Invoke<T1>() where T1 : struct, IWeightFormat => Formats.With(t2, new Inner<T1>(acc, maker));

        sealed class Inner<T1>(Accelerator acc, IKernelMaker<TLaunch> maker) : Formats.IFunc<TLaunch> where T1 : struct, IWeightFormat
        {
            public TLaunch Invoke<T2>() where T2 : struct, IWeightFormat => maker.Make<T1, T2>(acc);
        }
    }

    sealed class Gemv1Maker<TU> : IKernelMaker<GemvLaunch> where TU : struct, IUnroll
    {
        public static readonly Gemv1Maker<TU> Instance = new();

        public GemvLaunch Make<T1, T2>(Accelerator acc) where T1 : struct, IWeightFormat where T2 : struct, IWeightFormat =>
            acc.LoadKernel<ArrayView<Chunk16>, ArrayView<float>, ArrayView<Float4>, ArrayView<float>, ArrayView<float>, RowArgs>(GemvKernels.Gemv1<T1, TU>);
    }

    sealed class GemvMaker : IKernelMaker<GemvLaunch>
    {
        public static readonly GemvMaker Instance = new();

        public GemvLaunch Make<T1, T2>(Accelerator acc) where T1 : struct, IWeightFormat where T2 : struct, IWeightFormat =>
            acc.LoadKernel<ArrayView<Chunk16>, ArrayView<float>, ArrayView<Float4>, ArrayView<float>, ArrayView<float>, RowArgs>(RowKernels.Gemv<T1>);
    }

    sealed class GateUpMaker : IKernelMaker<GateUpLaunch>
    {
        public static readonly GateUpMaker Instance = new();

        public GateUpLaunch Make<T1, T2>(Accelerator acc) where T1 : struct, IWeightFormat where T2 : struct, IWeightFormat =>
            acc.LoadKernel<ArrayView<Chunk16>, ArrayView<Chunk16>, ArrayView<float>, ArrayView<Float4>, ArrayView<int>, ArrayView<float>, RowArgs>(RowKernels.GateUp<T1, T2>);
    }

    sealed class DownMaker : IKernelMaker<DownLaunch>
    {
        public static readonly DownMaker Instance = new();

        public DownLaunch Make<T1, T2>(Accelerator acc) where T1 : struct, IWeightFormat where T2 : struct, IWeightFormat =>
            acc.LoadKernel<ArrayView<Chunk16>, ArrayView<float>, ArrayView<Float4>, ArrayView<int>, ArrayView<float>, ArrayView<float>, RowArgs>(RowKernels.Down<T1>);
    }

    sealed class DownCombineMaker : IKernelMaker<DownLaunch>
    {
        public static readonly DownCombineMaker Instance = new();

        public DownLaunch Make<T1, T2>(Accelerator acc) where T1 : struct, IWeightFormat where T2 : struct, IWeightFormat =>
            acc.LoadKernel<ArrayView<Chunk16>, ArrayView<float>, ArrayView<Float4>, ArrayView<int>, ArrayView<float>, ArrayView<float>, RowArgs>(RowKernels.DownCombine<T1>);
    }

    sealed class TileLinearMaker : IKernelMaker<TileLinearLaunch>
    {
        public static readonly TileLinearMaker Instance = new();

        public TileLinearLaunch Make<T1, T2>(Accelerator acc) where T1 : struct, IWeightFormat where T2 : struct, IWeightFormat =>
            acc.LoadKernel<ArrayView<Chunk16>, ArrayView<float>, ArrayView<Float4>, ArrayView<float>, ArrayView<float>, TileArgs>(TileKernels.Linear<T1>);
    }

    sealed class TileGateUpMaker : IKernelMaker<TileGateUpLaunch>
    {
        public static readonly TileGateUpMaker Instance = new();

        public TileGateUpLaunch Make<T1, T2>(Accelerator acc) where T1 : struct, IWeightFormat where T2 : struct, IWeightFormat =>
            acc.LoadKernel<ArrayView<Chunk16>, ArrayView<Chunk16>, ArrayView<float>, ArrayView<Float4>, ArrayView<int>, ArrayView<float>, TileArgs>(TileKernels.GateUp<T1, T2>);
    }

    sealed class TileDownMaker : IKernelMaker<TileDownLaunch>
    {
        public static readonly TileDownMaker Instance = new();

        public TileDownLaunch Make<T1, T2>(Accelerator acc) where T1 : struct, IWeightFormat where T2 : struct, IWeightFormat =>
            acc.LoadKernel<ArrayView<Chunk16>, ArrayView<float>, ArrayView<Float4>, ArrayView<int>, ArrayView<float>, ArrayView<float>, TileArgs>(TileKernels.Down<T1>);
    }

    /// <summary>y [T, width] = Σ_j yk[t·topK + j] (per-slot outputs already weighted).</summary>
    public void Combine(AcceleratorStream s, ArrayView<float> yk, ArrayView<float> y, int tokens, int topK, int width)
    {
        if (tokens <= 0) return;
        _combine(s, Elementwise((long)tokens * width), yk, y, tokens, topK, width);
    }

    /// <summary>RMSNorm (bias null) or LayerNorm of <paramref name="rows"/> rows of weight.Length; y may be x.</summary>
    public void Norm(AcceleratorStream s, ArrayView<float> x, ArrayView<float> y, ArrayView<float> weight, ArrayView<float>? bias,
        int rows, int n, float eps)
    {
        if (rows <= 0) return;
        var a = new NormArgs { Rows = rows, N = n, Eps = eps, Layer = bias != null ? 1 : 0, Lanes = _lanes };
        _norm(s, Teams(rows, _lanes, GroupSize), x, y, weight, bias ?? _dummyF.View, a);
    }

    /// <summary>Rotate-half RoPE of x [T, heads, headDim] for positions startPos.. from cos/sin tables [positions, half].</summary>
    public void Rope(AcceleratorStream s, ArrayView<float> x, ArrayView<float> cos, ArrayView<float> sin, int tokens, int heads,
        int headDim, int half, int startPos)
    {
        if (tokens <= 0 || half == 0) return;
        var a = new RopeArgs { Tokens = tokens, Heads = heads, HeadDim = headDim, Half = half, StartPos = startPos };
        _rope(s, Elementwise((long)tokens * heads * half), x, cos, sin, a);
    }

    /// <summary>x[t] = table[tokens[t]] widened to fp32.</summary>
    public void Embed(AcceleratorStream s, in GpuMatrix table, ArrayView<int> tokens, ArrayView<float> x, int count)
    {
        if (count <= 0) return;
        _embed(s, Elementwise((long)count * table.Cols), table.Data, tokens, x, count, table.Cols, table.RowChunks, (int)table.Type);
    }

    /// <summary>acc[i] += x[i], i &lt; n.</summary>
    public void Add(AcceleratorStream s, ArrayView<float> acc, ArrayView<float> x, int n)
    {
        if (n > 0) _add(s, Elementwise(n), acc, x, n);
    }

    /// <summary>Clamps x[i] to ±limit, i &lt; n.</summary>
    public void Clamp(AcceleratorStream s, ArrayView<float> x, int n, float limit)
    {
        if (n > 0) _clamp(s, Elementwise(n), x, n, limit);
    }

    /// <summary>acc[t, :] += sigmoid(gate[t]) · x[t, :].</summary>
    public void AddSigmoidScaled(AcceleratorStream s, ArrayView<float> acc, ArrayView<float> x, ArrayView<float> gate, int tokens, int width)
    {
        if (tokens > 0 && width > 0) _addSigmoid(s, Elementwise((long)tokens * width), acc, x, gate, tokens, width);
    }

    /// <summary>
    /// Appends k, v [T, NKV·D] to kc, vc at startPos and writes o [T, NH·D] = causal (optionally windowed) GQA of q over
    /// the cache — one launch.
    /// </summary>
    public void Attention(AcceleratorStream s, ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, ArrayView<float> kc,
        ArrayView<float> vc, ArrayView<float> o, int tokens, int startPos, int heads, int kvHeads, int headDim, int window)
    {
        if (tokens <= 0) return;
        if (headDim > AttentionKernel.MaxHeadDim) throw new NotSupportedException($"head dim {headDim} > {AttentionKernel.MaxHeadDim}");
        if (heads % kvHeads != 0) throw new ArgumentException($"{heads} heads are not a multiple of {kvHeads} kv heads");
        int lanes = _attnLanes;
        int teams = Math.Min(IsCpu ? Math.Min(4, AttentionTeams) : AttentionTeams, Accelerator.MaxNumThreadsPerGroup / lanes);
        var a = new AttnArgs
        {
            Tokens = tokens, StartPos = startPos, Heads = heads, KvHeads = kvHeads, HeadDim = headDim,
            Window = Math.Max(0, window), Lanes = lanes, Scale = 1f / MathF.Sqrt(headDim),
        };
        long items = (long)tokens * heads;
        int groups = (int)Math.Min(items, IsCpu ? MaxGroups : int.MaxValue);
        Interlocked.Increment(ref _launches);
        _attention(s, new KernelConfig(groups, teams * lanes), q, k, v, kc, vc, o, AsFloat4(q), AsFloat4(k), AsFloat4(kc), a);
    }
}
