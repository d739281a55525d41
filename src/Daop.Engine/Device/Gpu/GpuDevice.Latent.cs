using Daop.Engine.Model;
using Daop.Kernels.Cpu;
using Daop.Kernels.Gpu;
using ILGPU;
using ILGPU.Runtime;

namespace Daop.Engine.Device.Gpu;

/// <summary>Device-memory latent cache (MLA), fp32: per layer [capacity, width].</summary>
public sealed class GpuLatentCache : KvCache, IDisposable
{
    readonly int _capacity;
    readonly GpuDevice _device;
    readonly GpuArray<float>[] _latent;
    bool _disposed;

    internal GpuLatentCache(GpuDevice device, int layers, int capacity, int width)
    {
        _device = device;
        _capacity = capacity;
        _latent = new GpuArray<float>[layers];
        for (int l = 0; l < layers; l++) _latent[l] = device.AllocateFloats((long)capacity * width);
    }

    /// <inheritdoc />
    public override int Capacity => _capacity;

    /// <summary>Layer <paramref name="layer"/>'s latents, [capacity, width].</summary>
    public GpuView<float> Latent(int layer) => _latent[layer].View;

    /// <summary>Frees the cache's device memory.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var b in _latent) _device.Free(b);
    }
}

// Multi-head latent attention's ops (DeepSeek MLA), kept apart from the other families' ops.
public sealed partial class GpuDevice
{
    /// <inheritdoc />
    public KvCache CreateLatentCache(int layers, int capacity, int width) => new GpuLatentCache(this, layers, capacity, width);

    /// <inheritdoc />
    public void HeadMatMul(float[] w, DeviceBuffer x, int xStride, int xOffset, DeviceBuffer y, int yStride, int yOffset, int tokens, int heads, int rows, int cols)
    {
        if (xOffset + cols > xStride || yOffset + rows > yStride || w.Length < (long)heads * rows * cols)
            throw new ArgumentException($"{heads} heads of [{rows}, {cols}] do not fit w ({w.Length}) or strides ({xStride}, {yStride})");
        Kernels.HeadMatMul(Stream, Vector(w), V(x), V(y), new HeadMatMulArgs
        {
            Tokens = tokens, Heads = heads, Rows = rows, Cols = cols, XStride = xStride, XOffset = xOffset, YStride = yStride, YOffset = yOffset,
        });
    }

    /// <inheritdoc />
    public void LatentAppend(KvCache cache, int layer, RopeTable rope, DeviceBuffer q, DeviceBuffer qc, DeviceBuffer c, DeviceBuffer kpe,
        in LatentShape a, int tokens, int startPos, int row = 0)
    {
        if (startPos + tokens > Math.Min(cache.Capacity, rope.Capacity))
            throw new ArgumentOutOfRangeException(nameof(tokens), $"positions up to {startPos + tokens} exceed the cache ({cache.Capacity}) or RoPE table ({rope.Capacity})");
        Kernels.LatentAppend(Stream, Rows(q, row, a.Heads * a.QStride), Rows(qc, row, a.Heads * a.Width), Rows(c, row, a.Rank),
            Rows(kpe, row, a.RopeDim), ((GpuLatentCache)cache).Latent(layer), Vector(rope.Cos), Vector(rope.Sin), Args(a, tokens, startPos));
    }

    /// <inheritdoc />
    public void LatentAttention(KvCache cache, int layer, DeviceBuffer qc, DeviceBuffer o, in LatentShape a, int tokens, int startPos, int row = 0)
    {
        if (startPos + tokens > cache.Capacity)
            throw new ArgumentOutOfRangeException(nameof(tokens), $"positions up to {startPos + tokens} exceed the cache ({cache.Capacity})");
        Kernels.LatentAttend(Stream, Rows(qc, row, a.Heads * a.Width), ((GpuLatentCache)cache).Latent(layer), Rows(o, row, a.Heads * a.Rank),
            Args(a, tokens, startPos));
    }

    static LatentArgs Args(in LatentShape a, int tokens, int startPos) => new()
    {
        Tokens = tokens, StartPos = startPos, Heads = a.Heads, Rank = a.Rank, RopeDim = a.RopeDim, QStride = a.QStride,
        QRopeOffset = a.QRopeOffset, Interleaved = a.Interleaved ? 1 : 0, Scale = a.Scale,
    };
}
