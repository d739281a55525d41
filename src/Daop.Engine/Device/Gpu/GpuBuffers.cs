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
/// Per-sequence fp32 KV cache in device memory: per layer [capacity, NKV·D] for K and for V. Dispose it (or the
/// device) to free the memory.
/// </summary>
public sealed class GpuKvCache : KvCache, IDisposable
{
    readonly int _capacity;
    readonly GpuDevice _device;
    readonly GpuArray<float>[] _k, _v;
    bool _disposed;

    internal GpuKvCache(GpuDevice device, int layers, int capacity, int kvDim)
    {
        _device = device;
        _capacity = capacity;
        KvDim = kvDim;
        _k = new GpuArray<float>[layers];
        _v = new GpuArray<float>[layers];
        for (int l = 0; l < layers; l++)
        {
            _k[l] = device.AllocateFloats((long)capacity * kvDim);
            _v[l] = device.AllocateFloats((long)capacity * kvDim);
        }
    }

    /// <inheritdoc />
    public override int Capacity => _capacity;

    /// <summary>NKV·D floats per position.</summary>
    public int KvDim { get; }

    /// <summary>Keys of layer <paramref name="layer"/>, [capacity, NKV·D].</summary>
    public GpuView<float> K(int layer) => _k[layer].View;

    /// <summary>Values of layer <paramref name="layer"/>.</summary>
    public GpuView<float> V(int layer) => _v[layer].View;

    /// <summary>Frees the cache's device memory.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var b in _k) _device.Free(b);
        foreach (var b in _v) _device.Free(b);
    }
}
