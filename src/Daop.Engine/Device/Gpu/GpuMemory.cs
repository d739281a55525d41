using Daop.Engine.Model;
using Daop.Kernels;
using Daop.Kernels.Gpu;

namespace Daop.Engine.Device.Gpu;

/// <summary>The device memory a model takes on a <see cref="GpuDevice"/> besides expert slots, by the device's allocation rules.</summary>
public static class GpuMemory
{
    /// <summary>
    /// Device bytes of everything but the expert slots when <paramref name="model"/> runs on a <see cref="GpuDevice"/>
    /// with offloaded experts (<see cref="GpuExpertOffload"/>): non-expert weights (padded rows), fp32 vectors and RoPE tables,
    /// <paramref name="sequences"/> KV caches, the forward pass's activations for chunks of up to
    /// <paramref name="maxChunkTokens"/> tokens, and the scheduler's scratch. Mirrors the device's allocation rules, so
    /// after a forward call over a full chunk it equals <see cref="GpuDevice.AllocatedBytes"/> minus the pool.
    /// </summary>
    public static long DenseBytes(MoeModel model, int maxChunkTokens, int sequences = 1)
    {
        if (maxChunkTokens <= 0) throw new ArgumentOutOfRangeException(nameof(maxChunkTokens), $"chunk must be positive, got {maxChunkTokens}");
        if (sequences < 0) throw new ArgumentOutOfRangeException(nameof(sequences), $"sequences must be >= 0, got {sequences}");
        var c = model.Config;
        var w = model.Weights;
        int t = Math.Min(maxChunkTokens, model.ContextLength), h = c.HiddenSize, q = c.QueryWidth, kv = c.KvWidth;
        long total = 0;
        var matrices = new HashSet<(nint, DType, int, int)>();
        var vectors = new HashSet<float[]>(ReferenceEqualityComparer.Instance);
        int ffnScratch = 0;
        unsafe void M(in WeightMatrix m, bool perToken)
        {
            if (matrices.Add(((nint)m.Data, m.Type, m.Rows, m.Cols))) total += Math.Max(1, GpuMatrix.ChunksFor(m)) * 16;
        }
        w.VisitDense(M, v => { if (vectors.Add(v)) total += Floats(v.Length); });
        foreach (var l in w.Layers)
        {
            if (l.Shared is { } s) ffnScratch = Math.Max(ffnScratch, s.Gate.Rows);
            if (l.Dense is { } d) ffnScratch = Math.Max(ffnScratch, d.Gate.Rows);
        }
        int rotDim = (int)(c.Attention.RopeDim * c.Rope.PartialRotaryFactor);
        rotDim -= rotDim % 2;
        total += 2 * Floats((long)model.ContextLength * (rotDim / 2));                 // RoPE cos, sin
        total += (long)sequences * c.NumLayers * (c.Attention is Daop.Engine.Load.Config.AttentionSpec.Mla  // KV caches: MLA's one latent stream, else K and V
            ? Floats((long)model.ContextLength * c.KvCacheWidth) : 2 * Floats((long)model.ContextLength * kv));
        total += 4 * Floats((long)t * h) + 2 * Floats((long)t * q) + 2 * Floats((long)t * kv) // X, Xn, Out, Shared; Q, Ctx; K, V
            + Floats((long)t * Math.Max(c.NumExperts, 1)) + Floats((long)RunState.LogitRows * c.VocabSize);
        total += 4L * Math.Max(64, t);                                                   // token ids
        total += 4L * Math.Max(64, t) * StepTokens.Fields;                                 // the step's token table (BeginStep)
        if (ffnScratch > 0) total += Floats(Math.Max((long)t * ffnScratch, 1024));      // dense / shared FFN scratch
        total += GpuExpertOffload.ScratchBytes(t, c.TopK, h, c.ExpertIntermediate);
        return total;
    }

    /// <summary>Bytes of <see cref="GpuDevice"/>'s AllocateFloats(n): at least 4 floats, rounded up to whole 16-byte groups.</summary>
    internal static long Floats(long n) => Math.Max(4, (n + 3) / 4 * 4) * 4;
}
