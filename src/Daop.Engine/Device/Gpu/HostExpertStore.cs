using System.Collections.Concurrent;
using System.Diagnostics;
using Daop.Engine.Model;
using Daop.Kernels;
using Daop.Kernels.Gpu;
using ILGPU;
using ILGPU.Runtime;

namespace Daop.Engine.Device.Gpu;

/// <summary>Where a transfer reads an expert from.</summary>
public enum HostCopyMode
{
    /// <summary><see cref="Staged"/> on CUDA, <see cref="Direct"/> elsewhere.</summary>
    Auto,
    /// <summary>
    /// Straight from the memory-mapped checkpoint (pageable memory): on CUDA the driver stages it, the copy runs at
    /// pageable speed and the host waits for it.
    /// </summary>
    Direct,
    /// <summary>
    /// From a host image of the expert in the slot layout
    /// (<see cref="GpuMatrix.Pack(in WeightMatrix, int, int, Span{Chunk16}, DType)"/>: rows padded, block formats
    /// repacked), page-locked on CUDA (made on first transfer, or ahead with <see cref="HostExpertStore.Pin"/>), so a copy
    /// is three asynchronous DMA transfers (four with biases) at full PCIe speed.
    /// </summary>
    Staged,
}

/// <summary>When the page-locked images of <see cref="HostCopyMode.Staged"/> transfers are made.</summary>
public enum HostImageTiming
{
    /// <summary><see cref="Background"/> on CUDA, <see cref="OnFirstCopy"/> elsewhere.</summary>
    Auto,
    /// <summary>Each on the expert's first transfer, by the thread that queues it (the copy waits for it).</summary>
    OnFirstCopy,
    /// <summary>
    /// Every expert not uploaded at start, layer by layer on background threads from the start (a transfer whose image is
    /// not ready yet makes it, or waits for the thread already making it): a prompt right after loading streams its
    /// experts at PCIe speed instead of packing them inside the prompt.
    /// </summary>
    Background,
    /// <summary>Every expert's, before the constructor returns.</summary>
    AtStart,
}

/// <summary>
/// Each routed expert's home in host memory: the memory-mapped checkpoint, plus (in <see cref="HostCopyMode.Staged"/>
/// mode) a page-locked image in the GPU slot layout for experts that get transferred. Images are made on demand (or in
/// the background, <see cref="PinInBackground"/>) up to <see cref="PinnedBudgetBytes"/>; past it, transfers fall back to
/// direct copies. Both carry the weights in their stored dtype: a quantized expert's image and transfer are its quantized
/// bytes (<see cref="ExpertLayout.ExpertBytes"/>). <see cref="Pin"/> may be called from several threads at once.
/// </summary>
public sealed class HostExpertStore : IDisposable
{
    // One image: page-locked on CUDA; a pinned GC array stands in for it on the CPU accelerator.
    sealed class Image(PinnedHostMemory? locked, Chunk16[]? managed)
    {
        public readonly PinnedHostMemory? Locked = locked;
        public readonly Chunk16[]? Managed = managed;
    }

    readonly IReadOnlyList<ExpertWeights[]> _w;
    readonly GpuContext _gpu;
    readonly Image?[][] _images;
    // Images by what they hold: on CUDA, experts that share host weights (synthetic benchmark models reuse a few random
    // matrices) share one image; on the CPU accelerator each expert has its own. _making: images being made now.
    readonly Dictionary<(nint, nint, nint), Image> _byKey = new();
    readonly Dictionary<(nint, nint, nint), ManualResetEventSlim> _making = new();
    readonly object _sync = new();
    readonly CancellationTokenSource _stop = new();
    Task? _background;
    long _pinned, _imageTicks;
    int _imagesMade;
    bool _disposed;

    /// <summary>The routed experts of <paramref name="weights"/> (all of <paramref name="layout"/>) for transfers to <paramref name="gpu"/>.</summary>
    public HostExpertStore(ModelWeights weights, ExpertLayout layout, GpuContext gpu, HostCopyMode mode = HostCopyMode.Auto,
        long pinnedBudgetBytes = long.MaxValue)
        : this(weights.Layers.Select(l => l.Experts).ToArray(), layout, gpu, mode, pinnedBudgetBytes) { }

    /// <summary>Experts given per layer ([layer][expert]; empty for dense layers), all of <paramref name="layout"/>.</summary>
    public HostExpertStore(IReadOnlyList<ExpertWeights[]> experts, ExpertLayout layout, GpuContext gpu,
        HostCopyMode mode = HostCopyMode.Auto, long pinnedBudgetBytes = long.MaxValue)
    {
        if (pinnedBudgetBytes < 0) throw new ArgumentOutOfRangeException(nameof(pinnedBudgetBytes), $"pinned budget must be >= 0, got {pinnedBudgetBytes}");
        _w = experts;
        _gpu = gpu;
        Layout = layout;
        IsCuda = !gpu.IsCpu;
        Mode = mode == HostCopyMode.Auto ? (IsCuda ? HostCopyMode.Staged : HostCopyMode.Direct) : mode;
        PinnedBudgetBytes = pinnedBudgetBytes;
        _images = experts.Select(l => new Image?[l.Length]).ToArray();
    }

    /// <summary>Shape of every expert.</summary>
    public ExpertLayout Layout { get; }
    /// <summary><see cref="HostCopyMode.Direct"/> or <see cref="HostCopyMode.Staged"/>.</summary>
    public HostCopyMode Mode { get; }
    /// <summary>True when images are page-locked (CUDA) and copies from them are asynchronous.</summary>
    public bool IsCuda { get; }
    /// <summary>Most bytes of staged images kept.</summary>
    public long PinnedBudgetBytes { get; }
    /// <summary>Bytes of staged images held now (and being made).</summary>
    public long PinnedBytes { get { lock (_sync) return _pinned; } }

    /// <summary>Images made so far (<see cref="Pin"/> calls that allocated and packed one).</summary>
    public int ImagesMade { get { lock (_sync) return _imagesMade; } }

    /// <summary>Seconds spent making them, summed over the threads that made them: page-locked allocation plus packing into the slot layout.</summary>
    public double ImageSeconds { get { lock (_sync) return (double)_imageTicks / Stopwatch.Frequency; } }

    /// <summary>The memory-mapped weights of one expert (what the CPU runs from).</summary>
    public ExpertWeights Weights(int layer, int expert) => _w[layer][expert];

    /// <summary>Whether the expert has a staged image.</summary>
    public bool IsPinned(int layer, int expert) => Volatile.Read(ref _images[layer][expert]) != null;

    /// <summary>
    /// Makes the staged image of one expert now (no-op in direct mode, when present, or past the budget); if another
    /// thread is making the same image, waits for it. Returns whether it exists.
    /// </summary>
    public bool Pin(int layer, int expert)
    {
        if (Mode != HostCopyMode.Staged) return false;
        if (IsPinned(layer, expert)) return true;
        var w = Weights(layer, expert);
        if (!Layout.Matches(w)) throw new InvalidOperationException($"expert {expert} of layer {layer} has layout {ExpertLayout.Of(w)}, the store {Layout}");
        var key = Key(layer, expert, w);
        while (true)
        {
            ManualResetEventSlim? other;
            lock (_sync)
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                if (_byKey.TryGetValue(key, out var made))
                {
                    Volatile.Write(ref _images[layer][expert], made);
                    return true;
                }
                if (!_making.TryGetValue(key, out other))
                {
                    if (_pinned + Layout.ExpertBytes > PinnedBudgetBytes) return false;
                    _pinned += Layout.ExpertBytes;
                    _making[key] = new ManualResetEventSlim();
                }
            }
            if (other == null) break;
            other.Wait(); // made (found above on the next pass), or failed (then this thread tries)
        }
        Image? image = null;
        long t0 = Stopwatch.GetTimestamp();
        try
        {
            image = Make(w);
        }
        finally
        {
            ManualResetEventSlim done;
            lock (_sync)
            {
                done = _making[key];
                _making.Remove(key);
                if (image == null) _pinned -= Layout.ExpertBytes;
                else
                {
                    _byKey[key] = image;
                    Volatile.Write(ref _images[layer][expert], image);
                    _imagesMade++;
                    _imageTicks += Stopwatch.GetTimestamp() - t0;
                }
            }
            done.Set();
        }
        return true;
    }

    (nint, nint, nint) Key(int layer, int expert, ExpertWeights w)
    {
        // Biased experts are keyed by themselves: two experts sharing matrices may still differ in their biases.
        unsafe { return IsCuda && !Layout.Biased ? ((nint)w.Gate.Data, (nint)w.Up.Data, (nint)w.Down.Data) : (layer, expert, -1); }
    }

    // Allocates an image (page-locked on CUDA) and packs the expert into it in the slot layout.
    Image Make(ExpertWeights w)
    {
        Image image;
        Span<Chunk16> dst;
        if (IsCuda)
        {
            var locked = _gpu.AllocatePinned(Layout.Chunks * 16);
            image = new Image(locked, null);
            dst = locked.AsSpan<Chunk16>();
        }
        else
        {
            var managed = GC.AllocateUninitializedArray<Chunk16>(checked((int)Layout.Chunks), pinned: true);
            image = new Image(null, managed);
            dst = managed;
        }
        try
        {
            GpuMatrix.Pack(w.Gate, 0, w.Gate.Rows, dst[..(int)Layout.GateChunks], Layout.GateType);
            GpuMatrix.Pack(w.Up, 0, w.Up.Rows, dst.Slice((int)Layout.GateChunks, (int)Layout.UpChunks), Layout.UpType);
            GpuMatrix.Pack(w.Down, 0, w.Down.Rows, dst.Slice((int)(Layout.GateChunks + Layout.UpChunks), (int)Layout.DownChunks), Layout.DownType);
            if (Layout.Biased) Layout.PackBias(w.Bias!.Value, dst[(int)(Layout.GateChunks + Layout.UpChunks + Layout.DownChunks)..]);
        }
        catch
        {
            image.Locked?.Dispose();
            throw;
        }
        return image;
    }

    /// <summary>
    /// Starts making the images of <paramref name="experts"/> ((layer, expert) pairs, made roughly in the order given) on
    /// up to <paramref name="threads"/> background threads, until each is made or the budget is spent; transfers meanwhile
    /// make or wait for what they need (<see cref="Pin"/>). No-op in direct mode. <see cref="Dispose"/> stops it.
    /// </summary>
    public void PinInBackground(IEnumerable<(int Layer, int Expert)> experts, int threads)
    {
        ArgumentNullException.ThrowIfNull(experts);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(threads);
        if (Mode != HostCopyMode.Staged) return;
        if (_background != null) throw new InvalidOperationException("images are already being made in the background");
        var order = experts.ToArray();
        var token = _stop.Token;
        var options = new ParallelOptions { MaxDegreeOfParallelism = threads, CancellationToken = token };
        // NoBuffering hands the pairs out one at a time in order, so the first layers' images come first.
        _background = Task.Run(() => Parallel.ForEach(Partitioner.Create(order, EnumerablePartitionerOptions.NoBuffering), options,
            (e, loop) => { if (!Pin(e.Layer, e.Expert)) loop.Stop(); }), token);
    }

    /// <summary>Waits until the background images (<see cref="PinInBackground"/>) are made; rethrows what stopped them.</summary>
    public void WaitForBackground() => _background?.GetAwaiter().GetResult();

    /// <summary>
    /// Queues the copy of one expert into <paramref name="target"/> (a slot's gate, up, down and bias chunks) on
    /// <paramref name="stream"/>. Returns true if the copy is asynchronous (page-locked image on CUDA: the caller must
    /// order later readers after it); false if it completed before returning.
    /// </summary>
    public bool CopyTo(GpuStream stream, int layer, int expert,
        (GpuView<Chunk16> Gate, GpuView<Chunk16> Up, GpuView<Chunk16> Down, GpuView<Chunk16> Bias) target)
    {
        if (Mode == HostCopyMode.Staged && Pin(layer, expert))
        {
            long g = Layout.GateChunks, u = Layout.UpChunks, d = Layout.DownChunks, b = Layout.BiasChunks;
            var image = _images[layer][expert]!;
            if (image.Locked is { } locked)
            {
                var a = locked.AsSpan<Chunk16>();
                target.Gate.CopyFromCPUUnsafeAsync(stream, ref a[0], g);
                target.Up.CopyFromCPUUnsafeAsync(stream, ref a[(int)g], u);
                target.Down.CopyFromCPUUnsafeAsync(stream, ref a[(int)(g + u)], d);
                if (b > 0) target.Bias.CopyFromCPUUnsafeAsync(stream, ref a[(int)(g + u + d)], b);
                return true;
            }
            var m = image.Managed!;
            target.Gate.CopyFromCPU(stream, ref m[0], g);
            target.Up.CopyFromCPU(stream, ref m[g], u);
            target.Down.CopyFromCPU(stream, ref m[g + u], d);
            if (b > 0) target.Bias.CopyFromCPU(stream, ref m[g + u + d], b);
            return false;
        }
        ExpertSlotPool.UploadInto(stream, Layout, Weights(layer, expert), target);
        return false;
    }

    /// <summary>Stops background image making and releases the staged images (freeing page-locked memory; the GPU must still be alive).</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _stop.Cancel();
        try { _background?.Wait(); }
        catch (AggregateException) { } // cancelled, or failed: nothing of it is used any more
        lock (_sync) _disposed = true;
        foreach (var image in _byKey.Values) image.Locked?.Dispose();
        _byKey.Clear();
        foreach (var layer in _images) Array.Clear(layer);
        _pinned = 0;
        _stop.Dispose();
    }
}
