using ILGPU;
using ILGPU.Runtime;

namespace Daop.Kernels.Gpu;

/// <summary>
/// The element-wise and per-row kernels (<see cref="VectorKernels"/>): norms (a team per row), RoPE, embedding
/// lookup, residual add, clamp, the sigmoid-gated add of a shared expert, the combine of per-slot expert outputs, and
/// softmax top-k routing (<see cref="RoutingKernels"/>, loaded on first use: only all-resident decode runs it).
/// </summary>
internal sealed class VectorOps
{
    readonly GpuLaunch _launch;
    readonly Action<GpuStream, KernelConfig, GpuView<float>, GpuView<float>, GpuView<float>, GpuView<float>, GpuView<float>, NormArgs> _norm;
    readonly Action<GpuStream, KernelConfig, GpuView<float>, GpuView<float>, GpuView<float>, GpuView<float>, GpuView<int>, RopeArgs> _rope;
    readonly Action<GpuStream, KernelConfig, GpuView<Chunk16>, GpuView<int>, GpuView<float>, int, int, int, int> _embed;
    readonly Action<GpuStream, KernelConfig, GpuView<float>, GpuView<float>, int> _add;
    readonly Action<GpuStream, KernelConfig, GpuView<float>, GpuView<float>, int, int> _scaleRows;
    readonly Action<GpuStream, KernelConfig, GpuView<float>, int, float> _clamp, _scale;
    readonly Action<GpuStream, KernelConfig, GpuView<float>, GpuView<float>, GpuView<float>, int, int> _addSigmoid;
    readonly Action<GpuStream, KernelConfig, GpuView<float>, GpuView<float>, int, int, int> _combine;
    Action<GpuStream, KernelConfig, GpuView<float>, GpuView<int>, RouteArgs>? _route;
    readonly Action<GpuStream, KernelConfig, GpuView<float>, GpuView<float>, GpuView<float>, GpuView<float>, GpuView<float>,
        GpuView<Float4>, GpuView<Float4>, GpuView<Float4>, GpuView<Float4>, GpuView<Float4>, NormArgs> _normRows;
    readonly int _normRowsGroup;

    /// <summary>Rows at least this wide take a whole group each (<see cref="VectorKernels.NormRows"/>).</summary>
    public const int WideRow = 256;

    public VectorOps(GpuLaunch launch)
    {
        _launch = launch;
        var l = launch.Loader;
        _norm = l.Load("Norm", a => a.Bind<GpuView<float>, GpuView<float>, GpuView<float>, GpuView<float>, GpuView<float>, NormArgs>(VectorKernels.Norm));
        _rope = l.Load("Rope", a => a.Bind<GpuView<float>, GpuView<float>, GpuView<float>, GpuView<float>, GpuView<int>, RopeArgs>(VectorKernels.Rope));
        _embed = l.Load("Embed", a => a.Bind<GpuView<Chunk16>, GpuView<int>, GpuView<float>, int, int, int, int>(VectorKernels.Embed));
        _add = l.Load("Add", a => a.Bind<GpuView<float>, GpuView<float>, int>(VectorKernels.Add));
        _clamp = l.Load("Clamp", a => a.Bind<GpuView<float>, int, float>(VectorKernels.Clamp));
        _scale = l.Load("Scale", a => a.Bind<GpuView<float>, int, float>(VectorKernels.Scale));
        _scaleRows = l.Load("ScaleRows", a => a.Bind<GpuView<float>, GpuView<float>, int, int>(VectorKernels.ScaleRows));
        _addSigmoid = l.Load("AddSigmoidScaled", a => a.Bind<GpuView<float>, GpuView<float>, GpuView<float>, int, int>(VectorKernels.AddSigmoidScaled));
        _normRows = l.Load("NormRows", a => a.Bind<GpuView<float>, GpuView<float>, GpuView<float>, GpuView<float>, GpuView<float>,
            GpuView<Float4>, GpuView<Float4>, GpuView<Float4>, GpuView<Float4>, GpuView<Float4>, NormArgs>(VectorKernels.NormRows));
        // 256 threads (a Float4 each covers a 1024-wide row in one step) within the accelerator's limit; on the CPU
        // accelerator its whole group.
        var gpu = launch.Gpu;
        _normRowsGroup = launch.IsCpu ? launch.GroupSize : Math.Min(Math.Min(256, gpu.MaxThreadsPerGroup), VectorKernels.MaxWarps * gpu.WarpSize);
        _combine = l.Load("Combine", a => a.Bind<GpuView<float>, GpuView<float>, int, int, int>(VectorKernels.Combine));
    }

    /// <summary>
    /// RMSNorm (bias null) or LayerNorm of <paramref name="rows"/> rows of weight.Length; y may be x. With
    /// <paramref name="residual"/>, x += residual first (kept in x).
    /// </summary>
    public void Norm(GpuStream s, GpuView<float> x, GpuView<float> y, GpuView<float> weight, GpuView<float>? bias,
        int rows, int n, float eps, GpuView<float>? residual = null)
    {
        if (rows <= 0) return;
        var a = new NormArgs { Rows = rows, N = n, Eps = eps, Layer = bias != null ? 1 : 0, Lanes = _launch.Lanes, Residual = residual != null ? 1 : 0 };
        var b = bias ?? _launch.Loader.DummyF;
        var r = residual ?? _launch.Loader.DummyF;
        if (n >= WideRow)
        {
            bool vec = n % 4 == 0;
            GpuView<Float4> F4(GpuView<float> v) => vec ? _launch.AsFloat4(v) : _launch.Loader.Dummy4;
            var config = new KernelConfig(Math.Min(rows, _launch.IsCpu ? _launch.MaxGroups : int.MaxValue), _normRowsGroup);
            _launch.Count();
            _normRows(s, config, x, y, weight, b, r, F4(x), F4(y), F4(weight), bias != null ? F4(b) : _launch.Loader.Dummy4,
                residual != null ? F4(r) : _launch.Loader.Dummy4, a);
            return;
        }
        _norm(s, _launch.RowTeams(rows), x, y, weight, b, r, a);
    }

    /// <summary>
    /// Rotate-half RoPE of x [T, heads, headDim] and, when <paramref name="heads2"/> &gt; 0, of x2 [T, heads2, headDim]
    /// in the same launch, each token at its position in <paramref name="stepTokens"/> [T, <see cref="StepTokens.Fields"/>],
    /// from cos/sin tables [positions, half].
    /// </summary>
    public void Rope(GpuStream s, GpuView<float> x, GpuView<float> cos, GpuView<float> sin, int tokens, int heads,
        int headDim, int half, GpuView<int> stepTokens, GpuView<float>? x2 = null, int heads2 = 0)
    {
        if (tokens <= 0 || half == 0) return;
        if (x2 == null) heads2 = 0;
        var a = new RopeArgs { Tokens = tokens, Heads = heads, Heads2 = heads2, HeadDim = headDim, Half = half };
        _rope(s, _launch.Elementwise((long)tokens * (heads + heads2) * half), x, x2 ?? _launch.Loader.DummyF, cos, sin, stepTokens, a);
    }

    /// <summary>x[t] = table[tokens[t]] widened to fp32.</summary>
    public void Embed(GpuStream s, in GpuMatrix table, GpuView<int> tokens, GpuView<float> x, int count)
    {
        if (count <= 0) return;
        _embed(s, _launch.Elementwise((long)count * table.Cols), table.Data, tokens, x, count, table.Cols, table.RowChunks, (int)table.Type);
    }

    /// <summary>acc[i] += x[i], i &lt; n.</summary>
    public void Add(GpuStream s, GpuView<float> acc, GpuView<float> x, int n)
    {
        if (n > 0) _add(s, _launch.Elementwise(n), acc, x, n);
    }

    /// <summary>Clamps x[i] to ±limit, i &lt; n.</summary>
    public void Clamp(GpuStream s, GpuView<float> x, int n, float limit)
    {
        if (n > 0) _clamp(s, _launch.Elementwise(n), x, n, limit);
    }

    /// <summary>x[t, :] *= scales[t], t &lt; tokens.</summary>
    public void ScaleRows(GpuStream s, GpuView<float> x, GpuView<float> scales, int tokens, int width)
    {
        if (tokens * width > 0) _scaleRows(s, _launch.Elementwise(tokens * width), x, scales, tokens, width);
    }

    /// <summary>x[i] *= factor, i &lt; n.</summary>
    public void Scale(GpuStream s, GpuView<float> x, int n, float factor)
    {
        if (n > 0) _scale(s, _launch.Elementwise(n), x, n, factor);
    }

    /// <summary>acc[t, :] += sigmoid(gate[t]) · x[t, :].</summary>
    public void AddSigmoidScaled(GpuStream s, GpuView<float> acc, GpuView<float> x, GpuView<float> gate, int tokens, int width)
    {
        if (tokens > 0 && width > 0) _addSigmoid(s, _launch.Elementwise((long)tokens * width), acc, x, gate, tokens, width);
    }

    /// <summary>y [T, width] = Σ_j yk[t·topK + j] (per-slot outputs already weighted).</summary>
    public void Combine(GpuStream s, GpuView<float> yk, GpuView<float> y, int tokens, int topK, int width)
    {
        if (tokens > 0) _combine(s, _launch.Elementwise((long)tokens * width), yk, y, tokens, topK, width);
    }

    /// <summary>
    /// Routes <paramref name="tokens"/> rows of router logits [T, experts] to <paramref name="topK"/> experts each and
    /// writes the grouped expert kernels' index (<see cref="RoutingKernels.IndexLength"/>(T·K) ints) without the host.
    /// </summary>
    public void SoftmaxTopK(GpuStream s, GpuView<float> logits, GpuView<int> index, int tokens, int experts, int topK, bool renormalize)
    {
        if (tokens <= 0) return;
        if (topK < 1 || topK > experts) throw new ArgumentOutOfRangeException(nameof(topK), topK, $"top-k must be in [1, {experts}]");
        if (logits.Length < (long)tokens * experts || index.Length < RoutingKernels.IndexLength(tokens * topK))
            throw new ArgumentException($"routing {tokens} tokens of {experts} experts needs {tokens * experts} logits and " +
                $"{RoutingKernels.IndexLength(tokens * topK)} index ints, got {logits.Length} and {index.Length}");
        var route = Route();
        var args = new RouteArgs { Tokens = tokens, Experts = experts, TopK = topK, Renormalize = renormalize ? 1 : 0, Lanes = _launch.Lanes };
        route(s, _launch.RowTeams(tokens), logits, index, args);
    }

    /// <summary>The routing kernel, bound on first use.</summary>
    public Action<GpuStream, KernelConfig, GpuView<float>, GpuView<int>, RouteArgs> Route() =>
        _route ??= _launch.Loader.Load("RouteSoftmaxTopK", a => a.Bind<GpuView<float>, GpuView<int>, RouteArgs>(RoutingKernels.SoftmaxTopK));
}
