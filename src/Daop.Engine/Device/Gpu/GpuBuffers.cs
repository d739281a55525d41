using Daop.Kernels.Gpu;
using ILGPU;
using ILGPU.Runtime;

namespace Daop.Engine.Device.Gpu;

/// <summary>fp32 activations in device memory (capacity rounded up to whole 16-byte groups, zero-filled).</summary>
public sealed class GpuBuffer : DeviceBuffer
{
    readonly int _length;

    internal GpuBuffer(GpuArray<float> buffer, int length)
    {
        Buffer = buffer;
        _length = length;
    }

    internal GpuArray<float> Buffer { get; }

    /// <summary>The whole device allocation (starts 16-byte aligned; may be longer than <see cref="Length"/>).</summary>
    public GpuView<float> View => Buffer.View;

    /// <inheritdoc />
    public override int Length => _length;
}

/// <summary>
/// The fp32 KV caches of several sequences in one device allocation per layer, so that one attention launch reaches
/// every sequence's keys: per layer [slots·capacity, NKV·D] for K and for V, slot s at rows s·capacity... Its slots are
/// the <see cref="GpuKvCache"/>s it hands out; the memory is freed when the last of them is disposed (or with the device).
/// </summary>
public sealed class GpuKvPool
{
    readonly GpuDevice _device;
    readonly GpuArray<float>[] _k, _v;
    int _live;

    internal GpuKvPool(GpuDevice device, int layers, int capacity, int kvDim, int slots)
    {
        if (layers < 1 || capacity < 1 || kvDim < 1 || slots < 1)
            throw new ArgumentOutOfRangeException(nameof(slots), $"a KV pool needs positive sizes: {layers} layers, {slots} slots of {capacity} positions of {kvDim} floats");
        _device = device;
        Capacity = capacity;
        KvDim = kvDim;
        _k = new GpuArray<float>[layers];
        _v = new GpuArray<float>[layers];
        for (int l = 0; l < layers; l++)
        {
            _k[l] = device.AllocateFloats((long)slots * capacity * kvDim);
            _v[l] = device.AllocateFloats((long)slots * capacity * kvDim);
        }
        Slots = new GpuKvCache[slots];
        for (int s = 0; s < slots; s++) Slots[s] = new GpuKvCache(this, s);
        _live = slots;
    }

    /// <summary>Positions per slot.</summary>
    public int Capacity { get; }

    /// <summary>NKV·D floats per position.</summary>
    public int KvDim { get; }

    /// <summary>The pool's caches, one per slot.</summary>
    public GpuKvCache[] Slots { get; }

    /// <summary>Keys of layer <paramref name="layer"/>, [slots·capacity, NKV·D].</summary>
    public GpuView<float> K(int layer) => _k[layer].View;

    /// <summary>Values of layer <paramref name="layer"/>, [slots·capacity, NKV·D].</summary>
    public GpuView<float> V(int layer) => _v[layer].View;

    internal void Release()
    {
        if (--_live > 0) return;
        foreach (var b in _k) _device.Free(b);
        foreach (var b in _v) _device.Free(b);
    }
}

/// <summary>
/// One sequence's fp32 KV cache in device memory: a slot of a <see cref="GpuKvPool"/> (a pool of its own for a lone
/// sequence). Dispose it (or the device) to give the slot back; the pool's memory goes with its last slot.
/// </summary>
public sealed class GpuKvCache : KvCache, IDisposable
{
    bool _disposed;

    internal GpuKvCache(GpuKvPool pool, int slot)
    {
        Pool = pool;
        Slot = slot;
    }

    /// <inheritdoc />
    public override int Capacity => Pool.Capacity;

    /// <summary>The pool whose memory holds this cache.</summary>
    public GpuKvPool Pool { get; }

    /// <summary>The cache's slot in <see cref="Pool"/>: its positions are rows Slot·Capacity.. of the pool's layers.</summary>
    public int Slot { get; }

    /// <summary>Gives the slot back (a second call is a no-op).</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        Pool.Release();
    }
}
