using System.Numerics.Tensors;
using Daop.Engine.Load.Config;
using Daop.Engine.Model;
using Daop.Kernels;
using Daop.Kernels.Cpu;

namespace Daop.Engine.Device.Cpu;

/// <summary>Host-memory buffer.</summary>
public sealed class CpuBuffer(int length) : DeviceBuffer
{
    /// <summary>The floats.</summary>
    public readonly float[] Data = new float[length];
    /// <inheritdoc />
    public override int Length => Data.Length;
    /// <summary>The first <paramref name="n"/> floats.</summary>
    public Span<float> Span(int n) => Data.AsSpan(0, n);
}

/// <summary>Host-memory KV cache, fp32; keys transposed ([NKV·D, capacity]) for the attention kernel, values [capacity, NKV·D].</summary>
public sealed class CpuKvCache : KvCache
{
    /// <summary>Per layer: K [NKV·D, capacity] (transposed), V [capacity, NKV·D].</summary>
    public readonly float[][] K, V;
    readonly int _capacity;

    /// <summary>Floats between consecutive rows of the transposed K: the capacity padded so rows are not a power-of-two
    /// apart (rows 16 KB apart would all map to the same L1 sets).</summary>
    public readonly int KStride;

    /// <summary>Allocates the cache.</summary>
    public CpuKvCache(int layers, int capacity, int kvDim)
    {
        _capacity = capacity;
        KStride = (capacity + 15) / 16 * 16 + 16;
        K = new float[layers][];
        V = new float[layers][];
        for (int l = 0; l < layers; l++) { K[l] = new float[(long)KStride * kvDim]; V[l] = new float[(long)capacity * kvDim]; }
    }

    /// <inheritdoc />
    public override int Capacity => _capacity;
}

/// <summary>Host-memory latent cache (MLA), fp32: per layer [capacity, width].</summary>
public sealed class CpuLatentCache : KvCache
{
    /// <summary>Per layer [capacity, width].</summary>
    public readonly float[][] Latent;
    readonly int _capacity;

    /// <summary>Allocates the cache.</summary>
    public CpuLatentCache(int layers, int capacity, int width)
    {
        _capacity = capacity;
        Latent = new float[layers][];
        for (int l = 0; l < layers; l++) Latent[l] = new float[(long)capacity * width];
    }

    /// <inheritdoc />
    public override int Capacity => _capacity;
}

/// <summary>The CPU device: every op runs the Daop.Kernels CPU kernels on host memory.</summary>
public sealed class CpuDevice : IDevice
{
    /// <inheritdoc />
    public string Name => "cpu";

    static float[] D(DeviceBuffer b) => ((CpuBuffer)b).Data;

    // The step's segments (BeginStep), kept in an array that grows, then stays.
    BatchSegment[] _step = [];
    int _stepSegments, _stepTokens;

    /// <inheritdoc />
    public DeviceBuffer Allocate(int floats) => new CpuBuffer(floats);

    /// <inheritdoc />
    public KvCache CreateKvCache(int layers, int capacity, int kvDim) => new CpuKvCache(layers, capacity, kvDim);

    /// <inheritdoc />
    public void Embed(ReadOnlySpan<int> tokens, in WeightMatrix table, DeviceBuffer x)
    {
        var dst = D(x);
        for (int t = 0; t < tokens.Length; t++)
        {
            int id = tokens[t];
            if ((uint)id >= (uint)table.Rows)
                throw new ArgumentOutOfRangeException(nameof(tokens), $"token id {id} is outside the vocabulary [0, {table.Rows})");
            MatMul.WidenRow(table, id, dst.AsSpan(t * table.Cols, table.Cols));
        }
    }

    /// <inheritdoc />
    public void Norm(NormWeights n, DeviceBuffer x, DeviceBuffer y, int rows)
    {
        int len = rows * n.Weight.Length;
        if (n.Kind == NormKind.RmsNorm) RmsNorm.Forward(D(x).AsSpan(0, len), n.Weight, n.Eps, D(y).AsSpan(0, len));
        else LayerNorm.Forward(D(x).AsSpan(0, len), n.Weight, n.Bias, n.Eps, D(y).AsSpan(0, len));
    }

    /// <inheritdoc />
    public void Linear(LinearWeights w, DeviceBuffer x, DeviceBuffer y, int tokens)
    {
        var dst = D(y).AsSpan(0, tokens * w.W.Rows);
        MatMul.Forward(w.W, D(x).AsSpan(0, tokens * w.W.Cols), dst, tokens);
        if (w.Bias is { } b)
            for (int t = 0; t < tokens; t++) TensorPrimitives.Add(dst.Slice(t * b.Length, b.Length), b, dst.Slice(t * b.Length, b.Length));
    }

    /// <inheritdoc />
    public void Clamp(DeviceBuffer x, int count, float limit)
    {
        var s = D(x).AsSpan(0, count);
        TensorPrimitives.Clamp(s, -limit, limit, s);
    }

    /// <inheritdoc />
    public void Scale(DeviceBuffer x, int count, float factor)
    {
        var s = D(x).AsSpan(0, count);
        TensorPrimitives.Multiply(s, factor, s);
    }

    /// <inheritdoc />
    public void ScaleRows(DeviceBuffer x, ReadOnlySpan<float> scales, int width, int row = 0)
    {
        var d = D(x);
        for (int t = 0; t < scales.Length; t++)
        {
            var r = d.AsSpan((row + t) * width, width);
            TensorPrimitives.Multiply(r, scales[t], r);
        }
    }

    /// <inheritdoc />
    public void BeginStep(ReadOnlySpan<BatchSegment> segments)
    {
        _stepTokens = BatchSegment.CountTokens(segments);
        if (_step.Length < segments.Length) _step = new BatchSegment[Math.Max(segments.Length, 16)];
        segments.CopyTo(_step);
        _stepSegments = segments.Length;
    }

    // The step's segments, checked against the T tokens of an op.
    ReadOnlySpan<BatchSegment> Step(int tokens) => tokens == _stepTokens ? _step.AsSpan(0, _stepSegments)
        : throw new InvalidOperationException($"{tokens} tokens, but the step (BeginStep) holds {_stepTokens}");

    /// <inheritdoc />
    public void Rope(RopeTable rope, DeviceBuffer q, int qHeads, DeviceBuffer k, int kHeads, int tokens, int headDim)
    {
        int row = 0;
        foreach (var g in Step(tokens))
        {
            if (g.StartPos + g.Tokens > rope.Capacity)
                throw new ArgumentOutOfRangeException(nameof(tokens), $"positions up to {g.StartPos + g.Tokens} exceed the RoPE table ({rope.Capacity})");
            for (int t = 0; t < g.Tokens; t++, row++)
            {
                int p = g.StartPos + t;
                var cos = rope.Cos.AsSpan(p * rope.Half, rope.Half);
                var sin = rope.Sin.AsSpan(p * rope.Half, rope.Half);
                Kernels.Cpu.Rope.Apply(D(q).AsSpan(row * qHeads * headDim, qHeads * headDim), cos, sin, qHeads, headDim);
                Kernels.Cpu.Rope.Apply(D(k).AsSpan(row * kHeads * headDim, kHeads * headDim), cos, sin, kHeads, headDim);
            }
        }
    }

    /// <inheritdoc />
    public void Attention(int layer, DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, DeviceBuffer o,
        int tokens, int heads, int kvHeads, int headDim, int? window, float[]? sinks = null, int chunk = 0)
    {
        int row = 0, kvDim = kvHeads * headDim;
        foreach (var g in Step(tokens))
        {
            var c = (CpuKvCache)g.Cache;
            var (ks, kt, cap) = (D(k), c.K[layer], c.KStride);
            for (int t = 0; t < g.Tokens; t++)
                for (int i = 0; i < kvDim; i++) kt[(long)i * cap + g.StartPos + t] = ks[(row + t) * kvDim + i];
            D(v).AsSpan(row * kvDim, g.Tokens * kvDim).CopyTo(c.V[layer].AsSpan(g.StartPos * kvDim));
            CpuAttention.CausalTransposed(D(q), kt, cap, c.V[layer], D(o), g.Tokens, g.StartPos, heads, kvHeads, headDim, window, row, sinks, chunk);
            row += g.Tokens;
        }
    }

    /// <inheritdoc />
    public KvCache CreateLatentCache(int layers, int capacity, int width) => new CpuLatentCache(layers, capacity, width);

    /// <inheritdoc />
    public void HeadMatMul(float[] w, DeviceBuffer x, int xStride, int xOffset, DeviceBuffer y, int yStride, int yOffset, int tokens, int heads, int rows, int cols) =>
        Kernels.Cpu.LatentAttention.HeadMatMul(w, D(x), xStride, xOffset, D(y), yStride, yOffset, tokens, heads, rows, cols);

    /// <inheritdoc />
    public void LatentAppend(KvCache cache, int layer, RopeTable rope, DeviceBuffer q, DeviceBuffer qc, DeviceBuffer c, DeviceBuffer kpe,
        in LatentShape a, int tokens, int startPos, int row = 0)
    {
        if (startPos + tokens > Math.Min(cache.Capacity, rope.Capacity))
            throw new ArgumentOutOfRangeException(nameof(tokens), $"positions up to {startPos + tokens} exceed the cache ({cache.Capacity}) or RoPE table ({rope.Capacity})");
        Kernels.Cpu.LatentAttention.Append(D(q).AsSpan(row * a.Heads * a.QStride), D(qc).AsSpan(row * a.Heads * a.Width), D(c).AsSpan(row * a.Rank),
            D(kpe).AsSpan(row * a.RopeDim), ((CpuLatentCache)cache).Latent[layer], rope.Cos, rope.Sin, a, tokens, startPos);
    }

    /// <inheritdoc />
    public void LatentAttention(KvCache cache, int layer, DeviceBuffer qc, DeviceBuffer o, in LatentShape a, int tokens, int startPos, int row = 0) =>
        Kernels.Cpu.LatentAttention.Attend(D(qc).AsSpan(row * a.Heads * a.Width), ((CpuLatentCache)cache).Latent[layer],
            D(o).AsSpan(row * a.Heads * a.Rank), a, tokens, startPos);

    /// <inheritdoc />
    public void Add(DeviceBuffer acc, DeviceBuffer x, int count) =>
        TensorPrimitives.Add(D(acc).AsSpan(0, count), D(x).AsSpan(0, count), D(acc).AsSpan(0, count));

    /// <inheritdoc />
    public void Ffn(in ExpertWeights w, DeviceBuffer x, DeviceBuffer y, int tokens)
    {
        var scratch = Scratch(2 * tokens * w.Gate.Rows);
        ExpertFfn.Forward(w.Gate, w.Up, w.Down, D(x).AsSpan(0, tokens * w.Gate.Cols), D(y).AsSpan(0, tokens * w.Down.Rows), tokens, scratch);
    }

    /// <inheritdoc />
    public void AddSigmoidScaled(DeviceBuffer acc, DeviceBuffer x, DeviceBuffer gate, int tokens, int width)
    {
        var a = D(acc); var xs = D(x); var g = D(gate);
        for (int t = 0; t < tokens; t++)
        {
            float s = 1f / (1f + MathF.Exp(-g[t]));
            TensorPrimitives.MultiplyAdd(xs.AsSpan(t * width, width), s, a.AsSpan(t * width, width), a.AsSpan(t * width, width));
        }
    }

    /// <inheritdoc />
    public void Copy(DeviceBuffer src, int srcOffset, DeviceBuffer dst, int dstOffset, int count) =>
        D(src).AsSpan(srcOffset, count).CopyTo(D(dst).AsSpan(dstOffset, count));

    /// <inheritdoc />
    public void CopyToHost(DeviceBuffer x, int offset, Span<float> dst) => D(x).AsSpan(offset, dst.Length).CopyTo(dst);

    float[] _scratch = [];

    /// <summary>A reusable host scratch of at least <paramref name="n"/> floats (grows once, then stays).</summary>
    internal Span<float> Scratch(int n)
    {
        if (_scratch.Length < n) _scratch = new float[n];
        return _scratch.AsSpan(0, n);
    }

    /// <inheritdoc />
    public void Dispose() { }
}
