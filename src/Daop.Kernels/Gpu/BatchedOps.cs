using ILGPU;
using ILGPU.Runtime;

namespace Daop.Kernels.Gpu;

/// <summary>
/// What the batched (more than <see cref="GpuKernels.RowTokens"/> positions) linear and expert launchers share: the
/// tile launch shapes, the choice between the fp32 FMA <see cref="TileKernels"/> and the bf16 tensor-core
/// <see cref="MmaKernels"/> (bf16 and the block formats), and the tensor-core kernels with their hi/lo activation split
/// into a scratch buffer.
/// </summary>
internal sealed class BatchedOps(GpuLaunch launch)
{
    GpuArray<Chunk16>? _splitScratch;
    MmaLaunchers? _mma;

    /// <summary>
    /// Whether batched work on <paramref name="type"/> weights runs on the tensor cores: bf16, and the block formats
    /// dequantized to bf16 in registers (f16 and f32 take the fp32 FMA tiles).
    /// </summary>
    public bool Mma(DType type) => launch.Options.TensorCores == true && (type == DType.BF16 || GpuMatrix.DeviceType(type).IsBlock());

    /// <summary>Positions per tile the batched kernels take for weights of <paramref name="type"/>.</summary>
    public int BatchTileTokens(DType type) => Mma(type) ? MmaKernels.TileTokens : TileKernels.TileTokens;

    /// <summary>Tile arguments for <paramref name="positions"/> rows through <paramref name="w"/>, dense tiles of the FMA kernels.</summary>
    public static TileArgs TileArgsOf(in GpuMatrix w, int positions, int flags) => new()
    {
        Rows = w.Rows, Cols = w.Cols, RowChunks = w.RowChunks, Positions = positions, Flags = flags, TopK = 1,
        Tiles = (positions + TileKernels.TileTokens - 1) / TileKernels.TileTokens,
    };

    /// <summary>A counted launch of the FMA tile kernels: one thread per 4 rows × 4 positions.</summary>
    public KernelConfig TileConfig(in TileArgs t)
    {
        long items = (long)t.Tiles * ((t.Rows + 3) / 4) * (TileKernels.TileTokens / 4);
        int group = launch.IsCpu ? launch.GroupSize : Math.Min(256, launch.Gpu.MaxThreadsPerGroup);
        return launch.Teams(items, 1, group);
    }

    /// <summary>A counted launch of the tensor-core kernels: a warp per 16 rows of a tile.</summary>
    public KernelConfig MmaConfig(long warpItems)
    {
        int group = launch.Options.MmaGroupSize;
        long groups = Math.Max(1, (warpItems * 32 + group - 1) / group);
        launch.Count();
        return new KernelConfig((int)Math.Min(groups, int.MaxValue), group);
    }

    /// <summary>The tensor-core kernels, loaded on first use (emulated mma on the CPU accelerator).</summary>
    public MmaLaunchers MmaKernelsLoaded => _mma ??= new MmaLaunchers(launch.Loader);

    /// <summary>Held from <see cref="SplitRows"/> until the kernel reading the split activations is queued.</summary>
    public Lock SplitLock { get; } = new();

    /// <summary>
    /// Splits P rows of x (gathered through index / topK when given) into bf16 hi/lo chunk rows in the scratch (P + one
    /// tile of padding rows), in the k order of w's format (<see cref="MmaKernels.SplitBlocks"/> for block formats), and
    /// sets t.LoOffset; one launch. The caller holds <see cref="SplitLock"/>.
    /// </summary>
    public GpuView<Chunk16> SplitRows(GpuStream s, GpuView<float> x, GpuView<int>? index, in GpuMatrix w, int positions, int topK,
        ref TileArgs t)
    {
        int rc = w.Type.IsBlock() ? 4 * BlockLayout.Blocks(w.Cols) : GpuMatrix.ChunksPerRow(DType.BF16, w.Cols);
        long half = (long)(positions + MmaKernels.TileTokens) * rc;
        if (2 * half > int.MaxValue) throw new NotSupportedException($"{positions} positions of {w.Cols} columns are too many for one batch");
        if (_splitScratch == null || _splitScratch.Length < 2 * half)
        {
            if (_splitScratch != null) { s.Synchronize(); _splitScratch.Dispose(); }
            _splitScratch = launch.Gpu.Allocate1D<Chunk16>(Math.Max(2 * half, 1 << 16));
        }
        t.LoOffset = (int)half;
        var sa = new TileArgs
        {
            Rows = t.Rows, Cols = w.Cols, RowChunks = rc, Positions = positions, TopK = topK, LoOffset = (int)half,
            Flags = GpuLaunch.AlignedFlag(w.Cols) | (index != null ? RowKernels.FlagGrouped : 0),
        };
        // The view ends where the lo rows end, so a tile reading past its padding fails the CPU accelerator's bounds checks.
        var xs = _splitScratch.View.SubView(0, 2 * half);
        MmaKernelsLoaded.Split(w.Type)(s, launch.Elementwise((long)positions * rc), x, launch.AsFloat4(x), index ?? launch.Loader.DummyI, xs, sa);
        return xs;
    }
}

/// <summary>
/// The tensor-core kernels of one accelerator per weight format, loaded on first use: real mma on CUDA, emulated through
/// shuffles on the CPU accelerator.
/// </summary>
internal sealed class MmaLaunchers(GpuKernelLoader l)
{
    /// <summary>Binds the tensor-core kernels for every format in <paramref name="formats"/> (the catalog's walk).</summary>
    public void LoadAll(IReadOnlyList<DType> formats)
    {
        foreach (var t in formats)
        {
            Split(t);
            Linear(t);
            GateUp(t);
            Down(t);
            GateUpBiased(t);
            DownBiased(t);
        }
    }

    public MmaSplitLaunch Split(DType type) => l.Typed("MmaSplit", type, type, SplitMaker.Instance);
    public MmaLinearLaunch Linear(DType type) => l.Typed("MmaLinear", type, type, LinearMaker.Instance);
    public MmaGateUpLaunch GateUp(DType type) => l.Typed("MmaGateUp", type, type, GateUpMaker.Instance);
    public MmaDownLaunch Down(DType type) => l.Typed("MmaDown", type, type, DownMaker.Instance);
    public MmaGateUpBiasedLaunch GateUpBiased(DType type) => l.Typed("MmaGateUpBiased", type, type, GateUpBiasedMaker.Instance);
    public MmaDownBiasedLaunch DownBiased(DType type) => l.Typed("MmaDownBiased", type, type, DownBiasedMaker.Instance);

    sealed class GateUpBiasedMaker : IKernelMaker<MmaGateUpBiasedLaunch>
    {
        public static readonly GateUpBiasedMaker Instance = new();

        public MmaGateUpBiasedLaunch Make<T1, T2>(KernelSource src) where T1 : struct, IWeightFormat where T2 : struct, IWeightFormat => src.Gpu.IsCpu
            ? src.Bind<GpuView<Chunk16>, GpuView<Chunk16>, GpuView<Chunk16>, GpuView<int>, GpuView<float>, GpuView<float>, TileArgs, ExpertBiasArgs>(
                MmaKernels.GateUpBiased<EmulatedAcc, T1>)
            : src.Bind<GpuView<Chunk16>, GpuView<Chunk16>, GpuView<Chunk16>, GpuView<int>, GpuView<float>, GpuView<float>, TileArgs, ExpertBiasArgs>(
                MmaKernels.GateUpBiased<TensorCoreAcc, T1>);
    }

    sealed class DownBiasedMaker : IKernelMaker<MmaDownBiasedLaunch>
    {
        public static readonly DownBiasedMaker Instance = new();

        public MmaDownBiasedLaunch Make<T1, T2>(KernelSource src) where T1 : struct, IWeightFormat where T2 : struct, IWeightFormat => src.Gpu.IsCpu
            ? src.Bind<GpuView<Chunk16>, GpuView<Chunk16>, GpuView<int>, GpuView<float>, GpuView<float>, GpuView<float>, TileArgs, ExpertBiasArgs>(
                MmaKernels.DownBiased<EmulatedAcc, T1>)
            : src.Bind<GpuView<Chunk16>, GpuView<Chunk16>, GpuView<int>, GpuView<float>, GpuView<float>, GpuView<float>, TileArgs, ExpertBiasArgs>(
                MmaKernels.DownBiased<TensorCoreAcc, T1>);
    }


    sealed class SplitMaker : IKernelMaker<MmaSplitLaunch>
    {
        public static readonly SplitMaker Instance = new();

        public MmaSplitLaunch Make<T1, T2>(KernelSource src) where T1 : struct, IWeightFormat where T2 : struct, IWeightFormat =>
            default(T1).BlockChunks > 0
                ? src.Bind<GpuView<float>, GpuView<Float4>, GpuView<int>, GpuView<Chunk16>, TileArgs>(MmaKernels.SplitBlocks<T1>)
                : src.Bind<GpuView<float>, GpuView<Float4>, GpuView<int>, GpuView<Chunk16>, TileArgs>(MmaKernels.Split);
    }

    sealed class LinearMaker : IKernelMaker<MmaLinearLaunch>
    {
        public static readonly LinearMaker Instance = new();

        public MmaLinearLaunch Make<T1, T2>(KernelSource src) where T1 : struct, IWeightFormat where T2 : struct, IWeightFormat => src.Gpu.IsCpu
            ? src.Bind<GpuView<Chunk16>, GpuView<Chunk16>, GpuView<float>, GpuView<float>, TileArgs>(MmaKernels.Linear<EmulatedAcc, T1>)
            : src.Bind<GpuView<Chunk16>, GpuView<Chunk16>, GpuView<float>, GpuView<float>, TileArgs>(MmaKernels.Linear<TensorCoreAcc, T1>);
    }

    sealed class GateUpMaker : IKernelMaker<MmaGateUpLaunch>
    {
        public static readonly GateUpMaker Instance = new();

        public MmaGateUpLaunch Make<T1, T2>(KernelSource src) where T1 : struct, IWeightFormat where T2 : struct, IWeightFormat => src.Gpu.IsCpu
            ? src.Bind<GpuView<Chunk16>, GpuView<Chunk16>, GpuView<Chunk16>, GpuView<int>, GpuView<float>, TileArgs>(
                MmaKernels.GateUp<EmulatedAcc, T1>)
            : src.Bind<GpuView<Chunk16>, GpuView<Chunk16>, GpuView<Chunk16>, GpuView<int>, GpuView<float>, TileArgs>(
                MmaKernels.GateUp<TensorCoreAcc, T1>);
    }

    sealed class DownMaker : IKernelMaker<MmaDownLaunch>
    {
        public static readonly DownMaker Instance = new();

        public MmaDownLaunch Make<T1, T2>(KernelSource src) where T1 : struct, IWeightFormat where T2 : struct, IWeightFormat => src.Gpu.IsCpu
            ? src.Bind<GpuView<Chunk16>, GpuView<Chunk16>, GpuView<int>, GpuView<float>, GpuView<float>, TileArgs>(
                MmaKernels.Down<EmulatedAcc, T1>)
            : src.Bind<GpuView<Chunk16>, GpuView<Chunk16>, GpuView<int>, GpuView<float>, GpuView<float>, TileArgs>(
                MmaKernels.Down<TensorCoreAcc, T1>);
    }
}
