using Daop.Engine.Model;
using Daop.Kernels;
using System.Runtime.CompilerServices;
using Daop.Engine.Device.Gpu.Cuda;
using Daop.Kernels.Gpu;
using ILGPU.Runtime;

namespace Daop.Engine.Device.Gpu;

/// <summary>
/// <see cref="IDevice"/> on a <see cref="GpuContext"/>: CUDA through the driver on a GPU machine, ILGPU's CPU accelerator elsewhere (CI).
/// Activations and KV caches are fp32 device buffers; every weight matrix is uploaded once, on first use, in its
/// stored dtype (rows padded to 16-byte chunks) and cached by its host pointer; fp32 vectors (norm weights, biases,
/// RoPE tables) likewise by reference. All work is queued on the GPU's default stream;
/// <see cref="CopyToHost"/> waits for it.
/// </summary>
public sealed partial class GpuDevice : IDevice
{
    readonly record struct MatrixKey(nint Data, DType Type, int Rows, int Cols, int Count);

    readonly bool _ownsGpu;
    readonly Dictionary<MatrixKey, GpuArray<Chunk16>> _matrices = [];
    readonly Dictionary<object, GpuArray<float>> _vectors = new(ReferenceEqualityComparer.Instance);
    readonly List<GpuAllocation> _live = [];
    readonly List<IDisposable> _owned = [];
    readonly long _launchBase;
    GpuArray<int>? _tokens;
    GpuArray<int>? _stepTable;                 // the step's token table [T, StepTokens.Fields] (BeginStep)
    readonly List<GpuKvPool> _stepPools = [];  // the pools of the step's caches, in the order of the table's pool field
    int _stepTokens, _stepEnd;                 // the step's tokens; its last position + 1 (for the RoPE table's check)
    GpuArray<float>? _rowScales;
    GpuArray<float>? _ffnScratch;
    StepGraph? _graph;
    int[] _tokenHost = [], _stepHost = [];
    // Whether a queued copy still reads _tokenHost / _stepHost: the host waits before writing them again (chunks of a long
    // prompt through a model with no host round trip in its layers queue one after another without any wait).
    bool _tokenHostQueued, _stepHostQueued;
    long _allocated, _copies, _stepsRun;
    bool _disposed;

    /// <summary>Runs on <paramref name="gpu"/>, which the caller keeps owning (it must outlive the device), with the kernel set of <paramref name="options"/> (defaults when null).</summary>
    public GpuDevice(GpuContext gpu, GpuKernelOptions? options = null) : this(gpu, ownsGpu: false, options) { }

    /// <summary>Runs on ILGPU's CPU accelerator <paramref name="accelerator"/> (kept by the caller): the GPU path without a GPU, for tests.</summary>
    public GpuDevice(Accelerator accelerator) : this(IlgpuCpuGpu.For(accelerator), ownsGpu: false, null) { }

    /// <summary>Runs on ILGPU's CPU accelerator <paramref name="accelerator"/> (kept by the caller) with the kernel set of <paramref name="options"/>.</summary>
    public GpuDevice(Accelerator accelerator, GpuKernelOptions options) : this(IlgpuCpuGpu.For(accelerator), ownsGpu: false, options) { }

    GpuDevice(GpuContext gpu, bool ownsGpu, GpuKernelOptions? options)
    {
        Gpu = gpu;
        _ownsGpu = ownsGpu;
        Kernels = GpuKernels.For(gpu, options ?? GpuKernelOptions.Default);
        _launchBase = Kernels.Launches;
        Name = gpu is CudaGpu cuda ? $"cuda:{cuda.Ordinal} ({gpu.Name})" : "ilgpu-cpu";
    }

    /// <summary>
    /// A device on the first CUDA GPU (through the driver, with this build's precompiled kernels), released with the
    /// device; <see cref="Api.DeviceNotAvailableException"/> saying why when there is none or the driver cannot start.
    /// </summary>
    public static GpuDevice CreateCuda(GpuKernelOptions? options = null)
    {
        if (CudaGpu.DeviceCount() == 0)
            throw new Api.DeviceNotAvailableException("device 'cuda': no CUDA GPU was found (the CUDA driver reports none); use 'cpu'");
        GpuContext gpu;
        try
        {
            gpu = CudaGpu.Create(0, EmbeddedKernels.Find);
        }
        catch (Exception e) when (e is CudaException or InvalidOperationException or PlatformNotSupportedException)
        {
            throw new Api.DeviceNotAvailableException($"device 'cuda': {e.Message}; use 'cpu'", e);
        }
        return Owning(gpu, options);
    }

    /// <summary>
    /// A device on a GPU of its own: the first CUDA GPU through the driver with this build's precompiled kernels when
    /// <paramref name="preferCuda"/> and the driver reports one (as <see cref="CreateCuda"/>), else ILGPU's CPU
    /// accelerator (which needs the JIT), with the kernel set of <paramref name="options"/> (the defaults when null).
    /// Disposing the device releases the GPU.
    /// </summary>
    public static GpuDevice Create(bool preferCuda, GpuKernelOptions? options = null)
    {
        if (preferCuda && CudaGpu.DeviceCount() > 0) return CreateCuda(options);
        if (!RuntimeFeature.IsDynamicCodeSupported)
            throw new PlatformNotSupportedException(preferCuda
                ? "no CUDA GPU was found (the CUDA driver reports none)"
                : "ILGPU's CPU accelerator compiles its kernels at run time, and this binary is ahead-of-time compiled");
        return Owning(IlgpuCpuGpu.Create(multiprocessors: Math.Max(1, Environment.ProcessorCount / 2)), options);
    }

    // A device that releases gpu when disposed, or at once if the device cannot be built on it.
    static GpuDevice Owning(GpuContext gpu, GpuKernelOptions? options)
    {
        try
        {
            return new GpuDevice(gpu, ownsGpu: true, options);
        }
        catch
        {
            gpu.Dispose();
            throw;
        }
    }

    /// <inheritdoc />
    public string Name { get; }

    /// <summary>The GPU everything runs on.</summary>
    public GpuContext Gpu { get; }

    /// <summary>The kernel set (shared by every device on the accelerator with the same options).</summary>
    public GpuKernels Kernels { get; }

    /// <summary>The stream all work is queued on.</summary>
    public GpuStream Stream => Gpu.DefaultStream;

    /// <summary>Bytes of device memory this device holds now (activations, caches, weights, scratch).</summary>
    public long AllocatedBytes => Interlocked.Read(ref _allocated);

    /// <summary>
    /// Kernel launches on this accelerator since the device was made (its own ops and its expert scheduler's).
    /// Take the difference around <see cref="MoeModel.Forward"/> for launches per call.
    /// </summary>
    public long Launches => Kernels.Launches - _launchBase;

    /// <summary>Memory copies this device queued (host↔device and device↔device).</summary>
    public long Copies => Interlocked.Read(ref _copies);

    static GpuView<float> V(DeviceBuffer b) => ((GpuBuffer)b).View;

    /// <summary>A zeroed device buffer of at least <paramref name="n"/> floats, counted in <see cref="AllocatedBytes"/> until <see cref="Free"/>.</summary>
    public GpuArray<float> AllocateFloats(long n)
    {
        var b = Gpu.Allocate1D<float>(Math.Max(4, (n + 3) / 4 * 4));
        b.MemSetToZero(Stream);
        Track(b);
        return b;
    }

    internal void Track(GpuAllocation b)
    {
        lock (_live) _live.Add(b);
        Interlocked.Add(ref _allocated, b.LengthInBytes);
    }

    /// <summary>Frees a buffer this device allocated (or tracks); a second call is a no-op.</summary>
    public void Free(GpuAllocation b)
    {
        lock (_live)
            if (!_live.Remove(b)) return;
        Interlocked.Add(ref _allocated, -b.LengthInBytes);
        b.Dispose();
    }

    internal void CountCopy() => Interlocked.Increment(ref _copies);

    /// <summary>Disposes <paramref name="resource"/> (streams, page-locked host memory) with the device, before its buffers and accelerator.</summary>
    internal void Own(IDisposable resource)
    {
        lock (_owned) _owned.Add(resource);
    }

    /// <inheritdoc />
    public void CheckFormats(ModelWeights weights)
    {
        ArgumentNullException.ThrowIfNull(weights);
        // Every GPU sizing passes GpuMatrix.ChunksPerRow, which names the formats without GPU kernels (the K-quants).
        static void Check(in WeightMatrix m, bool perToken) => GpuMatrix.ChunksPerRow(m.Type, m.Cols);
        weights.VisitDense(Check, _ => { });
        foreach (var layer in weights.Layers)
            foreach (var e in layer.Experts) e.Visit(Check);
    }

    /// <summary>The device copy of <paramref name="w"/> (uploaded on first use).</summary>
    public unsafe GpuMatrix Matrix(in WeightMatrix w)
    {
        var key = new MatrixKey((nint)w.Data, w.Type, w.Rows, w.Cols, 1);
        {
            if (!_matrices.TryGetValue(key, out var buf))
            {
                buf = Gpu.Allocate1D<Chunk16>(Math.Max(1, GpuMatrix.ChunksFor(w)));
                Track(buf);
                GpuMatrix.Upload(Stream, w, buf.View, 0);
                CountCopy();
                _matrices[key] = buf;
            }
            return new GpuMatrix(buf.View, w.Type, w.Rows, w.Cols);
        }
    }

    /// <summary>
    /// The device copy of equally shaped matrices stacked in order ([Count·Rows] rows), uploaded on first use:
    /// how all experts of a layer stay resident for the grouped expert kernels.
    /// </summary>
    public unsafe GpuMatrix Stack(ReadOnlySpan<WeightMatrix> ws)
    {
        if (ws.Length == 0) throw new ArgumentException("empty stack", nameof(ws));
        var w0 = ws[0];
        foreach (var w in ws)
            if (w.Type != w0.Type || w.Rows != w0.Rows || w.Cols != w0.Cols)
                throw new NotSupportedException($"stacked matrices differ: {w.Type} [{w.Rows}, {w.Cols}] vs {w0.Type} [{w0.Rows}, {w0.Cols}]");
        {
            var key = new MatrixKey((nint)w0.Data, w0.Type, w0.Rows, w0.Cols, ws.Length);
            if (!_matrices.TryGetValue(key, out var buf))
            {
                long per = GpuMatrix.ChunksFor(w0);
                buf = Gpu.Allocate1D<Chunk16>(Math.Max(1, per * ws.Length));
                Track(buf);
                for (int i = 0; i < ws.Length; i++)
                {
                    GpuMatrix.Upload(Stream, ws[i], buf.View, i * per);
                    CountCopy();
                }
                _matrices[key] = buf;
            }
            return new GpuMatrix(buf.View, w0.Type, w0.Rows, w0.Cols, ws.Length);
        }
    }

    /// <summary>The device copy of a host fp32 vector (uploaded on first use, keyed by the array).</summary>
    public GpuView<float> Vector(float[] v)
    {
        if (!_vectors.TryGetValue(v, out var buf))
        {
            buf = AllocateFloats(v.Length);
            if (v.Length > 0) buf.View.SubView(0, v.Length).CopyFromCPU(Stream, v);
            CountCopy();
            _vectors[v] = buf;
        }
        return buf.View;
    }

    /// <inheritdoc />
    public DeviceBuffer Allocate(int floats) => new GpuBuffer(AllocateFloats(floats), floats);

    /// <inheritdoc />
    public KvCache CreateKvCache(int layers, int capacity, int kvDim) => new GpuKvPool(this, layers, capacity, kvDim, 1).Slots[0];

    /// <inheritdoc />
    public KvCache[] CreateKvCaches(int layers, int capacity, int kvDim, int count) => [.. new GpuKvPool(this, layers, capacity, kvDim, count).Slots];

    /// <inheritdoc />
    public void BeginStep(ReadOnlySpan<BatchSegment> segments)
    {
        int tokens = BatchSegment.CountTokens(segments), n = tokens * StepTokens.Fields, row = 0;
        WaitUntilRead(ref _stepHostQueued);
        if (_stepHost.Length < n) _stepHost = GC.AllocateUninitializedArray<int>(Math.Max(64 * StepTokens.Fields, n), pinned: true);
        _stepPools.Clear();
        _stepEnd = 0;
        foreach (var g in segments)
        {
            // A latent cache (DeepSeek) is no pool's: its kernels take the position as an argument, per sequence.
            int pool = -1, slot = 0;
            if (g.Cache is GpuKvCache c)
            {
                pool = _stepPools.IndexOf(c.Pool);
                if (pool < 0) { pool = _stepPools.Count; _stepPools.Add(c.Pool); }
                slot = c.Slot;
            }
            StepTokens.WriteSegment(_stepHost, row, g.Tokens, g.StartPos, slot, pool);
            _stepEnd = Math.Max(_stepEnd, g.StartPos + g.Tokens);
            row += g.Tokens;
        }
        _stepTokens = tokens;
        if (_stepPools.Count == 0) return;
        if (_stepTable == null || _stepTable.Length < n)
        {
            if (_stepTable != null) Free(_stepTable);
            _stepTable = Gpu.Allocate1D<int>(Math.Max(64 * StepTokens.Fields, n));
            Track(_stepTable);
        }
        Upload(_stepTable, _stepHost.AsSpan(0, n), _graph is { Capturing: true } graph ? graph.TableBuffer(n) : null, ref _stepHostQueued);
    }

    // Waits for the queued work when a copy queued earlier may still read the page-locked array the caller will write.
    void WaitUntilRead(ref bool queued)
    {
        if (!queued) return;
        StagingWaits++;
        Synchronize();
    }

    /// <summary>Times the host waited for a queued copy to read a page-locked staging array before writing it again.</summary>
    internal long StagingWaits { get; private set; }

    // The step's token table for an op on `tokens` rows (BeginStep must have set it for as many).
    GpuView<int> StepTable(int tokens)
    {
        if (tokens != _stepTokens || _stepPools.Count == 0 || _stepTable == null)
            throw new InvalidOperationException($"{tokens} tokens, but the step (BeginStep) holds {_stepTokens} in {_stepPools.Count} KV pools of this device");
        return _stepTable.View.SubView(0, (long)tokens * StepTokens.Fields);
    }

    // dst[0..] = src, queued without waiting: while a graph captures, from its page-locked `captured` buffer (a graph's
    // copy node reads host memory when the graph runs, and only page-locked memory can be captured; the previous step
    // has finished: its logits were read); else src must be a pinned array (CUDA stages pageable sources before returning).
    // `srcQueued` is set while the copy from src may still be queued.
    void Upload(GpuArray<int> dst, Span<int> src, PinnedHostMemory? captured, ref bool srcQueued)
    {
        if (captured != null)
        {
            src.CopyTo(captured.AsSpan<int>());
            dst.View.SubView(0, src.Length).CopyFromCPUUnsafeAsync(Stream, ref captured.AsSpan<int>()[0], src.Length);
        }
        else
        {
            dst.View.SubView(0, src.Length).CopyFromCPUUnsafeAsync(Stream, ref src[0], src.Length);
            srcQueued = true;
        }
        CountCopy();
    }

    /// <inheritdoc />
    public void Embed(ReadOnlySpan<int> tokens, in WeightMatrix table, DeviceBuffer x)
    {
        foreach (int id in tokens)
            if ((uint)id >= (uint)table.Rows)
                throw new ArgumentOutOfRangeException(nameof(tokens), $"token id {id} is outside the vocabulary [0, {table.Rows})");
        if (tokens.IsEmpty) return;
        if (_tokens == null || _tokens.Length < tokens.Length)
        {
            if (_tokens != null) Free(_tokens);
            _tokens = Gpu.Allocate1D<int>(Math.Max(64, tokens.Length));
            Track(_tokens);
        }
        WaitUntilRead(ref _tokenHostQueued);
        if (_tokenHost.Length < tokens.Length) _tokenHost = GC.AllocateUninitializedArray<int>(Math.Max(64, tokens.Length), pinned: true);
        tokens.CopyTo(_tokenHost);
        Upload(_tokens, _tokenHost.AsSpan(0, tokens.Length), _graph is { Capturing: true } graph ? graph.TokenBuffer(tokens.Length) : null, ref _tokenHostQueued);
        Kernels.Embed(Stream, Matrix(table), _tokens.View, V(x), tokens.Length);
    }

    /// <inheritdoc />
    public void Norm(NormWeights n, DeviceBuffer x, DeviceBuffer y, int rows)
    {
        GpuView<float>? bias = n.Kind == Load.Config.NormKind.LayerNorm ? Vector(n.Bias!) : null;
        Kernels.Norm(Stream, V(x), V(y), Vector(n.Weight), bias, rows, n.Weight.Length, n.Eps);
    }

    /// <inheritdoc />
    public void AddNorm(NormWeights n, DeviceBuffer x, DeviceBuffer r, DeviceBuffer y, int rows)
    {
        GpuView<float>? bias = n.Kind == Load.Config.NormKind.LayerNorm ? Vector(n.Bias!) : null;
        Kernels.Norm(Stream, V(x), V(y), Vector(n.Weight), bias, rows, n.Weight.Length, n.Eps, V(r));
    }

    /// <inheritdoc />
    public void Linear(LinearWeights w, DeviceBuffer x, DeviceBuffer y, int tokens) =>
        Kernels.Gemv(Stream, Matrix(w.W), V(x), V(y), tokens, w.Bias is { } b ? Vector(b) : null);

    /// <inheritdoc />
    public void Linear3(LinearWeights w0, LinearWeights w1, LinearWeights w2, DeviceBuffer x, DeviceBuffer y0, DeviceBuffer y1,
        DeviceBuffer y2, int tokens)
    {
        GpuView<float>? B(LinearWeights w) => w.Bias is { } b ? Vector(b) : null;
        Kernels.Gemv3(Stream, Matrix(w0.W), Matrix(w1.W), Matrix(w2.W), V(x), V(y0), V(y1), V(y2), tokens, B(w0), B(w1), B(w2));
    }

    /// <inheritdoc />
    public void Clamp(DeviceBuffer x, int count, float limit) => Kernels.Clamp(Stream, V(x), count, limit);

    /// <inheritdoc />
    public void Scale(DeviceBuffer x, int count, float factor) => Kernels.Scale(Stream, V(x), count, factor);

    /// <inheritdoc />
    public void ScaleRows(DeviceBuffer x, ReadOnlySpan<float> scales, int width, int row = 0)
    {
        if (scales.IsEmpty) return;
        if (_rowScales == null || _rowScales.Length < scales.Length)
        {
            if (_rowScales != null) Free(_rowScales);
            _rowScales = Gpu.Allocate1D<float>(Math.Max(64, scales.Length));
            Track(_rowScales);
        }
        // From pageable memory, pinned for the call: CUDA stages it before the call returns, so the caller may change it at
        // once (a layer's next call) without waiting for the copy to run.
        _rowScales.View.SubView(0, scales.Length).CopyFromCPU(Stream, scales);
        CountCopy();
        Kernels.ScaleRows(Stream, Rows(x, row, width), _rowScales.View, scales.Length, width);
    }

    /// <inheritdoc />
    public void Rope(RopeTable rope, DeviceBuffer q, int qHeads, DeviceBuffer k, int kHeads, int tokens, int headDim)
    {
        var table = StepTable(tokens);
        if (_stepEnd > rope.Capacity)
            throw new ArgumentOutOfRangeException(nameof(tokens), $"positions up to {_stepEnd} exceed the RoPE table ({rope.Capacity})");
        Kernels.Rope(Stream, V(q), Vector(rope.Cos), Vector(rope.Sin), tokens, qHeads, headDim, rope.Half, table, V(k), kHeads);
    }

    /// <inheritdoc />
    public void Attention(int layer, DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, DeviceBuffer o,
        int tokens, int heads, int kvHeads, int headDim, int? window, float[]? sinks = null, int chunk = 0)
    {
        var table = StepTable(tokens);
        var sinkView = sinks != null ? Vector(sinks) : (GpuView<float>?)null;
        for (int p = 0; p < _stepPools.Count; p++)                            // one launch per pool: one for the server's slots
        {
            var pool = _stepPools[p];
            if (pool.KvDim != kvHeads * headDim)
                throw new ArgumentException($"the KV pool holds {pool.KvDim} floats per position, attention writes {kvHeads}x{headDim}", nameof(kvHeads));
            Kernels.Attention(Stream, V(q), V(k), V(v), pool.K(layer), pool.V(layer), V(o), table, tokens, pool.Capacity,
                heads, kvHeads, headDim, window ?? 0, sinkView, chunk, p);
        }
    }

    // x from row `row` on, rows of `width` floats (a view: nothing is copied).
    GpuView<float> Rows(DeviceBuffer x, int row, int width) => row == 0 ? V(x) : V(x).SubView((long)row * width);

    /// <inheritdoc />
    public void Add(DeviceBuffer acc, DeviceBuffer x, int count) => Kernels.Add(Stream, V(acc), V(x), count);

    /// <inheritdoc />
    public void Ffn(in ExpertWeights w, DeviceBuffer x, DeviceBuffer y, int tokens)
    {
        var h = Scratch(ref _ffnScratch, (long)tokens * w.Gate.Rows);
        Kernels.GateUp(Stream, Matrix(w.Gate), Matrix(w.Up), V(x), h, tokens);
        Kernels.Down(Stream, Matrix(w.Down), h, V(y), tokens);
    }

    /// <summary>
    /// <paramref name="n"/> floats of the device scratch in <paramref name="slot"/> (grows, then stays); the view ends at
    /// n, so a kernel reading past it fails the CPU accelerator's bounds checks rather than reading stale scratch.
    /// </summary>
    internal GpuView<float> Scratch(ref GpuArray<float>? slot, long n)
    {
        if (slot == null || slot.Length < n)
        {
            if (slot != null) Free(slot);
            slot = AllocateFloats(Math.Max(n, 1024));
        }
        return slot.View.SubView(0, Math.Max(n, 4));
    }

    /// <inheritdoc />
    public void AddSigmoidScaled(DeviceBuffer acc, DeviceBuffer x, DeviceBuffer gate, int tokens, int width) =>
        Kernels.AddSigmoidScaled(Stream, V(acc), V(x), V(gate), tokens, width);

    /// <inheritdoc />
    public void Copy(DeviceBuffer src, int srcOffset, DeviceBuffer dst, int dstOffset, int count)
    {
        if (count <= 0) return;
        V(src).SubView(srcOffset, count).CopyTo(Stream, V(dst).SubView(dstOffset, count));
        CountCopy();
    }

    /// <inheritdoc />
    public void CopyToHost(DeviceBuffer x, int offset, Span<float> dst)
    {
        if (dst.IsEmpty) { Synchronize(); return; }
        // The span overload pins dst for the copy (a raw pointer into a movable array once read stale data under load).
        V(x).SubView(offset, dst.Length).CopyToCPU(Stream, dst);
        CountCopy();
        _tokenHostQueued = _stepHostQueued = false;   // the stream has run up to here
    }

    /// <summary>Waits for all queued work.</summary>
    public void Synchronize()
    {
        Stream.Synchronize();
        _tokenHostQueued = _stepHostQueued = false;
    }

    /// <summary>
    /// Whether decode steps go through <see cref="RunStep"/> as CUDA graphs: default from <c>DAOP_CUDA_GRAPHS=1</c> (off
    /// while it is measured). On the CPU accelerator the steps take the same path and run directly.
    /// </summary>
    public bool StepGraphs { get; init; } = Environment.GetEnvironmentVariable("DAOP_CUDA_GRAPHS") == "1";

    /// <summary>Steps run through <see cref="RunStep"/> so far.</summary>
    public long StepsRun => Interlocked.Read(ref _stepsRun);

    /// <summary>
    /// Queues the GPU work of <paramref name="step"/>: directly, or with <see cref="StepGraphs"/> on CUDA captured as a
    /// graph (every call, the executable graph updated in place, so arguments such as the position may change) and
    /// launched with one driver call. The step must only queue work (no copies to the host, no allocation); the first
    /// step runs without a graph, so first-use work (kernel loads, uploads) happens there.
    /// </summary>
    public void RunStep(Action step)
    {
        ArgumentNullException.ThrowIfNull(step);
        // The first step runs directly: its first-use work (module loads, uploads) may not be captured.
        bool first = Interlocked.Increment(ref _stepsRun) == 1;
        if (!StepGraphs || Gpu is not CudaGpu cuda || first)
        {
            step();
            return;
        }
        _graph ??= new StepGraph(cuda, this);
        _graph.Run(step);
    }

    // The decode step's graph and the page-locked buffer its token copy reads.
    sealed class StepGraph(CudaGpu gpu, GpuDevice device) : IDisposable
    {
        // Page-locked memory cannot be allocated while the stream captures: the buffers are made with the graph.
        const int MaxTokens = 64;
        readonly CudaGraph _graph = new(gpu);
        readonly PinnedHostMemory _tokens = gpu.AllocatePinned(MaxTokens * sizeof(int));
        readonly PinnedHostMemory _table = gpu.AllocatePinned(MaxTokens * StepTokens.Fields * sizeof(int));

        public bool Capturing { get; private set; }

        public PinnedHostMemory TokenBuffer(int n) => n <= MaxTokens ? _tokens
            : throw new InvalidOperationException($"a graph-replayed step embeds at most {MaxTokens} tokens, not {n}");

        public PinnedHostMemory TableBuffer(int n) => n <= MaxTokens * StepTokens.Fields ? _table
            : throw new InvalidOperationException($"a graph-replayed step holds at most {MaxTokens} tokens, not {n / StepTokens.Fields}");

        public void Run(Action step)
        {
            Capturing = true;
            try
            {
                gpu.Recapture(_graph, device.Stream, step);
            }
            finally
            {
                Capturing = false;
            }
            _graph.Launch(device.Stream);
        }

        public void Dispose()
        {
            _graph.Dispose();
            _tokens.Dispose();
            _table.Dispose();
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        try { Stream.Synchronize(); } catch (Exception) { /* the accelerator may already be gone */ }
        _graph?.Dispose();
        IDisposable[] owned;
        lock (_owned) { owned = [.. _owned]; _owned.Clear(); }
        for (int i = owned.Length - 1; i >= 0; i--) owned[i].Dispose();
        GpuAllocation[] live;
        lock (_live) { live = [.. _live]; _live.Clear(); }
        foreach (var b in live) b.Dispose();
        _matrices.Clear();
        _vectors.Clear();
        Interlocked.Exchange(ref _allocated, 0);
        if (_ownsGpu) Gpu.Dispose();
    }
}
