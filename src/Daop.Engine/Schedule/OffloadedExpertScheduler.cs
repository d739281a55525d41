using Daop.Engine.Device;
using Daop.Engine.Device.Gpu;
using Daop.Engine.Model;
using Daop.Engine.Model.Layers;
using Daop.Engine.Placement;

namespace Daop.Engine.Schedule;

/// <summary>
/// Routed experts on a GPU with only some of them resident, under an exact VRAM budget: the executor of the
/// <see cref="PlacementDriver"/>'s decisions on a device. The driver asks the <see cref="IPlacementPolicy"/> and decides;
/// the device half (<see cref="IExpertOffload"/>: on a <see cref="GpuDevice"/>, <see cref="GpuExpertOffload"/> with its
/// slot pool, host store, copy queue, tile builder and CPU expert runner) carries out, and DAOP's approximate mode
/// pre-calculates on a background task (<see cref="PreCalc"/>).
/// </summary>
/// <remarks>
/// Per <see cref="RunExperts"/> call (layer l), in the order the driver documents (and <see cref="TraceSimulator"/> charges):
/// <list type="number">
/// <item>Every activation is decided in token order: a hit runs in its slot; a miss the policy transfers evicts its
/// victim (launching the GPU work gathered so far first if that work reads the victim's slot: a split wave), copies the
/// expert into the freed slot and runs it there after the copy; the rest run on the CPU.</item>
/// <item>The GPU experts are launched (fused gate/up over all of them, then the down projection: fused with the combine
/// when everything runs on the GPU for ≤ <see cref="FusedCombineMaxTokens"/> tokens, else per-slot outputs and a combine
/// pass).</item>
/// <item>Decode (one token): layer l+1 is predicted from x (layer l's gate input); the loads the policy makes for it
/// become prefetch copies.</item>
/// <item>CPU experts run while the GPU works; their weighted sum goes up in one copy and is added to y.</item>
/// <item>Decode: the policy may re-place the layer (DAOP's drift mode); prefill chunks: the chunk's counts may swap
/// experts in. Either way the loads become copies.</item>
/// </list>
/// Results equal the all-resident path up to fp32 summation order: placement never changes what is computed, except in
/// DAOP's approximate mode, where during decode the prediction made at layer l becomes layer l+1's routing (checked: is
/// matched against the true routing), its GPU-resident experts run on the true input and its CPU experts' outputs are
/// the ones pre-calculated from layer l's gate input. Routed experts reach the device only through the slots, so the device's bytes =
/// <see cref="DenseBytes"/> + <see cref="PoolBytes"/>.
/// </remarks>
public sealed class OffloadedExpertScheduler : IExpertScheduler, IDisposable
{
    /// <summary>Up to this many tokens, an all-GPU call uses the fused down-and-combine kernel.</summary>
    public const int FusedCombineMaxTokens = GpuExpertOffload.FusedCombineMaxTokens;

    readonly IDevice _device;
    readonly PlacementDriver _driver;
    readonly IExpertOffload _offload;
    readonly PreCalc? _precalc;
    readonly OffloadOptions _o;
    readonly int _hidden;
    readonly int[] _taken; // [K] slots of the decoded token taken pre-calculated, in order
    float[] _gateHost = [];
    int _takenCount;
    bool _startPrecalc, _disposed;

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
        _o = options ?? new OffloadOptions();
        _device = device;
        _hidden = model.Config.HiddenSize;
        _taken = new int[model.Config.TopK];
        var layout = ExpertLayout.Of(model.Weights);
        int stream = StreamMinTokens(layout, _o);
        if (_o.MissPrecision is { } mp) MissCopies = new MissPrecisionCopies(model.Weights, mp.Type);
        _driver = new PlacementDriver(model, policy, slotsPerLayer, popularity, layout.ExpertBytes, _o.RoutingOverride)
        {
            Measure = Measure,
            StreamMinTokens = stream,
            MissPrecision = _o.MissPrecision,
            MissCopySavedBytes = MissCopies?.SavedBytesPerRun ?? 0,
        };
        if (policy.Approximate) _precalc = new PreCalc(model, background: true, _o.PrecalcThreads);
        var r = _driver.Residency;
        var resident = Enumerable.Range(0, r.Layers).Select(l => (IReadOnlyList<int>)[.. r.Resident(l)]).ToArray();
        _offload = new GpuExpertOffload(device, model.Weights, model.Config.TopK, slotsPerLayer, resident, _o.CopyMode,
            _o.PinnedHostBytes ?? DefaultPinnedHostBytes(model.Weights), _o.Images,
            stagingSlots: stream > 0 ? StagingSlots : 0, missCopies: MissCopies);
        CheckInvariants();
    }

    /// <summary>
    /// The default budget of page-locked expert images: the memory available to this process less the routed experts'
    /// bytes (the CPU experts read them from the checkpoint, which must stay in memory) and 8 GiB of headroom, at least 0.
    /// </summary>
    public static long DefaultPinnedHostBytes(ModelWeights weights)
    {
        ArgumentNullException.ThrowIfNull(weights);
        long experts = 0;
        foreach (var layer in weights.Layers)
            foreach (var e in layer.Experts) experts += e.ByteLength;
        return Math.Max(0, GC.GetGCMemoryInfo().TotalAvailableMemoryBytes - experts - (8L << 30));
    }

    /// <summary>Staging slots allocated beside the pool when prefill streams experts (two: one copies while the other computes).</summary>
    public const int StagingSlots = 2;

    /// <summary>
    /// Under a VRAM budget, prefill streams only when the budget holds at least this many experts beside the dense part,
    /// so the staging slots take at most an eighth of it from the residents decode runs on.
    /// </summary>
    public const int StreamingMinBudgetExperts = 8 * StagingSlots;

    /// <summary>The prefill streaming threshold <paramref name="options"/> asks for experts of <paramref name="layout"/> (0: off).</summary>
    public static int StreamMinTokens(ExpertLayout layout, OffloadOptions? options) =>
        options?.StreamPrefillMinTokens ?? OffloadOptions.DefaultStreamMinTokens(layout.ExpertBytes, layout.Bf16.ExpertBytes);

    /// <summary>
    /// A scheduler for <paramref name="model"/> with an expert cache ratio (fraction of routed experts on the GPU),
    /// for <see cref="ModelOptions.Experts"/>: <c>(m, d) => OffloadedExpertScheduler.FromRatio(m, d, policy, 0.5)</c>.
    /// </summary>
    public static OffloadedExpertScheduler FromRatio(MoeModel model, IDevice device, IPlacementPolicy policy, double ratio,
        long[,]? popularity = null, OffloadOptions? options = null) =>
        new(model, AsGpu(device), policy, OffloadBudget.SlotsFromRatio(model.Config, ratio, popularity), popularity, options);

    /// <summary>
    /// A scheduler whose device memory (dense part for chunks of <paramref name="maxChunkTokens"/> and
    /// <paramref name="sequences"/> KV caches, one per parallel sequence, plus the pool and, when prefill streams experts,
    /// the <see cref="StagingSlots"/> staging slots) fits <paramref name="vramBytes"/>; throws if even the dense part does
    /// not. A budget that leaves room for fewer than <see cref="StreamingMinBudgetExperts"/> experts after the dense part
    /// keeps every slot for residents and does not stream.
    /// </summary>
    public static OffloadedExpertScheduler FromVramBudget(MoeModel model, IDevice device, IPlacementPolicy policy, long vramBytes,
        int maxChunkTokens, long[,]? popularity = null, OffloadOptions? options = null, int sequences = 1)
    {
        int staging = StagingSlotsFor(model, vramBytes, maxChunkTokens, sequences, options);
        if (staging == 0) options = (options ?? new OffloadOptions()) with { StreamPrefillMinTokens = 0 };
        return new(model, AsGpu(device), policy, OffloadBudget.SlotsFromVram(model, vramBytes - staging * ExpertLayout.Of(model.Weights).ExpertBytes,
            maxChunkTokens, sequences, popularity), popularity, options);
    }

    /// <summary>
    /// The staging slots a budget of <paramref name="vramBytes"/> gives up for streamed prefill experts (what
    /// <see cref="FromVramBudget"/> allocates): <see cref="StagingSlots"/> when <paramref name="options"/> stream and the
    /// budget holds at least <see cref="StreamingMinBudgetExperts"/> experts beside the dense part but not every routed
    /// expert (then nothing is left to stream), else 0.
    /// </summary>
    public static int StagingSlotsFor(MoeModel model, long vramBytes, int maxChunkTokens, int sequences = 1, OffloadOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        var layout = ExpertLayout.Of(model.Weights);
        return StreamMinTokens(layout, options) > 0
            ? StagingSlotsFor(vramBytes - OffloadBudget.DenseBytes(model, maxChunkTokens, sequences), layout.ExpertBytes,
                model.Weights.Layers.Sum(l => (long)l.Experts.Length))
            : 0;
    }

    /// <summary>
    /// The staging slots <paramref name="freeBytes"/> beside the dense part give up when prefill streams experts of
    /// <paramref name="expertBytes"/>, of which the model has <paramref name="experts"/>: see the overload.
    /// </summary>
    public static int StagingSlotsFor(long freeBytes, long expertBytes, long experts) =>
        freeBytes >= StreamingMinBudgetExperts * expertBytes && freeBytes < experts * expertBytes ? StagingSlots : 0;

    static GpuDevice AsGpu(IDevice device) =>
        device as GpuDevice ?? throw new ArgumentException($"the offloaded expert scheduler needs a GpuDevice, got {device.Name}", nameof(device));

    /// <summary>Which experts are on the GPU (the policy's view; always equal to the slots').</summary>
    public Residency Residency => _driver.Residency;
    /// <summary>The placement policy.</summary>
    public IPlacementPolicy Policy => _driver.Policy;
    /// <summary>The placement driver.</summary>
    public PlacementDriver Driver => _driver;
    /// <summary>The device half: slots, copies, launches, CPU experts (a <see cref="GpuExpertOffload"/>).</summary>
    public IExpertOffload Offload => _offload;
    /// <summary>The low-precision host copies of <see cref="OffloadOptions.MissPrecision"/> (made at construction), or null.</summary>
    public MissPrecisionCopies? MissCopies { get; }
    /// <summary>The options in force.</summary>
    public OffloadOptions Options => _o;
    /// <summary>True when the policy asks for DAOP's approximate mode.</summary>
    public bool Approximate => _driver.Approximate;

    /// <summary>Device bytes of the expert slots: exactly slots × the bytes of one expert in a slot.</summary>
    public long PoolBytes => _offload.PoolBytes;
    /// <summary>Device bytes of everything else: weights of the dense part, caches, activations, scratch.</summary>
    public long DenseBytes => _offload.TotalBytes - _offload.PoolBytes;
    /// <summary>All device bytes the device holds (<see cref="DenseBytes"/> + <see cref="PoolBytes"/>).</summary>
    public long TotalBytes => _offload.TotalBytes;

    /// <summary>Cumulative counters (copy stalls resolved up to now).</summary>
    public OffloadStats Stats => _driver.Stats;

    /// <summary>Counters of the latest forward chunk (from its first MoE layer on): per token when decoding.</summary>
    public OffloadStats LastStep => _driver.LastStep;

    void Measure(OffloadStats s)
    {
        if (_disposed) return;
        s.CopyWaitSeconds = _offload.CopyWaitSeconds;
        s.CpuExpertSeconds = _offload.CpuExpertSeconds;
        if (_precalc == null) return;
        s.PrecalcSeconds = _precalc.Seconds;
        s.PrecalcWaitSeconds = _precalc.WaitSeconds;
    }

    /// <inheritdoc />
    public bool BatchesSequences => _driver.BatchesSequences;

    /// <inheritdoc />
    public void BeginBatch(int tokens, bool prompt)
    {
        _driver.BeginBatch(tokens, prompt);
        _precalc?.Reset();
    }

    /// <inheritdoc />
    public void BeginChunk(int startPos, int tokens)
    {
        _driver.BeginChunk(startPos, tokens);
        if (tokens != 1) _precalc?.Reset();
    }

    /// <summary>Allocates the scratch for chunks of up to <paramref name="tokens"/> now (otherwise it grows on first use).</summary>
    public void ReserveTokens(int tokens)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(tokens);
        _offload.Reserve(tokens);
    }

    /// <inheritdoc />
    public void RunExperts(int layer, DeviceBuffer x, RoutingBatch r, DeviceBuffer y, int tokens)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (tokens <= 0) return;
        var call = _driver.BeginLayer(layer, r, tokens);
        if (!call.Precalculated) _precalc?.Reset();
        int next = _o.PredictNextLayer ? call.Next : -1;
        _offload.Begin(layer, x, y, r, tokens);
        if (next >= 0 || call.CountsNext) _offload.Input(); // x comes down while the compute stream holds nothing that could wait on a copy

        // 0. Prefill: the chunk's counts may swap experts in (in approximate mode, the predictor's counts); the copies
        //    land before the waves that read them, so the chunk runs its hot experts from their new slots.
        Execute(_driver.BeforeActivations(layer, r, tokens, call.CountsNext ? _offload.Input() : default));
        // 1. Every activation (GPU slot, CPU, streamed, pre-calculated), with the misses' evictions and loads in between.
        _takenCount = 0;
        if (call.Precalculated && _driver.ChecksDrift) _driver.CheckPrecalculatedInput(_offload.Input()[.._hidden], _precalc!.Input);
        Execute(_driver.DecideActivations(layer, r, tokens));
        // 2. The GPU experts (asynchronous on CUDA), then, in approximate mode, this layer's CPU experts pre-calculated
        //    during the previous layer (joined before predicting the next one, which reuses the buffers).
        _driver.Counters.Waves += _offload.LaunchGpu();
        if (call.Precalculated) _offload.AddPrecalculated(_precalc!.Join(r, _taken.AsSpan(0, _takenCount)));
        // 3. Prediction for the next MoE layer: prefetch copies overlap this layer's experts.
        _startPrecalc = false;
        if (next >= 0) Execute(_driver.PredictNext(next, _offload.Input()));
        // 4. CPU experts, then the next layer's pre-calculation (both want every CPU worker, and the worker pool runs a
        //    second concurrent caller single-threaded), then the CPU sum goes up.
        _offload.RunCpu();
        if (_startPrecalc) _precalc!.Start(next, _offload.Input(), _driver.Approximation!);
        _offload.Finish();
        // 5. Decode: the policy may re-place this layer (the copies have a whole token to land).
        Execute(_driver.AfterLayer(layer, tokens));
    }

    // Carries decisions out on the device half.
    void Execute(ReadOnlySpan<PlacementDecision> decisions)
    {
        foreach (var d in decisions)
            switch (d.Action)
            {
                case PlacementAction.RunOnGpu: _offload.RunOnGpu(d.Index); break;
                case PlacementAction.RunOnCpu: _offload.RunOnCpu(d.Index, d.LowPrecision); break;
                case PlacementAction.RunStreamed: _offload.RunStreamed(d.Index); break;
                case PlacementAction.TakePrecalculated:
                    _offload.TakePrecalculated(d.Index);
                    _taken[_takenCount++] = d.Index;
                    break;
                case PlacementAction.Evict:
                    _offload.Evict(d.Layer, d.Expert, d.SplitsWave);
                    if (d.SplitsWave) { _driver.Counters.Waves++; _driver.Counters.SplitWaves++; }
                    break;
                case PlacementAction.Load: _offload.Load(d.Layer, d.Expert); break;
                case PlacementAction.StartPrecalculation: _startPrecalc = true; break;
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
        int next = _driver.NextMoe(layer);
        if (tokens != 1 || next < 0) return;
        if (_gateHost.Length < _hidden) _gateHost = new float[_hidden];
        _device.CopyToHost(gateInput, 0, _gateHost.AsSpan(0, _hidden));
        _startPrecalc = false;
        Execute(_driver.PredictNext(next, _gateHost));
        if (_startPrecalc) _precalc!.Start(next, _gateHost, _driver.Approximation!);
    }

    /// <summary>Waits for every queued copy.</summary>
    public void Synchronize() => _offload.Synchronize();

    /// <summary>
    /// Throws if the slots and the residency disagree, a layer holds more experts than its slots, or the slots' own
    /// bookkeeping is off. Cheap; tests call it after every step.
    /// </summary>
    public void CheckInvariants()
    {
        var r = _driver.Residency;
        for (int l = 0; l < r.Layers; l++)
        {
            int n = 0;
            for (int e = 0; e < r.Experts; e++)
            {
                bool res = r.IsResident(l, e);
                int s = _offload.SlotOf(l, e);
                if (res != (s >= 0)) throw new InvalidOperationException($"layer {l} expert {e}: resident {res} but slot {s}");
                if (s >= 0) n++;
            }
            if (r.Count(l) != n || n > r.Capacity(l)) throw new InvalidOperationException($"layer {l}: {r.Count(l)} experts resident, {n} in slots, {r.Capacity(l)} slots");
        }
        _offload.CheckSlots();
    }

    /// <summary>Releases the copy stream, staged host images, slots and scratch (also done by disposing the device).</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _precalc?.Dispose();
        _offload.Dispose();
    }
}
