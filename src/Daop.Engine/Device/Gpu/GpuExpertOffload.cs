using Daop.Engine.Load.Config;
using Daop.Engine.Model;
using Daop.Engine.Model.Layers;
using Daop.Kernels.Gpu;
using ILGPU;
using ILGPU.Runtime;

namespace Daop.Engine.Device.Gpu;

/// <summary>
/// Offloaded experts on a <see cref="GpuDevice"/> (<see cref="IExpertOffload"/>): an <see cref="ExpertSlotPool"/> of
/// fixed slots per layer, a <see cref="HostExpertStore"/> for every expert's host copy, an
/// <see cref="ExpertTransferQueue"/> for host→device copies on their own stream and a <see cref="CpuExpertRunner"/>.
/// A layer call's GPU activations are gathered into a wave, grouped by slot into tiles (<see cref="ExpertTiles"/>) and
/// launched: fused gate/up over all of them, then the down projection fused with the combine when everything runs on the
/// GPU for ≤ <see cref="FusedCombineMaxTokens"/> tokens, else per-position outputs and a combine pass. GPT-OSS's biased
/// clamped-SwiGLU experts take the same protocol, slots (biases in the slot, <see cref="ExpertLayout.Biased"/>), staging,
/// transfers, launches (the kernels' biased variants, with the slots' bias stack) and CPU runner
/// (<see cref="Schedule.CpuExpert"/>). Routed experts reach the device only through the pool, never
/// through <see cref="GpuDevice.Matrix"/>.
/// </summary>
public sealed class GpuExpertOffload : IExpertOffload
{
    /// <summary>Up to this many tokens, an all-GPU call uses the fused down-and-combine kernel.</summary>
    public const int FusedCombineMaxTokens = GpuResidentExperts.FusedCombineMaxTokens;

    readonly GpuDevice _d;
    readonly int _hidden, _inter, _topK, _experts;
    readonly ExpertTiles _tiles;      // a wave's positions by slot
    readonly Activation.ClampedSwiGlu?[] _clamped; // [layer] GPT-OSS's activation, or null: SwiGLU
    readonly ExpertGroups _cpuGroups, _streamGroups; // the CPU / streamed positions by expert
    readonly bool[] _inWave;          // [slot]
    readonly List<int> _wave = [];
    readonly Queue<int> _stagedOrder = new(); // staging slots in use, least recently assigned first
    int[] _waveSlot = [], _cpuExpert = [], _streamExpert = [], _rows = []; // [P] slot in the current wave / CPU / streamed expert (-1: none); rows
    float[] _scales = [];
    GpuArray<int>? _index;
    GpuArray<float>? _h, _yk;
    int _reserved, _layer, _tokens, _gpu, _cpu, _pre, _str;
    bool _flushed, _ykZeroed, _disposed;
    DeviceBuffer? _x, _y;
    RoutingBatch? _r;

    /// <summary>
    /// Allocates <paramref name="slotsPerLayer"/> slots (and <paramref name="stagingSlots"/> staging slots for streamed
    /// prefill experts) on <paramref name="device"/> and uploads the experts <paramref name="resident"/> names per layer;
    /// the other experts' page-locked images are made when <paramref name="images"/> says; <paramref name="missCopies"/>:
    /// the low-precision host copies CPU runs may read (<see cref="Schedule.PlacementDriver.MissPrecision"/>), or null.
    /// </summary>
    public GpuExpertOffload(GpuDevice device, ModelWeights weights, int topK, IReadOnlyList<int> slotsPerLayer,
        IReadOnlyList<IReadOnlyList<int>> resident, HostCopyMode copyMode = HostCopyMode.Auto, long pinnedHostBytes = long.MaxValue,
        HostImageTiming images = HostImageTiming.Auto, int stagingSlots = 0, Schedule.MissPrecisionCopies? missCopies = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(stagingSlots);
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(weights);
        _d = device;
        Layout = ExpertLayout.Of(weights);
        _clamped = weights.Layers.Select(l => l.Ffn.Spec.Act as Activation.ClampedSwiGlu).ToArray();
        for (int l = 0; l < weights.Layers.Length; l++)
        {
            // A slot's biases and the launches that read them go together: biased experts are GPT-OSS's, and only they.
            var act = weights.Layers[l].Ffn.Spec.Act;
            if (weights.Layers[l].Experts.Length > 0 && (act is not (Activation.SwiGlu or Activation.ClampedSwiGlu) || (_clamped[l] != null) != Layout.Biased))
                throw new NotSupportedException($"layer {l}: GPU expert offloading runs SwiGLU experts without biases and clamped SwiGLU experts " +
                    $"with them, not {act} experts {(Layout.Biased ? "with" : "without")} biases");
        }
        _hidden = Layout.Hidden;
        _inter = Layout.Inter;
        _topK = topK;
        int experts = weights.Layers.Max(l => l.Experts.Length), maxSlots = slotsPerLayer.Count == 0 ? 0 : slotsPerLayer.Max();
        _tiles = new ExpertTiles(Math.Max(maxSlots, stagingSlots));
        _experts = experts;
        _cpuGroups = new ExpertGroups(2 * experts); // an expert's full- and low-precision runs (MissPrecision) apart
        _streamGroups = new ExpertGroups(experts);
        _inWave = new bool[maxSlots];
        Pool = new ExpertSlotPool(device, Layout, experts, slotsPerLayer);
        Store = new HostExpertStore(weights, Layout, device.Gpu, copyMode, pinnedHostBytes);
        Transfers = new ExpertTransferQueue(device, Pool, Store);
        if (stagingSlots > 0)
        {
            // One pool layer holds any model layer's streamed expert; its own copy stream keeps its copies from queueing
            // behind the pool's, and the slots' fences keep a copy from overwriting an expert its kernels still read. A
            // layer streams at most its E experts at once (one, for a dense model's FFN), so more slots than E are unused.
            Staging = new ExpertSlotPool(device, Layout, experts, [Math.Min(stagingSlots, experts)]);
            StagingTransfers = new ExpertTransferQueue(device, Staging, Store);
        }
        Cpu = new CpuExpertRunner(device, weights, _hidden, _inter, missCopies);
        device.Own(this);
        for (int l = 0; l < resident.Count; l++)
            foreach (int e in resident[l]) Pool.Upload(device.Stream, l, Pool.Assign(l, e), weights.Layers[l].Experts[e]);
        if (images == HostImageTiming.Auto) images = Store.IsCuda ? HostImageTiming.Background : HostImageTiming.OnFirstCopy;
        // Residents were uploaded from the checkpoint; every other expert may be copied (prefill streams most of them).
        var copied = Enumerable.Range(0, weights.Layers.Length)
            .SelectMany(l => Enumerable.Range(0, weights.Layers[l].Experts.Length).Where(e => Pool.SlotOf(l, e) < 0).Select(e => (l, e)));
        if (images == HostImageTiming.AtStart)
            foreach (var (l, e) in copied) Store.Pin(l, e);
        else if (images == HostImageTiming.Background)
            Store.PinInBackground(copied, Environment.ProcessorCount);
    }

    /// <summary>Shape of every routed expert.</summary>
    public ExpertLayout Layout { get; }
    /// <summary>The GPU expert slots.</summary>
    public ExpertSlotPool Pool { get; }
    /// <summary>Host copies of every expert.</summary>
    public HostExpertStore Store { get; }
    /// <summary>The host→device copy queue.</summary>
    public ExpertTransferQueue Transfers { get; }
    /// <summary>The CPU expert runner.</summary>
    public CpuExpertRunner Cpu { get; }
    /// <summary>Staging slots for streamed prefill experts (one pool layer), or null.</summary>
    public ExpertSlotPool? Staging { get; }
    /// <summary>The copy queue into <see cref="Staging"/>, or null.</summary>
    public ExpertTransferQueue? StagingTransfers { get; }

    /// <summary>Device bytes of one expert in a slot: what one transfer moves.</summary>
    public long ExpertBytes => Layout.ExpertBytes;
    /// <inheritdoc />
    public long PoolBytes => Pool.AllocatedBytes + (Staging?.AllocatedBytes ?? 0);
    /// <inheritdoc />
    public long TotalBytes => _d.AllocatedBytes;
    /// <inheritdoc />
    public double CopyWaitSeconds
    {
        get
        {
            if (!_disposed) { Transfers.Poll(); StagingTransfers?.Poll(); }
            return Transfers.WaitSeconds + (StagingTransfers?.WaitSeconds ?? 0);
        }
    }
    /// <inheritdoc />
    public double CpuExpertSeconds => Cpu.Seconds;
    /// <summary>Waves launched on the batched (prefill) kernels rather than the row kernels.</summary>
    public long BatchedWaves { get; private set; }

    /// <inheritdoc />
    public int SlotOf(int layer, int expert) => Pool.SlotOf(layer, expert);

    /// <summary>Device bytes of the scratch for chunks of <paramref name="tokens"/> (part of the dense budget).</summary>
    public static long ScratchBytes(int tokens, int topK, int hidden, int inter)
    {
        long p = (long)tokens * topK;
        return GpuMemory.Floats(p * inter) + GpuMemory.Floats(p * hidden) + GpuMemory.Floats((long)tokens * hidden) + 4 * Math.Max(4, IndexLength(p));
    }

    // [order ≤P | tiles ≤3P | pos P | key P | weight bits P]
    static long IndexLength(long p) => 7 * p;

    /// <inheritdoc />
    public void Reserve(int tokens)
    {
        if (tokens <= _reserved) return;
        int p = tokens * _topK;
        if (_h != null) _d.Free(_h);
        if (_yk != null) _d.Free(_yk);
        if (_index != null) _d.Free(_index);
        _h = _d.AllocateFloats((long)p * _inter);
        _yk = _d.AllocateFloats((long)p * _hidden);
        _index = _d.Gpu.Allocate1D<int>(Math.Max(4, IndexLength(p)));
        _d.Track(_index);
        Cpu.Reserve(tokens);
        _waveSlot = new int[p];
        _cpuExpert = new int[p];
        _streamExpert = new int[p];
        _rows = new int[p];
        _scales = new float[p];
        _reserved = tokens;
    }

    /// <inheritdoc />
    public void Evict(int layer, int expert, bool splitWave)
    {
        if (splitWave)
        {
            if (!_ykZeroed) { ZeroYk(); _ykZeroed = true; }
            LaunchWave(direct: false);
            _flushed = true;
        }
        Pool.Release(layer, expert);
    }

    /// <inheritdoc />
    public void Load(int layer, int expert) => Transfers.Enqueue(layer, expert, Pool.Assign(layer, expert));

    /// <inheritdoc />
    public void Begin(int layer, DeviceBuffer x, DeviceBuffer y, RoutingBatch r, int tokens)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        Reserve(tokens);
        Transfers.Poll();
        StagingTransfers?.Poll();
        Cpu.Begin(x, tokens);
        (_layer, _x, _y, _r, _tokens) = (layer, x, y, r, tokens);
        _waveSlot.AsSpan(0, tokens * _topK).Fill(-1);
        _cpuExpert.AsSpan(0, tokens * _topK).Fill(-1);
        _streamExpert.AsSpan(0, tokens * _topK).Fill(-1);
        _wave.Clear();
        Array.Clear(_inWave);
        _flushed = _ykZeroed = false;
        _gpu = _cpu = _pre = _str = 0;
    }

    /// <inheritdoc />
    public ReadOnlySpan<float> Input() => Cpu.Input();

    /// <inheritdoc />
    public void RunOnGpu(int position)
    {
        int s = Pool.SlotOf(_layer, _r!.Experts[position]);
        _waveSlot[position] = s;
        _wave.Add(position);
        _inWave[s] = true;
        _gpu++;
    }

    /// <inheritdoc />
    public void RunOnCpu(int position, bool lowPrecision)
    {
        if (lowPrecision && Cpu.MissCopies == null) throw new InvalidOperationException("a low-precision CPU run needs the miss copies (missCopies)");
        _cpuExpert[position] = _r!.Experts[position] + (lowPrecision ? _experts : 0); // keys E.. : the low-precision copy
        _cpu++;
    }

    /// <inheritdoc />
    public void RunStreamed(int position)
    {
        if (Staging == null) throw new InvalidOperationException("streamed prefill experts need staging slots (stagingSlots > 0)");
        _streamExpert[position] = _r!.Experts[position];
        _str++;
    }

    /// <inheritdoc />
    public void TakePrecalculated(int position) => _pre++;

    /// <inheritdoc />
    public int LaunchGpu()
    {
        // CPU experts' rows come down first: the copy waits for the compute stream, which must not yet hold kernels
        // waiting on transfers.
        if (_cpu > 0) Cpu.Input();
        if (_gpu + _str == 0) return 0;
        if (!_flushed && _cpu + _pre + _str == 0 && _tokens <= FusedCombineMaxTokens)
        {
            LaunchWave(direct: true);
            return 1;
        }
        if (!_ykZeroed && _cpu + _pre > 0) ZeroYk();
        int waves = _wave.Count > 0 ? 1 : 0;
        if (waves > 0) LaunchWave(direct: false);
        waves += LaunchStreamed();
        _d.Kernels.Combine(_d.Stream, _yk!.View, ((GpuBuffer)_y!).View, _tokens, _topK, _hidden);
        return waves;
    }

    // Each streamed expert: its copy into the least recently assigned staging slot (on the staging stream, after the
    // kernels that last read that slot), then a wave of its positions that waits for the copy. With two slots the copy
    // engine moves expert i+1 while expert i computes; the host runs the CPU experts meanwhile.
    int LaunchStreamed()
    {
        if (_str == 0) return 0;
        var staging = Staging!;
        var copies = StagingTransfers!;
        int p = _tokens * _topK, waves = 0;
        _streamGroups.Sort(_streamExpert.AsSpan(0, p));
        for (int e = 0; e < _streamGroups.Keys; e++)
        {
            var group = _streamGroups.Group(e);
            if (group.Length == 0) continue;
            if (staging.SlotOf(0, e) >= 0) ReleaseStaged(staging.SlotOf(0, e)); // e of another layer, staged earlier
            if (staging.InUse(0) == staging.Capacity(0)) ReleaseStaged(_stagedOrder.Peek());
            int slot = staging.Assign(0, e);
            _stagedOrder.Enqueue(slot);
            copies.Enqueue(_layer, e, 0, slot);
            foreach (int i in group) _waveSlot[i] = slot;
            LaunchSlots(staging, copies, 0, direct: false);
            foreach (int i in group) _waveSlot[i] = -1;
            waves++;
        }
        return waves;
    }

    // Frees a staging slot's bookkeeping (its bytes stay until the next copy, which waits for the slot's readers).
    void ReleaseStaged(int slot)
    {
        Staging!.Release(0, Staging.ExpertAt(0, slot));
        for (int j = _stagedOrder.Count; j > 0; j--) // the others keep their order
        {
            int s = _stagedOrder.Dequeue();
            if (s != slot) _stagedOrder.Enqueue(s);
        }
    }

    void ZeroYk() => _yk!.View.SubView(0, (long)_tokens * _topK * _hidden).MemSetToZero(_d.Stream);

    // Launches the gathered activations (the wave) of the call's layer: fused gate/up, then either the down projection
    // fused with the combine straight into y (direct) or per-position outputs into yk.
    void LaunchWave(bool direct)
    {
        LaunchSlots(Pool, Transfers, _layer, direct);
        foreach (int i in _wave) _waveSlot[i] = -1;
        _wave.Clear();
        Array.Clear(_inWave);
    }

    // One launch of the positions whose _waveSlot names one of the slots of pool layer poolLayer (the queue's pool):
    // fused gate/up, then the down projection fused with the combine into y (direct) or into yk; biased experts the same
    // on the kernels' biased variants, reading the slots' biases.
    void LaunchSlots(ExpertSlotPool pool, ExpertTransferQueue queue, int poolLayer, bool direct)
    {
        int p = _tokens * _topK, cap = pool.Capacity(poolLayer);
        var stacks = pool.Matrices(poolLayer);
        var (gate, up, down) = stacks;
        var slots = _waveSlot.AsSpan(0, p);
        var weights = _r!.Weights.AsSpan(0, p);
        var clamped = _clamped[_layer];
        _tiles.Group(slots);
        // Prefill: once some slot has more positions than a row tile, batched tiles (tensor cores where the format has
        // them), as in the all-resident path.
        bool batched = _tiles.Layout(slots, weights, _d.Kernels, gate, down, mayBatch: !direct);
        if (batched) BatchedWaves++;
        _tiles.Upload(_d, _index!.View);
        for (int s = 0; s < cap; s++)
            if (_tiles.Count(s) > 0) queue.BeforeUse(poolLayer, s);
        var x = ((GpuBuffer)_x!).View;
        var output = direct ? ((GpuBuffer)_y!).View : _yk!.View;
        _tiles.Launch(_d.Kernels, _d.Stream, gate, up, down, x, _h!.View, _index.View, _topK, batched, output, fusedCombine: direct, _tokens,
            clamped != null ? pool.Biases(poolLayer) : null, clamped != null ? Layout.BiasArgs(clamped) : default);
        for (int s = 0; s < cap; s++)
            if (_tiles.Count(s) > 0) queue.MarkUsed(poolLayer, s);
        queue.EndUse();
    }

    /// <inheritdoc />
    public void AddPrecalculated(ReadOnlySpan<float> sum)
    {
        if (_pre > 0) Cpu.Accumulate(0, sum);
    }

    /// <inheritdoc />
    public void RunCpu()
    {
        if (_cpu == 0) return;
        int k = _topK;
        _cpuGroups.Sort(_cpuExpert.AsSpan(0, _tokens * k));
        for (int e = 0; e < _cpuGroups.Keys; e++)
        {
            var group = _cpuGroups.Group(e);
            for (int j = 0; j < group.Length; j++)
            {
                _rows[j] = group[j] / k;
                _scales[j] = _r!.Weights[group[j]];
            }
            if (group.Length > 0)
                Cpu.Run(_layer, e % _experts, _rows.AsSpan(0, group.Length), _scales.AsSpan(0, group.Length), lowPrecision: e >= _experts);
        }
    }

    /// <inheritdoc />
    public void Finish()
    {
        if (_cpu + _pre > 0) Cpu.AddTo(_y!, overwrite: _gpu + _str == 0);
    }

    /// <inheritdoc />
    public void Synchronize()
    {
        _d.Synchronize();
        Transfers.Synchronize();
        StagingTransfers?.Synchronize();
    }

    /// <inheritdoc />
    public void CheckSlots()
    {
        Pool.CheckConsistency();
        Staging?.CheckConsistency();
    }

    /// <summary>Releases the copy stream, staged host images, slots and scratch (also done by disposing the device).</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        Transfers.Dispose();
        StagingTransfers?.Dispose();
        Store.Dispose();
        Pool.Dispose();
        Staging?.Dispose();
        if (_h != null) _d.Free(_h);
        if (_yk != null) _d.Free(_yk);
        if (_index != null) _d.Free(_index);
    }
}
