using System.Buffers;
using System.Runtime.InteropServices;
using Daop.Engine.Model;
using Daop.Kernels.Cpu;
using Daop.Kernels;
using Daop.Kernels.Gpu;
using ILGPU;
using ILGPU.Runtime;

namespace Daop.Engine.Device.Gpu;

/// <summary>
/// The shape of one routed expert as a GPU slot holds it: gate and up [Inter, Hidden], down [Hidden, Inter], each in
/// its device dtype (<see cref="GpuMatrix.DeviceType"/>) with rows padded to whole 16-byte chunks (the
/// <see cref="GpuMatrix"/> layout; the block formats take their quantized bytes, so a Q4_0 or Q4_K Mixtral expert is
/// 3.56x smaller than in bf16); for <paramref name="Biased"/> experts (GPT-OSS) then their fp32 biases, gate [I], up [I],
/// down [H], padded to a whole chunk — part of the slot, its transfer and every budget.
/// </summary>
/// <param name="GateType">Device dtype of the gate matrix.</param>
/// <param name="UpType">Device dtype of the up matrix.</param>
/// <param name="DownType">Device dtype of the down matrix.</param>
/// <param name="Hidden">Model width.</param>
/// <param name="Inter">Expert intermediate width.</param>
/// <param name="Biased">Whether the projections carry biases (<see cref="ExpertWeights.Bias"/>).</param>
public readonly record struct ExpertLayout(DType GateType, DType UpType, DType DownType, int Hidden, int Inter, bool Biased = false)
{
    /// <summary>16-byte chunks of the padded gate matrix.</summary>
    public long GateChunks => (long)Inter * GpuMatrix.ChunksPerRow(GateType, Hidden);
    /// <summary>16-byte chunks of the padded up matrix.</summary>
    public long UpChunks => (long)Inter * GpuMatrix.ChunksPerRow(UpType, Hidden);
    /// <summary>16-byte chunks of the padded down matrix.</summary>
    public long DownChunks => (long)Hidden * GpuMatrix.ChunksPerRow(DownType, Inter);
    /// <summary>16-byte chunks of the fp32 biases [gate I | up I | down H], padded (0 unless <see cref="Biased"/>).</summary>
    public long BiasChunks => Biased ? (2L * Inter + Hidden + 3) / 4 : 0;
    /// <summary>Floats from one expert's biases to the next in a stack of them (<see cref="BiasChunks"/> · 4).</summary>
    public int BiasStride => (int)(4 * BiasChunks);
    /// <summary>16-byte chunks of one expert (gate + up + down + biases).</summary>
    public long Chunks => GateChunks + UpChunks + DownChunks + BiasChunks;
    /// <summary>Device bytes of one expert in a slot (padded rows): what one slot costs and what one transfer moves.</summary>
    public long ExpertBytes => Chunks * 16;

    /// <summary>The same shape with every matrix in bf16 (what a quantized expert's slot is compared against).</summary>
    public ExpertLayout Bf16 => this with { GateType = DType.BF16, UpType = DType.BF16, DownType = DType.BF16 };

    /// <summary>The layout of <paramref name="w"/> on the device.</summary>
    public static ExpertLayout Of(in ExpertWeights w) =>
        new(GpuMatrix.DeviceType(w.Gate.Type), GpuMatrix.DeviceType(w.Up.Type), GpuMatrix.DeviceType(w.Down.Type), w.Gate.Cols, w.Gate.Rows, w.Bias != null);

    /// <summary>The biased expert kernels' arguments for a stack of these experts' biases with activation <paramref name="act"/>.</summary>
    public ExpertBiasArgs BiasArgs(Daop.Engine.Load.Config.Activation.ClampedSwiGlu act) =>
        new() { Stride = BiasStride, Inter = Inter, Alpha = act.Alpha, Limit = act.Limit };

    /// <summary>
    /// Writes <paramref name="b"/> into <paramref name="dst"/> (<see cref="BiasChunks"/> chunks) as the slot holds them:
    /// gate [I], up [I], down [H] fp32, then zeros.
    /// </summary>
    public void PackBias(in ExpertBiases b, Span<Chunk16> dst)
    {
        if (!Biased || dst.Length != BiasChunks) throw new ArgumentException($"{dst.Length} chunks for the biases of {this}", nameof(dst));
        if (b.Gate.Length != Inter || b.Up.Length != Inter || b.Down.Length != Hidden)
            throw new ArgumentException($"biases of {b.Gate.Length}, {b.Up.Length}, {b.Down.Length} floats do not fit [{Inter}], [{Inter}], [{Hidden}]", nameof(b));
        var f = MemoryMarshal.Cast<Chunk16, float>(dst);
        b.Gate.CopyTo(f);
        b.Up.CopyTo(f[Inter..]);
        b.Down.CopyTo(f[(2 * Inter)..]);
        f[(2 * Inter + Hidden)..].Clear();
    }

    /// <summary>
    /// The one layout every routed expert of <paramref name="weights"/> takes in a slot. Where a matrix role is stored in
    /// different block formats across layers (a Q4_K_M file: q4_K down projections in some layers, q6_K in others), the
    /// slots hold it as Q8_0 (<see cref="GpuMatrix.CanHold"/>), so one slot size serves every layer; experts of different
    /// shapes, or of dense dtypes that differ, are refused.
    /// </summary>
    public static ExpertLayout Of(ModelWeights weights) => Of(weights.Layers.SelectMany(l => l.Experts));

    /// <summary>The one layout all of <paramref name="experts"/> take in a slot (as <see cref="Of(ModelWeights)"/>).</summary>
    public static ExpertLayout Of(IEnumerable<ExpertWeights> experts)
    {
        ExpertLayout? common = null;
        foreach (var e in experts)
        {
            if (e.Up.Rows != e.Gate.Rows || e.Up.Cols != e.Gate.Cols || e.Down.Rows != e.Gate.Cols || e.Down.Cols != e.Gate.Rows)
                throw new NotSupportedException($"expert matrices do not form a SwiGLU FFN: gate {e.Gate.Rows}x{e.Gate.Cols}, up {e.Up.Rows}x{e.Up.Cols}, down {e.Down.Rows}x{e.Down.Cols}");
            var l = Of(e);
            if (common is not { } c) common = l;
            else if (l.Hidden != c.Hidden || l.Inter != c.Inter || l.Biased != c.Biased) throw new NotSupportedException($"routed experts differ in shape: {l} vs {c}");
            else common = new ExpertLayout(Common(c.GateType, l.GateType, l, c), Common(c.UpType, l.UpType, l, c), Common(c.DownType, l.DownType, l, c), c.Hidden, c.Inter, c.Biased);
        }
        return common ?? throw new ArgumentException("the model has no routed experts", nameof(experts));
    }

    // One device dtype for a matrix role held as a and as b: the same, or Q8_0 for two block formats.
    static DType Common(DType a, DType b, ExpertLayout l, ExpertLayout c) =>
        a == b ? a : a.IsBlock() && b.IsBlock() ? DType.Q8_0 : throw new NotSupportedException($"routed experts differ in dtype: {l} vs {c}");

    /// <summary>Whether a slot of this layout can hold <paramref name="w"/> (its shape, and each matrix's dtype as <see cref="GpuMatrix.CanHold"/> says).</summary>
    public bool Matches(in ExpertWeights w) =>
        (w.Bias != null) == Biased && w.Gate.Cols == Hidden && w.Gate.Rows == Inter && w.Up.Cols == Hidden && w.Up.Rows == Inter && w.Down.Cols == Inter && w.Down.Rows == Hidden
        && GpuMatrix.CanHold(GateType, w.Gate.Type) && GpuMatrix.CanHold(UpType, w.Up.Type) && GpuMatrix.CanHold(DownType, w.Down.Type);

    /// <summary>"gate q4_K, up q4_K, down q8_0, 4096x14336" (hidden x inter).</summary>
    public override string ToString() => $"gate {GateType.Name()}, up {UpType.Name()}, down {DownType.Name()}, {Hidden}x{Inter}{(Biased ? ", biased" : "")}";
}

/// <summary>
/// GPU expert slots under an exact budget: one device allocation of exactly <see cref="Slots"/> ×
/// <see cref="ExpertLayout.ExpertBytes"/> bytes, split per layer. Layer l's slots form three stacks (gate, up, down;
/// slot s is matrix s of each), then, for biased experts, a stack of their biases (<see cref="Biases"/>), so the grouped
/// expert kernels run any set of a layer's resident experts in one launch, with the slot id as the expert index. The pool tracks which expert each slot holds and refuses to hold more
/// experts than it has slots; it moves no bytes itself except through <see cref="Upload"/>.
/// </summary>
public sealed class ExpertSlotPool : IDisposable
{
    readonly GpuDevice _device;
    readonly GpuArray<Chunk16>? _buffer;
    readonly int[] _capacity, _inUse, _base;    // per layer: slots, occupied slots, first global slot
    readonly long[] _offset;                      // per layer: first chunk
    readonly int[][] _expertAt, _slotOf;          // [layer][slot] → expert, [layer][expert] → slot (-1: none)
    readonly Stack<int>[] _free;
    int _slotsInUse;
    bool _disposed;

    /// <summary>
    /// Allocates <paramref name="slotsPerLayer"/> slots (0 for dense layers) for experts of <paramref name="layout"/>
    /// on <paramref name="device"/>'s accelerator. The allocation is registered with the device, so
    /// <see cref="GpuDevice.AllocatedBytes"/> includes it and disposing the device frees it.
    /// </summary>
    public ExpertSlotPool(GpuDevice device, ExpertLayout layout, int experts, IReadOnlyList<int> slotsPerLayer)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (experts <= 0) throw new ArgumentOutOfRangeException(nameof(experts), $"experts per layer must be positive, got {experts}");
        _device = device;
        Layout = layout;
        Experts = experts;
        Layers = slotsPerLayer.Count;
        _capacity = new int[Layers];
        _inUse = new int[Layers];
        _base = new int[Layers];
        _offset = new long[Layers];
        _expertAt = new int[Layers][];
        _slotOf = new int[Layers][];
        _free = new Stack<int>[Layers];
        long chunks = 0;
        int slots = 0;
        for (int l = 0; l < Layers; l++)
        {
            int s = slotsPerLayer[l];
            if (s < 0 || s > experts)
                throw new ArgumentOutOfRangeException(nameof(slotsPerLayer), $"layer {l} asks for {s} expert slots; it must be 0..{experts}");
            _capacity[l] = s;
            _base[l] = slots;
            _offset[l] = chunks;
            _expertAt[l] = Enumerable.Repeat(-1, s).ToArray();
            _slotOf[l] = Enumerable.Repeat(-1, experts).ToArray();
            _free[l] = new Stack<int>(Enumerable.Range(0, s).Reverse());
            slots += s;
            chunks += s * layout.Chunks;
        }
        Slots = slots;
        if (chunks > 0)
        {
            _buffer = device.Gpu.Allocate1D<Chunk16>(chunks);
            device.Track(_buffer);
        }
    }

    /// <summary>Shape of every expert in the pool.</summary>
    public ExpertLayout Layout { get; }
    /// <summary>Layers (MoE or not) the pool spans.</summary>
    public int Layers { get; }
    /// <summary>Experts per layer (the id range a slot may hold).</summary>
    public int Experts { get; }
    /// <summary>Slots over all layers.</summary>
    public int Slots { get; }
    /// <summary>Bytes of one slot (one expert, padded rows).</summary>
    public long ExpertBytes => Layout.ExpertBytes;
    /// <summary>Device bytes the pool holds: exactly <see cref="Slots"/> × <see cref="ExpertBytes"/>.</summary>
    public long AllocatedBytes => _buffer?.LengthInBytes ?? 0;
    /// <summary>Slots holding an expert now, over all layers (never more than <see cref="Slots"/>).</summary>
    public int SlotsInUse => _slotsInUse;

    /// <summary>Slots of <paramref name="layer"/>.</summary>
    public int Capacity(int layer) => _capacity[layer];
    /// <summary>Occupied slots of <paramref name="layer"/>.</summary>
    public int InUse(int layer) => _inUse[layer];
    /// <summary>Index of slot (<paramref name="layer"/>, <paramref name="slot"/>) among all slots of the pool.</summary>
    public int GlobalSlot(int layer, int slot) => _base[layer] + slot;
    /// <summary>The expert slot <paramref name="slot"/> of <paramref name="layer"/> holds, or -1.</summary>
    public int ExpertAt(int layer, int slot) => _expertAt[layer][slot];
    /// <summary>The slot holding <paramref name="expert"/> of <paramref name="layer"/>, or -1.</summary>
    public int SlotOf(int layer, int expert) => _slotOf[layer][expert];

    /// <summary>Gives <paramref name="expert"/> a free slot of its layer and returns the slot id (its bytes are not copied).</summary>
    public int Assign(int layer, int expert)
    {
        if ((uint)expert >= (uint)Experts) throw new ArgumentOutOfRangeException(nameof(expert), $"expert {expert} is outside [0, {Experts})");
        if (_slotOf[layer][expert] >= 0) throw new InvalidOperationException($"expert {expert} of layer {layer} already holds slot {_slotOf[layer][expert]}");
        if (_free[layer].Count == 0)
            throw new InvalidOperationException($"layer {layer} has no free expert slot ({_capacity[layer]} slots, all in use) for expert {expert}");
        int s = _free[layer].Pop();
        _expertAt[layer][s] = expert;
        _slotOf[layer][expert] = s;
        _inUse[layer]++;
        _slotsInUse++;
        return s;
    }

    /// <summary>Frees the slot of <paramref name="expert"/> and returns its id.</summary>
    public int Release(int layer, int expert)
    {
        int s = _slotOf[layer][expert];
        if (s < 0) throw new InvalidOperationException($"expert {expert} of layer {layer} holds no slot");
        _slotOf[layer][expert] = -1;
        _expertAt[layer][s] = -1;
        _free[layer].Push(s);
        _inUse[layer]--;
        _slotsInUse--;
        return s;
    }

    /// <summary>Layer <paramref name="layer"/>'s slots as three stacks for the grouped kernels (expert index = slot id).</summary>
    public (GpuMatrix Gate, GpuMatrix Up, GpuMatrix Down) Matrices(int layer)
    {
        int n = _capacity[layer];
        if (n == 0 || _buffer == null) throw new InvalidOperationException($"layer {layer} has no expert slots");
        var L = Layout;
        var v = _buffer.View;
        long o = _offset[layer];
        return (new GpuMatrix(v.SubView(o, n * L.GateChunks), L.GateType, L.Inter, L.Hidden, n),
            new GpuMatrix(v.SubView(o + n * L.GateChunks, n * L.UpChunks), L.UpType, L.Inter, L.Hidden, n),
            new GpuMatrix(v.SubView(o + n * (L.GateChunks + L.UpChunks), n * L.DownChunks), L.DownType, L.Hidden, L.Inter, n));
    }

    /// <summary>
    /// Layer <paramref name="layer"/>'s bias stack for biased experts: slot s's gate [I], up [I] and down [H] biases at
    /// s · <see cref="ExpertLayout.BiasStride"/> (empty for unbiased experts).
    /// </summary>
    public GpuView<float> Biases(int layer)
    {
        int n = _capacity[layer];
        if (n == 0 || _buffer == null) throw new InvalidOperationException($"layer {layer} has no expert slots");
        var L = Layout;
        return _buffer.View.SubView(_offset[layer] + n * (L.GateChunks + L.UpChunks + L.DownChunks), n * L.BiasChunks).Cast<float>();
    }

    /// <summary>The device memory of one slot: its gate, up and down chunks and its bias chunks (empty for unbiased experts).</summary>
    public (GpuView<Chunk16> Gate, GpuView<Chunk16> Up, GpuView<Chunk16> Down, GpuView<Chunk16> Bias) SlotViews(int layer, int slot)
    {
        if ((uint)slot >= (uint)_capacity[layer]) throw new ArgumentOutOfRangeException(nameof(slot), $"slot {slot} is outside layer {layer}'s {_capacity[layer]} slots");
        var (g, u, d) = Matrices(layer);
        var L = Layout;
        long biases = _offset[layer] + _capacity[layer] * (L.GateChunks + L.UpChunks + L.DownChunks);
        return (g.Data.SubView(slot * L.GateChunks, L.GateChunks), u.Data.SubView(slot * L.UpChunks, L.UpChunks),
            d.Data.SubView(slot * L.DownChunks, L.DownChunks), _buffer!.View.SubView(biases + slot * L.BiasChunks, L.BiasChunks));
    }

    /// <summary>Copies <paramref name="w"/> from host memory into a slot on <paramref name="stream"/> (synchronous: it waits for the copy).</summary>
    public void Upload(GpuStream stream, int layer, int slot, in ExpertWeights w)
    {
        if (!Layout.Matches(w)) throw new ArgumentException($"expert layout {ExpertLayout.Of(w)} does not match the pool's {Layout}", nameof(w));
        UploadInto(stream, Layout, w, SlotViews(layer, slot));
    }

    /// <summary>Copies <paramref name="w"/> from host memory into a slot's views in <paramref name="layout"/> (synchronous).</summary>
    internal static void UploadInto(GpuStream stream, ExpertLayout layout, in ExpertWeights w,
        (GpuView<Chunk16> Gate, GpuView<Chunk16> Up, GpuView<Chunk16> Down, GpuView<Chunk16> Bias) target)
    {
        GpuMatrix.Upload(stream, w.Gate, target.Gate, 0, layout.GateType);
        GpuMatrix.Upload(stream, w.Up, target.Up, 0, layout.UpType);
        GpuMatrix.Upload(stream, w.Down, target.Down, 0, layout.DownType);
        if (!layout.Biased) return;
        int n = (int)layout.BiasChunks;
        var packed = ArrayPool<Chunk16>.Shared.Rent(n);
        try
        {
            layout.PackBias(w.Bias!.Value, packed.AsSpan(0, n));
            target.Bias.CopyFromCPU(stream, packed.AsSpan(0, n)); // the host array may be reused once this returns
        }
        finally
        {
            ArrayPool<Chunk16>.Shared.Return(packed);
        }
    }

    /// <summary>Throws if slot ↔ expert maps disagree, a layer holds more experts than its slots, or the bytes are off.</summary>
    public void CheckConsistency()
    {
        int total = 0;
        for (int l = 0; l < Layers; l++)
        {
            int n = 0;
            for (int s = 0; s < Capacity(l); s++)
            {
                int e = ExpertAt(l, s);
                if (e < 0) continue;
                n++;
                if (SlotOf(l, e) != s) throw new InvalidOperationException($"layer {l} slot {s} holds {e}, which the pool places in slot {SlotOf(l, e)}");
            }
            if (n != InUse(l) || n > Capacity(l))
                throw new InvalidOperationException($"layer {l}: {n} slots hold an expert, pool says {InUse(l)} of {Capacity(l)} slots");
            total += n;
        }
        if (total != SlotsInUse || total > Slots)
            throw new InvalidOperationException($"{total} experts in slots, pool says {SlotsInUse} of {Slots} slots");
        if (AllocatedBytes != Slots * ExpertBytes)
            throw new InvalidOperationException($"pool holds {AllocatedBytes} bytes for {Slots} slots of {ExpertBytes}");
    }

    /// <summary>Frees the device allocation (also done by disposing the device).</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (_buffer != null) _device.Free(_buffer);
    }
}
