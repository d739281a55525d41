using System.Runtime.CompilerServices;
using Daop.Kernels.Generated;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;

namespace Daop.Kernels.Gpu;

/// <summary>
/// One kernel set: every Daop op's host-side launcher on one accelerator with one <see cref="GpuKernelOptions"/>,
/// counting launches. Get it with <see cref="For(GpuContext)"/> or <see cref="For(GpuContext, GpuKernelOptions)"/>;
/// sets are cached per accelerator and options, and all sets of an accelerator share its loaded kernels.
/// </summary>
/// <remarks>
/// The ops live in one class per family: <see cref="LinearOps"/> (dense Linear), <see cref="ExpertOps"/> (expert
/// FFN, with <see cref="GeneratedExpertOps"/> and <see cref="BatchedOps"/>), <see cref="AttentionOps"/> and
/// <see cref="VectorOps"/> (element-wise and per-row), on the loader <see cref="GpuKernelLoader"/>.
/// Launch shapes: on a GPU, row kernels run a warp per output row (<see cref="Lanes"/> = warp size) in groups of
/// <see cref="GroupSize"/> threads. On the ILGPU CPU accelerator every thread is an OS thread and every shuffle a
/// barrier, so the default there is one lane per row and one group per multiprocessor; tests ask for wider teams
/// through the options to exercise the shuffle paths.
/// </remarks>
public sealed partial class GpuKernels
{
    static readonly ConditionalWeakTable<GpuContext, Dictionary<GpuKernelOptions, GpuKernels>> s_cache = new();
    static readonly Lock s_lock = new();

    readonly GpuLaunch _launch;
    readonly LinearOps _linear;
    readonly ExpertOps _experts;
    readonly GeneratedExpertOps _generated;
    readonly BatchedOps _batched;
    readonly AttentionOps _attention;
    readonly VectorOps _vector;

    GpuKernels(GpuLaunch launch)
    {
        _launch = launch;
        _batched = new BatchedOps(launch);
        _generated = new GeneratedExpertOps(launch);
        _linear = new LinearOps(launch, _batched);
        _experts = new ExpertOps(launch, _batched, _generated);
        _attention = new AttentionOps(launch);
        _vector = new VectorOps(launch);
    }

    /// <summary>The kernels of <paramref name="gpu"/> with the default options, made on first request.</summary>
    public static GpuKernels For(GpuContext gpu) => For(gpu, GpuKernelOptions.Default);

    /// <summary>The kernels of ILGPU's CPU accelerator <paramref name="accelerator"/> (<see cref="IlgpuCpuGpu.For"/>) with the default options.</summary>
    public static GpuKernels For(Accelerator accelerator) => For(IlgpuCpuGpu.For(accelerator), GpuKernelOptions.Default);

    /// <summary>The kernels of ILGPU's CPU accelerator <paramref name="accelerator"/> with <paramref name="options"/>.</summary>
    public static GpuKernels For(Accelerator accelerator, GpuKernelOptions options) => For(IlgpuCpuGpu.For(accelerator), options);

    /// <summary>
    /// The kernel set of <paramref name="gpu"/> with <paramref name="options"/> (defaults filled in for the GPU;
    /// out-of-range values throw), made on first request: equal options give the same set.
    /// </summary>
    public static GpuKernels For(GpuContext gpu, GpuKernelOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        lock (s_lock)
        {
            var loader = GpuKernelLoader.For(gpu);
            var resolved = options.Resolve(gpu, loader.IsCpu, loader.GroupSize);
            var sets = s_cache.GetOrCreateValue(gpu);
            if (!sets.TryGetValue(resolved, out var k)) sets[resolved] = k = new GpuKernels(new GpuLaunch(loader, resolved));
            return k;
        }
    }

    /// <summary>
    /// Binds every kernel this set can launch, for every weight format the GPU kernels read (the catalog's walk; on a
    /// real GPU it would load them all).
    /// </summary>
    internal void LoadAll()
    {
        DType[] all = [DType.BF16, DType.F16, DType.F32, DType.Q8_0, DType.Q4_0, DType.MXFP4, DType.Q4_K];
        _linear.LoadAll(all);
        _experts.LoadAll(all);
        _batched.MmaKernelsLoaded.LoadAll([.. all.Where(_batched.Mma)]);
        _vector.Route();
        _generated.LoadAll();
        _ = Latent;
    }

    /// <summary>Creates the ILGPU CPU accelerator Daop tests and CPU fallbacks use: warps of 4 threads, one warp per group, one multiprocessor.</summary>
    public static CPUDevice CpuDevice(int warpSize = 4, int warpsPerGroup = 1, int multiprocessors = 1) =>
        new(warpSize, warpsPerGroup, multiprocessors);

    /// <summary>The GPU the kernels run on.</summary>
    public GpuContext Gpu => _launch.Gpu;
    /// <summary>True on the ILGPU CPU accelerator (the CI stand-in for a GPU).</summary>
    public bool IsCpu => _launch.IsCpu;
    /// <summary>Threads per group of the row and element-wise kernels.</summary>
    public int GroupSize => _launch.GroupSize;
    /// <summary>Most groups a grid-stride launch asks for.</summary>
    public int MaxGroups => _launch.MaxGroups;
    /// <summary>This set's options, every default filled in.</summary>
    public GpuKernelOptions Options => _launch.Options;
    /// <summary>Threads per output row in the row and norm kernels (<see cref="GpuKernelOptions.Lanes"/>).</summary>
    public int Lanes => _launch.Lanes;
    /// <summary>Threads per (token, head) in the attention kernel (<see cref="GpuKernelOptions.AttentionLanes"/>).</summary>
    public int AttentionLanes => Options.AttentionLanes;
    /// <summary>Teams per (token, head) in the attention kernel (<see cref="GpuKernelOptions.AttentionTeams"/>).</summary>
    public int AttentionTeams => Options.AttentionTeams;
    /// <summary>Whether the tensor cores are on for batched work (<see cref="GpuKernelOptions.TensorCores"/>).</summary>
    public bool TensorCores => Options.TensorCores == true;

    /// <summary>Whether batched work on <paramref name="type"/> weights runs on the tensor cores (bf16 and the block formats when <see cref="TensorCores"/>).</summary>
    public bool BatchesOnTensorCores(DType type) => _batched.Mma(type);

    /// <summary>Kernel launches through this set so far (all launchers, all callers).</summary>
    public long Launches => _launch.Launches;

    /// <summary>Of <see cref="Launches"/>, those that ran a generated (shape-specialised) expert kernel.</summary>
    public long GeneratedLaunches => _launch.GeneratedLaunches;

    /// <summary>Up to this many positions (per weight load) the row kernels take; more go to the batched kernels.</summary>
    public const int RowTokens = 4;

    /// <summary>
    /// The generated expert whose kernels this set's expert launchers run for experts of <paramref name="hidden"/> ×
    /// <paramref name="inter"/> <paramref name="type"/> weights, or null when they run the generic kernels.
    /// </summary>
    public GeneratedGpuExpert? GeneratedExpertFor(int hidden, int inter, DType type) => _generated.Find(hidden, inter, type);

    /// <summary>
    /// Positions per tile the batched kernels take for weights of <paramref name="type"/> (callers building grouped
    /// tile lists for <see cref="GateUp"/> / <see cref="Down"/> with <c>batched: true</c> use this size).
    /// </summary>
    public int BatchTileTokens(DType type) => _batched.BatchTileTokens(type);

    /// <summary>Positions per tile for an expert whose gate/up and down weights may differ in type: the smaller size.</summary>
    public int BatchTileTokens(DType gateUp, DType down) => Math.Min(BatchTileTokens(gateUp), BatchTileTokens(down));

    /// <inheritdoc cref="LinearOps.Gemv"/>
    public void Gemv(GpuStream s, in GpuMatrix w, GpuView<float> x, GpuView<float> y, int tokens, GpuView<float>? bias = null) =>
        _linear.Gemv(s, w, x, y, tokens, bias);

    /// <inheritdoc cref="LinearOps.Gemv3"/>
    public void Gemv3(GpuStream s, in GpuMatrix w0, in GpuMatrix w1, in GpuMatrix w2, GpuView<float> x, GpuView<float> y0,
        GpuView<float> y1, GpuView<float> y2, int tokens, GpuView<float>? b0 = null, GpuView<float>? b1 = null, GpuView<float>? b2 = null) =>
        _linear.Gemv3(s, w0, w1, w2, x, y0, y1, y2, tokens, b0, b1, b2);

    /// <inheritdoc cref="ExpertOps.GateUp"/>
    /// <remarks>
    /// Row-kernel launches (not <paramref name="batched"/>) run the shape's generated kernel when this set has one
    /// (<see cref="GeneratedExpertFor"/>), with the same launch shape and results up to summation order.
    /// </remarks>
    public void GateUp(GpuStream s, in GpuMatrix gate, in GpuMatrix up, GpuView<float> x, GpuView<float> h, int positions,
        GpuView<int>? index = null, int topK = 1, int tiles = 0, int tileOffset = 0, bool batched = false, GpuView<float>? bias = null,
        ExpertBiasArgs biasArgs = default) =>
        _experts.GateUp(s, gate, up, x, h, positions, index, topK, tiles, tileOffset, batched, bias, biasArgs);

    /// <inheritdoc cref="ExpertOps.Down"/>
    /// <remarks>Row-kernel launches run the shape's generated kernel when this set has one, as in <see cref="GateUp"/>.</remarks>
    public void Down(GpuStream s, in GpuMatrix down, GpuView<float> h, GpuView<float> y, int positions,
        GpuView<int>? index = null, GpuView<float>? scales = null, int tiles = 0, int tileOffset = 0, bool batched = false,
        GpuView<float>? bias = null, ExpertBiasArgs biasArgs = default) =>
        _experts.Down(s, down, h, y, positions, index, scales, tiles, tileOffset, batched, bias, biasArgs);

    /// <inheritdoc cref="ExpertOps.DownCombine"/>
    /// <remarks>Runs the shape's generated kernel when this set has one, as in <see cref="GateUp"/>.</remarks>
    public void DownCombine(GpuStream s, in GpuMatrix down, GpuView<float> h, GpuView<float> y, int tokens, int topK,
        GpuView<int> index, GpuView<float> scales, int posOffset, int expertOffset, GpuView<float>? bias = null, ExpertBiasArgs biasArgs = default) =>
        _experts.DownCombine(s, down, h, y, tokens, topK, index, scales, posOffset, expertOffset, bias, biasArgs);

    /// <inheritdoc cref="VectorOps.Combine"/>
    public void Combine(GpuStream s, GpuView<float> yk, GpuView<float> y, int tokens, int topK, int width) =>
        _vector.Combine(s, yk, y, tokens, topK, width);

    /// <inheritdoc cref="VectorOps.SoftmaxTopK"/>
    public void SoftmaxTopK(GpuStream s, GpuView<float> logits, GpuView<int> index, int tokens, int experts, int topK, bool renormalize) =>
        _vector.SoftmaxTopK(s, logits, index, tokens, experts, topK, renormalize);

    /// <inheritdoc cref="VectorOps.Norm"/>
    public void Norm(GpuStream s, GpuView<float> x, GpuView<float> y, GpuView<float> weight, GpuView<float>? bias,
        int rows, int n, float eps, GpuView<float>? residual = null) => _vector.Norm(s, x, y, weight, bias, rows, n, eps, residual);

    /// <inheritdoc cref="VectorOps.Rope"/>
    public void Rope(GpuStream s, GpuView<float> x, GpuView<float> cos, GpuView<float> sin, int tokens, int heads,
        int headDim, int half, GpuView<int> stepTokens, GpuView<float>? x2 = null, int heads2 = 0) =>
        _vector.Rope(s, x, cos, sin, tokens, heads, headDim, half, stepTokens, x2, heads2);

    /// <inheritdoc cref="VectorOps.Embed"/>
    public void Embed(GpuStream s, in GpuMatrix table, GpuView<int> tokens, GpuView<float> x, int count) =>
        _vector.Embed(s, table, tokens, x, count);

    /// <inheritdoc cref="VectorOps.Add"/>
    public void Add(GpuStream s, GpuView<float> acc, GpuView<float> x, int n) => _vector.Add(s, acc, x, n);

    /// <inheritdoc cref="VectorOps.Clamp"/>
    public void Clamp(GpuStream s, GpuView<float> x, int n, float limit) => _vector.Clamp(s, x, n, limit);

    /// <inheritdoc cref="VectorOps.ScaleRows"/>
    public void ScaleRows(GpuStream s, GpuView<float> x, GpuView<float> scales, int tokens, int width) => _vector.ScaleRows(s, x, scales, tokens, width);

    /// <inheritdoc cref="VectorOps.Scale"/>
    public void Scale(GpuStream s, GpuView<float> x, int n, float factor) => _vector.Scale(s, x, n, factor);

    /// <inheritdoc cref="VectorOps.AddSigmoidScaled"/>
    public void AddSigmoidScaled(GpuStream s, GpuView<float> acc, GpuView<float> x, GpuView<float> gate, int tokens, int width) =>
        _vector.AddSigmoidScaled(s, acc, x, gate, tokens, width);

    /// <inheritdoc cref="AttentionOps.Attention"/>
    public void Attention(GpuStream s, GpuView<float> q, GpuView<float> k, GpuView<float> v, GpuView<float> kc,
        GpuView<float> vc, GpuView<float> o, GpuView<int> stepTokens, int tokens, int capacity, int heads, int kvHeads, int headDim,
        int window, GpuView<float>? sinks = null, int chunk = 0, int pool = 0) =>
        _attention.Attention(s, q, k, v, kc, vc, o, stepTokens, tokens, capacity, heads, kvHeads, headDim, window, sinks, chunk, pool);
}
