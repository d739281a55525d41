using System.Runtime.CompilerServices;
using System.Reflection;
using ILGPU;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;

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

    readonly Action<AcceleratorStream, KernelConfig, ArrayView<Chunk16>, ArrayView<float>, ArrayView<Float4>, ArrayView<float>, ArrayView<float>, RowArgs> _gemv;
    readonly Action<AcceleratorStream, KernelConfig, ArrayView<Chunk16>, ArrayView<Chunk16>, ArrayView<float>, ArrayView<Float4>, ArrayView<int>, ArrayView<float>, RowArgs> _gateUp;
    readonly Action<AcceleratorStream, KernelConfig, ArrayView<Chunk16>, ArrayView<float>, ArrayView<Float4>, ArrayView<int>, ArrayView<float>, ArrayView<float>, RowArgs> _down, _downCombine;
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
    int _lanes, _attnLanes, _attnTeams = AttentionKernel.MaxTeams;

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
        _gemv = acc.LoadKernel<ArrayView<Chunk16>, ArrayView<float>, ArrayView<Float4>, ArrayView<float>, ArrayView<float>, RowArgs>(RowKernels.Gemv);
        _gateUp = acc.LoadKernel<ArrayView<Chunk16>, ArrayView<Chunk16>, ArrayView<float>, ArrayView<Float4>, ArrayView<int>, ArrayView<float>, RowArgs>(RowKernels.GateUp);
        _down = acc.LoadKernel<ArrayView<Chunk16>, ArrayView<float>, ArrayView<Float4>, ArrayView<int>, ArrayView<float>, ArrayView<float>, RowArgs>(RowKernels.Down);
        _downCombine = acc.LoadKernel<ArrayView<Chunk16>, ArrayView<float>, ArrayView<Float4>, ArrayView<int>, ArrayView<float>, ArrayView<float>, RowArgs>(RowKernels.DownCombine);
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

    /// <summary>Every kernel entry point by name (all explicitly grouped).</summary>
    public static IReadOnlyDictionary<string, MethodInfo> KernelMethods { get; } = new Dictionary<string, MethodInfo>
    {
        ["Gemv"] = typeof(RowKernels).GetMethod(nameof(RowKernels.Gemv))!,
        ["GateUp"] = typeof(RowKernels).GetMethod(nameof(RowKernels.GateUp))!,
        ["Down"] = typeof(RowKernels).GetMethod(nameof(RowKernels.Down))!,
        ["DownCombine"] = typeof(RowKernels).GetMethod(nameof(RowKernels.DownCombine))!,
        ["Norm"] = typeof(VectorKernels).GetMethod(nameof(VectorKernels.Norm))!,
        ["Rope"] = typeof(VectorKernels).GetMethod(nameof(VectorKernels.Rope))!,
        ["Embed"] = typeof(VectorKernels).GetMethod(nameof(VectorKernels.Embed))!,
        ["Add"] = typeof(VectorKernels).GetMethod(nameof(VectorKernels.Add))!,
        ["Clamp"] = typeof(VectorKernels).GetMethod(nameof(VectorKernels.Clamp))!,
        ["AddSigmoidScaled"] = typeof(VectorKernels).GetMethod(nameof(VectorKernels.AddSigmoidScaled))!,
        ["Combine"] = typeof(VectorKernels).GetMethod(nameof(VectorKernels.Combine))!,
        ["Attention"] = typeof(AttentionKernel).GetMethod(nameof(AttentionKernel.Causal))!,
    };

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
        Rows = w.Rows, Cols = w.Cols, RowChunks = w.RowChunks, Type = (int)w.Type, Type2 = (int)w.Type,
        Tokens = tokens, Lanes = _lanes, Flags = AlignedFlag(w.Cols), TopK = 1,
    };

    /// <summary>y [T, rows] = x [T, cols] · Wᵀ (+ bias [rows]). x and y must be whole buffers (16-byte aligned starts).</summary>
    public void Gemv(AcceleratorStream s, in GpuMatrix w, ArrayView<float> x, ArrayView<float> y, int tokens, ArrayView<float>? bias = null)
    {
        if (tokens <= 0 || w.Rows == 0) return;
        var a = Args(w, tokens);
        if (bias is { } b) a.Flags |= RowKernels.FlagBias;
        _gemv(s, Teams((long)w.Rows * ((tokens + 3) / 4), _lanes, GroupSize), w.Data, x, AsFloat4(x), bias ?? _dummyF.View, y, a);
    }

    /// <summary>
    /// h [P, inter] = SiLU(x·Wgᵀ) ⊙ (x·Wuᵀ) for P positions. Without <paramref name="index"/>: dense, row p of x for
    /// position p, expert 0. With it: <paramref name="index"/>[p] is the routing slot of position p (x row = slot / topK)
    /// and [tileOffset, +3·tiles) holds (expert, first position, count ≤ 4) tiles over the expert stacks.
    /// </summary>
    public void GateUp(AcceleratorStream s, in GpuMatrix gate, in GpuMatrix up, ArrayView<float> x, ArrayView<float> h, int positions,
        ArrayView<int>? index = null, int topK = 1, int tiles = 0, int tileOffset = 0)
    {
        if (positions <= 0) return;
        var a = Args(gate, positions);
        a.Type2 = (int)up.Type;
        a.TopK = topK;
        if (index != null) { a.Flags |= RowKernels.FlagGrouped; a.Tiles = tiles; a.TileOffset = tileOffset; }
        else a.Tiles = (positions + 3) / 4;
        _gateUp(s, Teams((long)a.Tiles * gate.Rows, _lanes, GroupSize), gate.Data, up.Data, x, AsFloat4(x), index ?? _dummyI.View, h, a);
    }

    /// <summary>
    /// Down projection of P positions of h [P, inter]. Dense: y[p] = Wd·h[p]. Grouped (index as in <see cref="GateUp"/>):
    /// y[slot] = scales[slot] · Wd[e]·h[p] with slot = index[p] — per-slot outputs for <see cref="Combine"/>.
    /// </summary>
    public void Down(AcceleratorStream s, in GpuMatrix down, ArrayView<float> h, ArrayView<float> y, int positions,
        ArrayView<int>? index = null, ArrayView<float>? scales = null, int tiles = 0, int tileOffset = 0)
    {
        if (positions <= 0) return;
        var a = Args(down, positions);
        if (index != null) { a.Flags |= RowKernels.FlagGrouped; a.Tiles = tiles; a.TileOffset = tileOffset; }
        else a.Tiles = (positions + 3) / 4;
        _down(s, Teams((long)a.Tiles * down.Rows, _lanes, GroupSize), down.Data, h, AsFloat4(h), index ?? _dummyI.View,
            scales ?? _dummyF.View, y, a);
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
        _downCombine(s, Teams((long)tokens * down.Rows, _lanes, GroupSize), down.Data, h, AsFloat4(h), index, scales, y, a);
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
