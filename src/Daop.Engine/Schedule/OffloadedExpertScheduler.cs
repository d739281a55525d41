using System.Runtime.InteropServices;
using Daop.Engine.Device;
using Daop.Engine.Device.Gpu;
using Daop.Engine.Model;
using Daop.Engine.Model.Layers;
using Daop.Engine.Placement;
using ILGPU;
using ILGPU.Runtime;
using IDevice = Daop.Engine.Device.IDevice;

namespace Daop.Engine.Schedule;

/// <summary>Knobs of <see cref="OffloadedExpertScheduler"/> beyond the placement.</summary>
public sealed record OffloadOptions
{
    /// <summary>Where transfers read experts from (default: page-locked staged images on CUDA, the checkpoint elsewhere).</summary>
    public HostCopyMode CopyMode { get; init; } = HostCopyMode.Auto;
    /// <summary>Most bytes of staged (page-locked) host images; past it transfers read the checkpoint directly.</summary>
    public long PinnedHostBytes { get; init; } = long.MaxValue;
    /// <summary>Make every expert's staged image at start (else on its first transfer).</summary>
    public bool PinAhead { get; init; }
    /// <summary>
    /// During decode, predict layer l+1's experts inside layer l's <see cref="OffloadedExpertScheduler.RunExperts"/> (layer
    /// l+1's router on layer l's gate input) and tell the policy. Turn off once the forward pass calls
    /// <see cref="OffloadedExpertScheduler.OnNextLayerGateInput"/> itself.
    /// </summary>
    public bool PredictNextLayer { get; init; } = true;
    /// <summary>
    /// DAOP's approximate mode: most CPU worker threads a background pre-calculation uses (0: all). One fewer than the
    /// cores leaves the thread that drives the GPU (and spins in CUDA waits) a core of its own.
    /// </summary>
    public int PrecalcThreads { get; init; }
    /// <summary>Benchmark-only: replaces the router's choice (and the next-layer predictor's logits), e.g. with a recorded trace.</summary>
    public IRoutingOverride? RoutingOverride { get; init; }
}

/// <summary>
/// Routed experts on a <see cref="GpuDevice"/> with only some of them resident, under an exact VRAM budget: an
/// <see cref="ExpertSlotPool"/> of fixed slots per layer, a <see cref="HostExpertStore"/> for every expert's host copy,
/// an <see cref="ExpertTransferQueue"/> for host→device copies on their own stream, and a <see cref="CpuExpertRunner"/>.
/// An <see cref="IPlacementPolicy"/> decides; the scheduler carries out (and keeps <see cref="Residency"/> and the pool
/// in step).
/// </summary>
/// <remarks>
/// Per <see cref="RunExperts"/> call (layer l), in the order <see cref="TraceSimulator"/> models:
/// <list type="number">
/// <item>For each routed (token, expert) in token order: resident → its slot (a hit); not resident → the policy's
/// OnMiss: Transfer evicts the named victim (if any), copies the expert into the freed slot and runs it there after the
/// copy; RunOnCpu runs it on host threads. OnUse follows every activation. If the victim's slot is still to be read by
/// GPU work gathered in this call, that work is launched first (a "wave"), and the copy waits for it on the device.</item>
/// <item>The GPU experts are launched (fused gate/up over all of them, then the down projection: fused with the
/// combine when everything runs on the GPU for ≤ <see cref="FusedCombineMaxTokens"/> tokens, else per-slot outputs
/// and a combine pass).</item>
/// <item>Decode (one token): layer l+1's experts are predicted from x (layer l's gate input) with layer l+1's router
/// (a host GEMV and top-k) and handed to the policy's OnPredicted; the loads it makes become prefetch copies.</item>
/// <item>CPU experts run while the GPU works; their weighted sum goes up in one copy and is added to y.</item>
/// <item>Decode: the policy's AfterDecodeLayer may re-place the layer (DAOP's drift mode); its loads become copies.</item>
/// <item>Prefill chunks (more than one token): the chunk's per-expert counts go to OnPrefillCounts; the resulting
/// swaps become copies. In DAOP's approximate mode, layers from ExactLayers on are counted by the next-layer predictor
/// (their decode routing), computed at the layer before.</item>
/// </list>
/// Results equal the all-resident path up to fp32 summation order: placement never changes what is computed, except in
/// DAOP's approximate mode (<see cref="DaopPolicy.Approximate"/>): there, during decode, the prediction made at layer l
/// (with <see cref="ApproximateExperts"/>) becomes layer l+1's routing, its GPU-resident experts run on the true input and
/// its CPU experts' outputs are the ones pre-calculated from layer l's gate input on a background task.
/// Routed experts reach the device only through the pool, never through <see cref="GpuDevice.Matrix"/>, so
/// <see cref="GpuDevice.AllocatedBytes"/> = <see cref="DenseBytes"/> + <see cref="PoolBytes"/>.
/// </remarks>
public sealed class OffloadedExpertScheduler : IExpertScheduler, IDisposable
{
    /// <summary>Up to this many tokens, an all-GPU call uses the fused down-and-combine kernel.</summary>
    public const int FusedCombineMaxTokens = GpuExpertScheduler.FusedCombineMaxTokens;

    readonly ModelWeights _w;
    readonly GpuDevice _d;
    readonly IPlacementPolicy _policy;
    readonly OffloadOptions _o;
    readonly bool[] _moe;
    readonly int _hidden, _inter, _experts, _topK, _firstMoe, _maxSlots;
    readonly OffloadStats _stats = new();
    OffloadStats _stepStart = new();
    // per call
    int[] _decision = [], _host = [], _cpuOrder = [];
    readonly int[] _count, _start, _fill, _expCount, _expStart, _prefill;
    readonly bool[] _inWave;
    readonly List<int> _wave = [];
    int[] _rows = [];
    float[] _scales = [], _gateHost = [];
    MemoryBuffer1D<int, Stride1D.Dense>? _index;
    MemoryBuffer1D<float, Stride1D.Dense>? _h, _yk;
    int _reserved;
    bool _disposed;
    // approximate mode, next-layer prediction
    readonly ApproximateExperts? _approx;
    readonly NextLayerPredictor _predictor;
    int _pos;

    /// <summary>
    /// Places experts of <paramref name="model"/> with <paramref name="policy"/> (its Initialize, with
    /// <paramref name="popularity"/>) into <paramref name="slotsPerLayer"/> GPU slots and uploads them.
    /// </summary>
    /// <param name="model">The model (its weights and config; its device need not be <paramref name="device"/> yet while it loads).</param>
    /// <param name="device">The GPU device the dense part runs on.</param>
    /// <param name="policy">Placement policy (initialised here).</param>
    /// <param name="slotsPerLayer">Expert slots per layer (0 for dense layers), e.g. from <see cref="OffloadBudget"/>.</param>
    /// <param name="popularity">[layers, experts] calibration counts for the initial placement, or null.</param>
    /// <param name="options">Transfer and prediction knobs.</param>
    public OffloadedExpertScheduler(MoeModel model, GpuDevice device, IPlacementPolicy policy, int[] slotsPerLayer, long[,]? popularity,
        OffloadOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentNullException.ThrowIfNull(slotsPerLayer);
        var c = model.Config;
        _w = model.Weights;
        _d = device;
        _policy = policy;
        _o = options ?? new OffloadOptions();
        _hidden = c.HiddenSize;
        _inter = c.ExpertIntermediate;
        _experts = c.NumExperts;
        _topK = c.TopK;
        int layers = c.NumLayers;
        if (slotsPerLayer.Length != layers)
            throw new ArgumentException($"{slotsPerLayer.Length} slot counts for a model of {layers} layers", nameof(slotsPerLayer));
        _moe = [.. Enumerable.Range(0, layers).Select(c.IsMoe)];
        for (int l = 0; l < layers; l++)
        {
            int s = slotsPerLayer[l];
            if (s < 0 || s > _experts)
                throw new ArgumentOutOfRangeException(nameof(slotsPerLayer), $"layer {l} asks for {s} expert slots; it must be 0..{_experts}");
            if (s > 0 && !_moe[l]) throw new ArgumentException($"layer {l} is dense and cannot hold expert slots", nameof(slotsPerLayer));
        }
        if (popularity != null && (popularity.GetLength(0) != layers || popularity.GetLength(1) != _experts))
            throw new ArgumentException($"popularity is [{popularity.GetLength(0)}, {popularity.GetLength(1)}], the model [{layers}, {_experts}]", nameof(popularity));
        _firstMoe = Array.IndexOf(_moe, true);
        if (_firstMoe < 0) throw new ArgumentException("the model has no MoE layer", nameof(model));

        Layout = ExpertLayout.Of(_w);
        Residency = new Residency(layers, _experts, slotsPerLayer);
        _policy.Initialize(Residency, popularity);
        Residency.PendingLoads.Clear();
        _maxSlots = slotsPerLayer.Max();
        _count = new int[_maxSlots + 1];
        _start = new int[_maxSlots + 1];
        _fill = new int[_maxSlots + 1];
        _inWave = new bool[_maxSlots + 1];
        _expCount = new int[_experts];
        _expStart = new int[_experts + 1];
        _prefill = new int[_experts];
        _predictor = new NextLayerPredictor(model, _o.RoutingOverride);
        if (policy is DaopPolicy { Approximate: true } daop) _approx = new ApproximateExperts(model, daop.ExactLayers, background: true, _o.PrecalcThreads);

        Pool = new ExpertSlotPool(device, Layout, _experts, slotsPerLayer);
        Store = new HostExpertStore(_w, Layout, device.Accelerator, _o.CopyMode, _o.PinnedHostBytes);
        Transfers = new ExpertTransferQueue(device, Pool, Store);
        Cpu = new CpuExpertRunner(device, _w, _hidden, _inter);
        device.Own(this);
        for (int l = 0; l < layers; l++)
        {
            if (!_moe[l]) continue;
            foreach (int e in Residency.Resident(l).ToArray())
                Pool.Upload(device.Stream, l, Pool.Assign(l, e), _w.Layers[l].Experts[e]);
        }
        if (_o.PinAhead)
            for (int l = 0; l < layers; l++)
                for (int e = 0; _moe[l] && e < _experts; e++) Store.Pin(l, e);
        CheckInvariants();
    }

    /// <summary>
    /// A scheduler for <paramref name="model"/> with an expert cache ratio (fraction of routed experts on the GPU),
    /// for <see cref="ModelOptions.Experts"/>: <c>(m, d) => OffloadedExpertScheduler.FromRatio(m, d, policy, 0.5)</c>.
    /// </summary>
    public static OffloadedExpertScheduler FromRatio(MoeModel model, IDevice device, IPlacementPolicy policy, double ratio,
        long[,]? popularity = null, OffloadOptions? options = null) =>
        new(model, AsGpu(device), policy, OffloadBudget.SlotsFromRatio(model.Config, ratio, popularity), popularity, options);

    /// <summary>
    /// A scheduler whose device memory (dense part for chunks of <paramref name="maxChunkTokens"/> and one KV cache,
    /// plus the pool) fits <paramref name="vramBytes"/>; throws if even the dense part does not.
    /// </summary>
    public static OffloadedExpertScheduler FromVramBudget(MoeModel model, IDevice device, IPlacementPolicy policy, long vramBytes,
        int maxChunkTokens, long[,]? popularity = null, OffloadOptions? options = null) =>
        new(model, AsGpu(device), policy, OffloadBudget.SlotsFromVram(model, vramBytes, maxChunkTokens, 1, popularity), popularity, options);

    static GpuDevice AsGpu(IDevice device) =>
        device as GpuDevice ?? throw new ArgumentException($"the offloaded expert scheduler needs a GpuDevice, got {device.Name}", nameof(device));

    /// <summary>Shape of every routed expert.</summary>
    public ExpertLayout Layout { get; }
    /// <summary>Which experts are on the GPU (the policy's view; always equal to the pool's).</summary>
    public Residency Residency { get; }
    /// <summary>The placement policy.</summary>
    public IPlacementPolicy Policy => _policy;
    /// <summary>The GPU expert slots.</summary>
    public ExpertSlotPool Pool { get; }
    /// <summary>Host copies of every expert.</summary>
    public HostExpertStore Store { get; }
    /// <summary>The host→device copy queue.</summary>
    public ExpertTransferQueue Transfers { get; }
    /// <summary>The CPU expert runner.</summary>
    public CpuExpertRunner Cpu { get; }
    /// <summary>The options in force.</summary>
    public OffloadOptions Options => _o;

    /// <summary>Device bytes of the expert slots: exactly slots × <see cref="ExpertLayout.ExpertBytes"/>.</summary>
    public long PoolBytes => Pool.AllocatedBytes;
    /// <summary>Device bytes of everything else: weights of the dense part, caches, activations, scratch.</summary>
    public long DenseBytes => _d.AllocatedBytes - Pool.AllocatedBytes;
    /// <summary>All device bytes the device holds (<see cref="DenseBytes"/> + <see cref="PoolBytes"/>).</summary>
    public long TotalBytes => _d.AllocatedBytes;

    /// <summary>Cumulative counters (copy stalls resolved up to now).</summary>
    public OffloadStats Stats
    {
        get
        {
            Refresh();
            return _stats.Snapshot();
        }
    }

    /// <summary>Counters of the latest forward chunk (from its first MoE layer on): per token when decoding.</summary>
    public OffloadStats LastStep
    {
        get
        {
            Refresh();
            return _stats.Since(_stepStart);
        }
    }

    void Refresh()
    {
        if (_disposed) return;
        Transfers.Poll();
        _stats.CopyWaitSeconds = Transfers.WaitSeconds;
        _stats.CpuExpertSeconds = Cpu.Seconds;
        if (_approx != null)
        {
            _stats.PrecalcSeconds = _approx.PrecalcSeconds;
            _stats.PrecalcWaitSeconds = _approx.WaitSeconds;
        }
    }

    /// <summary>True when the policy asks for DAOP's approximate mode.</summary>
    public bool Approximate => _approx != null;

    /// <inheritdoc />
    public void BeginChunk(int startPos, int tokens)
    {
        _pos = startPos;
        _predictor.Reset();
        if (tokens != 1) _approx?.Reset();
    }

    /// <summary>Device bytes of this scheduler's scratch for chunks of <paramref name="tokens"/> (part of the dense budget).</summary>
    public static long ScratchBytes(int tokens, int topK, int hidden, int inter)
    {
        long p = (long)tokens * topK;
        return OffloadBudget.Floats(p * inter) + OffloadBudget.Floats(p * hidden) + OffloadBudget.Floats((long)tokens * hidden)
            + 4 * Math.Max(4, IndexLength(p));
    }

    // [order ≤P | tiles ≤3P | pos P | expert P | weight bits P]
    static long IndexLength(long p) => 7 * p;

    void Reserve(int tokens)
    {
        if (tokens <= _reserved) return;
        int p = tokens * _topK;
        if (_h != null) _d.Free(_h);
        if (_yk != null) _d.Free(_yk);
        if (_index != null) _d.Free(_index);
        _h = _d.AllocateFloats((long)p * _inter);
        _yk = _d.AllocateFloats((long)p * _hidden);
        _index = _d.Accelerator.Allocate1D<int>(Math.Max(4, IndexLength(p)));
        _d.Track(_index);
        Cpu.Reserve(tokens);
        _decision = new int[p];
        _cpuOrder = new int[p];
        _rows = new int[p];
        _scales = new float[p];
        _host = GC.AllocateUninitializedArray<int>((int)IndexLength(p), pinned: true);
        _reserved = tokens;
    }

    /// <summary>Allocates the scratch for chunks of up to <paramref name="tokens"/> now (otherwise it grows on first use).</summary>
    public void ReserveTokens(int tokens)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(tokens);
        Reserve(tokens);
    }

    /// <inheritdoc />
    public void RunExperts(int layer, DeviceBuffer x, RoutingBatch r, DeviceBuffer y, int tokens)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (tokens <= 0) return;
        if (!_moe[layer]) throw new ArgumentException($"layer {layer} is not an MoE layer", nameof(layer));
        if (r.TopK != _topK) throw new ArgumentException($"routing has top-{r.TopK}, the model top-{_topK}", nameof(r));
        int k = _topK, p = tokens * k;
        _o.RoutingOverride?.Route(layer, _pos, r);
        bool approx = Substitute(layer, r, tokens);
        for (int i = 0; i < p; i++)
            if ((uint)r.Experts[i] >= (uint)_experts)
                throw new ArgumentOutOfRangeException(nameof(r), $"expert {r.Experts[i]} of slot {i} is outside [0, {_experts})");
        Reserve(tokens);
        if (layer == _firstMoe)
        {
            Refresh();
            _stepStart = _stats.Snapshot();
            _stats.Tokens += tokens;
        }
        Transfers.Poll();
        Cpu.Begin(x, tokens);
        int next = _o.PredictNextLayer && tokens == 1 ? _predictor.NextMoe(layer) : -1;
        // Approximate mode, prefill: the next layer is placed by the predictor's counts, made from x.
        int countNext = _approx != null && tokens > 1 && _predictor.NextMoe(layer) >= _approx.ExactLayers ? _predictor.NextMoe(layer) : -1;
        if (next >= 0 || countNext >= 0) Cpu.Input(); // x comes down now, while the compute stream has nothing queued that could wait on a copy

        // 1. Decide every activation.
        var ys = ((GpuBuffer)y).View;
        _wave.Clear();
        Array.Clear(_inWave);
        bool flushed = false, ykZeroed = false;
        int gpu = 0, cpu = 0, pre = 0;
        for (int i = 0; i < p; i++)
        {
            int e = r.Experts[i];
            _stats.Activations++;
            int s = Pool.SlotOf(layer, e);
            if (approx && _approx!.IsPrecalculated(e))
            {
                if (s >= 0) _stats.Hits++;
                else _stats.Misses++;
                _decision[i] = -2;
                pre++;
                _policy.OnUse(layer, e);
                continue;
            }
            if (s >= 0) _stats.Hits++;
            else
            {
                _stats.Misses++;
                if (_policy.OnMiss(layer, e, Residency, out int victim) == MissAction.Transfer)
                {
                    if (victim >= 0)
                    {
                        int vs = Pool.SlotOf(layer, victim);
                        if (vs < 0) throw new InvalidOperationException($"policy {_policy.Name} evicts expert {victim} of layer {layer}, which is not resident");
                        if (_inWave[vs])
                        {
                            if (!ykZeroed) { ZeroYk(p); ykZeroed = true; }
                            LaunchWave(layer, x, r, tokens, y, direct: false);
                            flushed = true;
                            _stats.SplitWaves++;
                        }
                        Residency.Evict(layer, victim);
                        Pool.Release(layer, victim);
                    }
                    Residency.Load(layer, e);
                    Residency.PendingLoads.Clear();
                    s = Pool.Assign(layer, e);
                    Transfer(layer, e, s);
                    _stats.MissTransfers++;
                }
            }
            if (s >= 0)
            {
                _decision[i] = s;
                _wave.Add(i);
                _inWave[s] = true;
                gpu++;
            }
            else
            {
                _decision[i] = -1;
                cpu++;
            }
            _policy.OnUse(layer, e);
        }
        _stats.GpuExpertRuns += gpu;
        _stats.CpuExpertRuns += cpu + pre;
        _stats.PrecalculatedRuns += pre;

        // 2. GPU experts (asynchronous on CUDA). CPU experts' rows come down first: the copy waits for the compute stream,
        //    which must not yet hold kernels waiting on transfers.
        if (cpu > 0) Cpu.Input();
        if (gpu > 0)
        {
            if (!flushed && cpu + pre == 0 && tokens <= FusedCombineMaxTokens) LaunchWave(layer, x, r, tokens, y, direct: true);
            else
            {
                if (!ykZeroed && cpu + pre > 0) ZeroYk(p);
                if (_wave.Count > 0) LaunchWave(layer, x, r, tokens, y, direct: false);
                _d.Kernels.Combine(_d.Stream, _yk!.View, ys, tokens, k, _hidden);
            }
        }

        // Approximate mode: this layer's CPU experts were pre-calculated during the previous layer (join before predicting
        // the next one, which reuses the buffers).
        if (approx)
        {
            var sum = _approx!.Join();
            if (pre > 0) Cpu.Accumulate(0, sum);
        }

        // 3. Prediction for the next MoE layer: prefetch copies overlap this layer's experts.
        if (next >= 0) Predict(next, Cpu.Input());

        // 4. CPU experts, grouped by expert, and (approximate mode) the sum pre-calculated at the previous layer; it all goes up.
        //    The next layer's pre-calculation starts only after this layer's CPU experts: both want every CPU worker, and
        //    the worker pool runs a second concurrent caller single-threaded (measured: one expert then takes ~10x longer).
        if (cpu > 0) RunCpu(layer, r, p);
        if (next >= 0) StartPrecalculation(next, Cpu.Input());
        if (cpu + pre > 0) Cpu.AddTo(y, overwrite: gpu == 0);

        // Decode: the policy may re-place this layer (drift); the copies have a whole token to land.
        if (tokens == 1)
        {
            _policy.AfterDecodeLayer(layer, Residency);
            if (Residency.PendingLoads.Count > 0)
            {
                long before = _stats.Transfers;
                Reconcile(layer, prefetch: false);
                _stats.RebalanceTransfers += _stats.Transfers - before;
            }
        }

        // 5. After a prefill chunk: the policy may swap experts in for the rest of the sequence. In approximate mode a
        //    layer that decode will route by the predictor is placed by the predictor's counts (made at the layer before).
        if (tokens > 1)
        {
            _predictor.PrefillCounts(layer, r, tokens, _prefill);
            _policy.OnPrefillCounts(layer, _prefill, Residency);
            Reconcile(layer, prefetch: false);
            if (countNext >= 0) _predictor.CountNext(countNext, Cpu.Input(), tokens, _pos);
        }
    }

    /// <summary>
    /// The forward pass's hook for predictions: <paramref name="gateInput"/> is layer <paramref name="layer"/>'s gate
    /// input [T, H]; for a single token, the next MoE layer's router is applied to it on the host, the top-k go to the
    /// policy's OnPredicted and any loads it makes are queued as prefetch copies. Ignored for more than one token.
    /// </summary>
    public void OnNextLayerGateInput(int layer, DeviceBuffer gateInput, int tokens)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        int next = _predictor.NextMoe(layer);
        if (tokens != 1 || next < 0) return;
        if (_gateHost.Length < _hidden) _gateHost = new float[_hidden];
        _d.CopyToHost(gateInput, 0, _gateHost.AsSpan(0, _hidden));
        Predict(next, _gateHost);
        StartPrecalculation(next, _gateHost);
    }

    void Predict(int layer, ReadOnlySpan<float> x)
    {
        _predictor.Predict(layer, _pos, x);
        _policy.OnPredicted(layer, _predictor.Ids, Residency);
        Reconcile(layer, prefetch: true);
    }

    // Approximate mode: routes the layer from the logits Predict left, degrades it and starts its CPU experts on x.
    void StartPrecalculation(int layer, ReadOnlySpan<float> x)
    {
        if (_approx != null && _predictor.Layer == layer && layer >= _approx.ExactLayers && _approx.Predict(layer, x, _predictor.Logits, Residency))
            _stats.Substitutions++;
    }

    // Start of a layer call: scores the prediction made for this layer (recall), then, in approximate mode, replaces a
    // decoded token's routing with the degraded prediction. True if it did.
    bool Substitute(int layer, RoutingBatch r, int tokens)
    {
        _predictor.Score(layer, r, tokens, _stats);
        return _approx?.ApplyOrReset(layer, r, tokens) == true;
    }

    // Makes the pool match the residency of `layer` (and of any layer with pending loads): frees the slots of evicted
    // experts, then copies newly resident ones into free slots.
    void Reconcile(int layer, bool prefetch)
    {
        foreach (var (pl, _) in Residency.PendingLoads)
            if (pl != layer) ReconcileLayer(pl, prefetch);
        ReconcileLayer(layer, prefetch);
        Residency.PendingLoads.Clear();
    }

    void ReconcileLayer(int layer, bool prefetch)
    {
        for (int e = 0; e < _experts; e++)
            if (!Residency.IsResident(layer, e) && Pool.SlotOf(layer, e) >= 0) Pool.Release(layer, e);
        foreach (var (pl, e) in Residency.PendingLoads)
            if (pl == layer) Load(e);
        for (int e = 0; e < _experts; e++) Load(e);

        void Load(int e)
        {
            if (!Residency.IsResident(layer, e) || Pool.SlotOf(layer, e) >= 0) return;
            Transfer(layer, e, Pool.Assign(layer, e));
            if (prefetch) _stats.PrefetchTransfers++;
        }
    }

    void Transfer(int layer, int expert, int slot)
    {
        Transfers.Enqueue(layer, expert, slot);
        _stats.Transfers++;
        _stats.TransferBytes += Layout.ExpertBytes;
    }

    void ZeroYk(int p) => _yk!.View.SubView(0, (long)p * _hidden).MemSetToZero(_d.Stream);

    // Launches the gathered activations (_wave) of `layer`: fused gate/up, then either the down projection fused with the
    // combine straight into y (direct) or per-slot outputs into yk.
    void LaunchWave(int layer, DeviceBuffer x, RoutingBatch r, int tokens, DeviceBuffer y, bool direct)
    {
        int k = _topK, p = tokens * k, pw = _wave.Count, cap = Pool.Capacity(layer);
        var (gate, up, down) = Pool.Matrices(layer);
        Array.Clear(_count, 0, cap);
        foreach (int i in _wave) _count[_decision[i]]++;
        int tiles = 0;
        _start[0] = 0;
        for (int s = 0; s < cap; s++)
        {
            _start[s + 1] = _start[s] + _count[s];
            tiles += (_count[s] + 3) / 4;
        }
        int tileOff = pw, posOff = tileOff + 3 * tiles, expOff = posOff + p, wOff = expOff + p, total = wOff + p;
        var host = _host;
        Array.Copy(_start, _fill, cap);
        foreach (int i in _wave) host[_fill[_decision[i]]++] = i;
        int tile = 0;
        for (int s = 0; s < cap; s++)
            for (int j = 0; j < _count[s]; j += 4)
            {
                int o = tileOff + 3 * tile++;
                host[o] = s;
                host[o + 1] = _start[s] + j;
                host[o + 2] = Math.Min(4, _count[s] - j);
            }
        for (int i = 0; i < p; i++)
        {
            host[posOff + i] = 0;
            host[expOff + i] = Math.Max(0, _decision[i]);
            host[wOff + i] = BitConverter.SingleToInt32Bits(r.Weights[i]);
        }
        for (int j = 0; j < pw; j++) host[posOff + host[j]] = j;
        ArrayView<int> index = _index!.View;
        index.SubView(0, total).CopyFromCPUUnsafeAsync(_d.Stream, ref MemoryMarshal.GetArrayDataReference(host), total);
        _d.CountCopy();
        var scales = index.SubView(wOff, p).Cast<float>();
        for (int s = 0; s < cap; s++)
            if (_count[s] > 0) Transfers.BeforeUse(layer, s);
        var kern = _d.Kernels;
        var xs = ((GpuBuffer)x).View;
        kern.GateUp(_d.Stream, gate, up, xs, _h!.View, pw, index, k, tiles, tileOff);
        if (direct) kern.DownCombine(_d.Stream, down, _h.View, ((GpuBuffer)y).View, tokens, k, index, scales, posOff, expOff);
        else kern.Down(_d.Stream, down, _h.View, _yk!.View, pw, index, scales, tiles, tileOff);
        for (int s = 0; s < cap; s++)
            if (_count[s] > 0) Transfers.MarkUsed(layer, s);
        Transfers.EndUse();
        _stats.Waves++;
        _wave.Clear();
        Array.Clear(_inWave);
    }

    // CPU activations grouped by expert (counting sort), one ExpertFfn call per expert.
    void RunCpu(int layer, RoutingBatch r, int p)
    {
        int k = _topK;
        Array.Clear(_expCount);
        for (int i = 0; i < p; i++)
            if (_decision[i] == -1) _expCount[r.Experts[i]]++;
        _expStart[0] = 0;
        for (int e = 0; e < _experts; e++) _expStart[e + 1] = _expStart[e] + _expCount[e];
        Span<int> fill = stackalloc int[_experts];
        _expStart.AsSpan(0, _experts).CopyTo(fill);
        for (int i = 0; i < p; i++)
            if (_decision[i] == -1) _cpuOrder[fill[r.Experts[i]]++] = i;
        for (int e = 0; e < _experts; e++)
        {
            int n = _expCount[e];
            if (n == 0) continue;
            for (int j = 0; j < n; j++)
            {
                int i = _cpuOrder[_expStart[e] + j];
                _rows[j] = i / k;
                _scales[j] = r.Weights[i];
            }
            Cpu.Run(layer, e, _rows.AsSpan(0, n), _scales.AsSpan(0, n));
        }
    }

    /// <summary>Waits for every queued copy.</summary>
    public void Synchronize()
    {
        _d.Synchronize();
        Transfers.Synchronize();
    }

    /// <summary>
    /// Throws if the pool and the residency disagree, a layer holds more experts than its slots, or the pool holds
    /// more than its slots. Cheap; tests call it after every step.
    /// </summary>
    public void CheckInvariants()
    {
        int total = 0;
        for (int l = 0; l < Residency.Layers; l++)
        {
            int n = 0;
            for (int e = 0; e < _experts; e++)
            {
                bool res = Residency.IsResident(l, e);
                int s = Pool.SlotOf(l, e);
                if (res != (s >= 0)) throw new InvalidOperationException($"layer {l} expert {e}: resident {res} but slot {s}");
                if (s >= 0)
                {
                    n++;
                    if (Pool.ExpertAt(l, s) != e) throw new InvalidOperationException($"layer {l} slot {s} holds {Pool.ExpertAt(l, s)}, expected {e}");
                }
            }
            if (n != Pool.InUse(l) || n > Pool.Capacity(l) || Residency.Count(l) != n)
                throw new InvalidOperationException($"layer {l}: {n} experts resident, pool says {Pool.InUse(l)} of {Pool.Capacity(l)} slots");
            total += n;
        }
        if (total != Pool.SlotsInUse || total > Pool.Slots)
            throw new InvalidOperationException($"{total} experts resident, pool says {Pool.SlotsInUse} of {Pool.Slots} slots");
        if (Pool.AllocatedBytes != Pool.Slots * Pool.ExpertBytes)
            throw new InvalidOperationException($"pool holds {Pool.AllocatedBytes} bytes for {Pool.Slots} slots of {Pool.ExpertBytes}");
    }

    /// <summary>Releases the copy stream, staged host images, slots and scratch (also done by disposing the device).</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _approx?.Dispose();
        Transfers.Dispose();
        Store.Dispose();
        Pool.Dispose();
        if (_h != null) _d.Free(_h);
        if (_yk != null) _d.Free(_yk);
        if (_index != null) _d.Free(_index);
    }
}
