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
    /// is three asynchronous DMA transfers at full PCIe speed.
    /// </summary>
    Staged,
}

/// <summary>
/// Each routed expert's home in host memory: the memory-mapped checkpoint, plus (in <see cref="HostCopyMode.Staged"/>
/// mode) a page-locked image in the GPU slot layout for experts that get transferred. Images are made on demand up
/// to <see cref="PinnedBudgetBytes"/>; past it, transfers fall back to direct copies. Both carry the weights in their
/// stored dtype: a quantized expert's image and transfer are its quantized bytes (<see cref="ExpertLayout.ExpertBytes"/>).
/// </summary>
public sealed class HostExpertStore : IDisposable
{
    readonly IReadOnlyList<ExpertWeights[]> _w;
    readonly Accelerator _acc;
    readonly PageLockedArray1D<Chunk16>?[][] _images;
    readonly Chunk16[]?[][] _managed;   // CPU accelerator: pinned GC arrays stand in for page-locked memory
    // Experts that share host weights (synthetic benchmark models reuse a few random matrices) share one image.
    readonly Dictionary<(nint, nint, nint), PageLockedArray1D<Chunk16>> _imageByWeights = new();
    long _pinned;
    bool _disposed;

    /// <summary>The routed experts of <paramref name="weights"/> (all of <paramref name="layout"/>) for transfers on <paramref name="accelerator"/>.</summary>
    public HostExpertStore(ModelWeights weights, ExpertLayout layout, Accelerator accelerator, HostCopyMode mode = HostCopyMode.Auto,
        long pinnedBudgetBytes = long.MaxValue)
        : this(weights.Layers.Select(l => l.Experts).ToArray(), layout, accelerator, mode, pinnedBudgetBytes) { }

    /// <summary>Experts given per layer ([layer][expert]; empty for dense layers), all of <paramref name="layout"/>.</summary>
    public HostExpertStore(IReadOnlyList<ExpertWeights[]> experts, ExpertLayout layout, Accelerator accelerator,
        HostCopyMode mode = HostCopyMode.Auto, long pinnedBudgetBytes = long.MaxValue)
    {
        var weights = experts;
        if (pinnedBudgetBytes < 0) throw new ArgumentOutOfRangeException(nameof(pinnedBudgetBytes), $"pinned budget must be >= 0, got {pinnedBudgetBytes}");
        _w = weights;
        _acc = accelerator;
        Layout = layout;
        IsCuda = accelerator.AcceleratorType == AcceleratorType.Cuda;
        Mode = mode == HostCopyMode.Auto ? (IsCuda ? HostCopyMode.Staged : HostCopyMode.Direct) : mode;
        PinnedBudgetBytes = pinnedBudgetBytes;
        _images = weights.Select(l => new PageLockedArray1D<Chunk16>?[l.Length]).ToArray();
        _managed = weights.Select(l => new Chunk16[]?[l.Length]).ToArray();
    }

    /// <summary>Shape of every expert.</summary>
    public ExpertLayout Layout { get; }
    /// <summary><see cref="HostCopyMode.Direct"/> or <see cref="HostCopyMode.Staged"/>.</summary>
    public HostCopyMode Mode { get; }
    /// <summary>True when images are page-locked (CUDA) and copies from them are asynchronous.</summary>
    public bool IsCuda { get; }
    /// <summary>Most bytes of staged images kept.</summary>
    public long PinnedBudgetBytes { get; }
    /// <summary>Bytes of staged images held now.</summary>
    public long PinnedBytes => _pinned;

    /// <summary>Images made so far (<see cref="Pin"/> calls that allocated and packed one).</summary>
    public int ImagesMade { get; private set; }

    /// <summary>Seconds spent making them: page-locked allocation plus packing into the slot layout.</summary>
    public double ImageSeconds { get; private set; }

    /// <summary>The memory-mapped weights of one expert (what the CPU runs from).</summary>
    public ExpertWeights Weights(int layer, int expert) => _w[layer][expert];

    /// <summary>Whether the expert has a staged image.</summary>
    public bool IsPinned(int layer, int expert) => _images[layer][expert] != null || _managed[layer][expert] != null;

    /// <summary>Makes the staged image of one expert now (no-op in direct mode, when present, or past the budget). Returns whether it exists.</summary>
    public unsafe bool Pin(int layer, int expert)
    {
        if (Mode != HostCopyMode.Staged) return false;
        if (IsPinned(layer, expert)) return true;
        long bytes = Layout.ExpertBytes;
        if (_pinned + bytes > PinnedBudgetBytes) return false;
        var w = Weights(layer, expert);
        if (!Layout.Matches(w)) throw new InvalidOperationException($"expert {expert} of layer {layer} has layout {ExpertLayout.Of(w)}, the store {Layout}");
        long t0 = Stopwatch.GetTimestamp();
        Span<Chunk16> dst;
        if (IsCuda && _imageByWeights.TryGetValue(((nint)w.Gate.Data, (nint)w.Up.Data, (nint)w.Down.Data), out var shared))
        {
            _images[layer][expert] = shared;
            return true;
        }
        if (IsCuda)
        {
            _acc.Bind(); // cuMemHostRegister needs the context current
            var img = _acc.AllocatePageLocked1D<Chunk16>(Layout.Chunks, uninitialized: true);
            _images[layer][expert] = img;
            _imageByWeights[((nint)w.Gate.Data, (nint)w.Up.Data, (nint)w.Down.Data)] = img;
            dst = img.Span;
        }
        else
        {
            var arr = GC.AllocateUninitializedArray<Chunk16>(checked((int)Layout.Chunks), pinned: true);
            _managed[layer][expert] = arr;
            dst = arr;
        }
        _pinned += bytes;
        GpuMatrix.Pack(w.Gate, 0, w.Gate.Rows, dst[..(int)Layout.GateChunks], Layout.GateType);
        GpuMatrix.Pack(w.Up, 0, w.Up.Rows, dst.Slice((int)Layout.GateChunks, (int)Layout.UpChunks), Layout.UpType);
        GpuMatrix.Pack(w.Down, 0, w.Down.Rows, dst.Slice((int)(Layout.GateChunks + Layout.UpChunks), (int)Layout.DownChunks), Layout.DownType);
        ImagesMade++;
        ImageSeconds += Stopwatch.GetElapsedTime(t0).TotalSeconds;
        return true;
    }

    /// <summary>
    /// Queues the copy of one expert into <paramref name="target"/> (a slot's gate, up and down chunks) on
    /// <paramref name="stream"/>. Returns true if the copy is asynchronous (page-locked image on CUDA: the caller must
    /// order later readers after it); false if it completed before returning.
    /// </summary>
    public bool CopyTo(AcceleratorStream stream, int layer, int expert,
        (ArrayView<Chunk16> Gate, ArrayView<Chunk16> Up, ArrayView<Chunk16> Down) target)
    {
        if (Mode == HostCopyMode.Staged && Pin(layer, expert))
        {
            long g = Layout.GateChunks, u = Layout.UpChunks, d = Layout.DownChunks;
            if (_images[layer][expert] is { } img)
            {
                var a = img.GetArray();
                target.Gate.CopyFromCPUUnsafeAsync(stream, ref a[0], g);
                target.Up.CopyFromCPUUnsafeAsync(stream, ref a[g], u);
                target.Down.CopyFromCPUUnsafeAsync(stream, ref a[g + u], d);
                return true;
            }
            var m = _managed[layer][expert]!;
            target.Gate.CopyFromCPU(stream, ref m[0], g);
            target.Up.CopyFromCPU(stream, ref m[g], u);
            target.Down.CopyFromCPU(stream, ref m[g + u], d);
            return false;
        }
        var w = Weights(layer, expert);
        GpuMatrix.Upload(stream, w.Gate, target.Gate, 0, Layout.GateType);
        GpuMatrix.Upload(stream, w.Up, target.Up, 0, Layout.UpType);
        GpuMatrix.Upload(stream, w.Down, target.Down, 0, Layout.DownType);
        return false;
    }

    /// <summary>Releases the staged images (unregistering page-locked memory; the accelerator must still be alive).</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (IsCuda && _pinned > 0) _acc.Bind(); // unregistering page-locked memory needs the context current
        foreach (var img in _images.SelectMany(l => l).OfType<PageLockedArray1D<Chunk16>>().Distinct()) img.Dispose();
        foreach (var layer in _images) Array.Clear(layer);
        _imageByWeights.Clear();
        foreach (var layer in _managed) Array.Clear(layer);
        _pinned = 0;
    }
}
