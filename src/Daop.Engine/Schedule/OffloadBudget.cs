using System.Globalization;
using Daop.Engine.Device.Gpu;
using Daop.Engine.Load.Config;
using Daop.Engine.Model;
using Daop.Engine.Placement;
using Daop.Kernels;
using Daop.Kernels.Gpu;

namespace Daop.Engine.Schedule;

/// <summary>
/// Turns an expert cache ratio or a VRAM budget into GPU expert slots per layer for
/// <see cref="OffloadedExpertScheduler"/>. Device memory = dense part (every non-expert weight, KV caches, activations
/// and scratch: what <see cref="GpuDevice.AllocatedBytes"/> counts besides the pool) + slots ×
/// <see cref="ExpertLayout.ExpertBytes"/>. Only MoE layers get slots.
/// </summary>
public static class OffloadBudget
{
    /// <summary>Slots per layer for an expert cache ratio (fraction of all routed experts on the GPU), spread over the MoE layers.</summary>
    public static int[] SlotsFromRatio(ModelConfig config, double ratio, long[,]? popularity = null)
    {
        if (!(ratio >= 0 && ratio <= 1)) throw new ArgumentOutOfRangeException(nameof(ratio), $"expert cache ratio must be in [0, 1], got {ratio}");
        var moe = MoeLayers(config);
        return Expand(config, moe, SlotBudget.FromRatio(ratio, moe.Length, config.NumExperts, Subset(popularity, moe, config.NumExperts)));
    }

    /// <summary>Slots per layer for <paramref name="slotBytes"/> of device memory set aside for expert slots.</summary>
    public static int[] SlotsFromBytes(ModelConfig config, long slotBytes, long expertBytes, long[,]? popularity = null)
    {
        if (slotBytes < 0) throw new ArgumentOutOfRangeException(nameof(slotBytes), $"expert slot budget must be >= 0 bytes, got {slotBytes}");
        if (expertBytes <= 0) throw new ArgumentOutOfRangeException(nameof(expertBytes), $"expert size must be positive, got {expertBytes}");
        var moe = MoeLayers(config);
        return Expand(config, moe, SlotBudget.FromBytes(slotBytes, expertBytes, moe.Length, config.NumExperts, Subset(popularity, moe, config.NumExperts)));
    }

    /// <summary>
    /// Slots per layer for a whole-device budget of <paramref name="vramBytes"/>: what is left after the dense part
    /// (<see cref="DenseBytes"/> for chunks of <paramref name="maxChunkTokens"/> and <paramref name="sequences"/> KV
    /// caches). Throws if the budget cannot hold even the dense part.
    /// </summary>
    public static int[] SlotsFromVram(MoeModel model, long vramBytes, int maxChunkTokens, int sequences = 1, long[,]? popularity = null)
    {
        long dense = DenseBytes(model, maxChunkTokens, sequences);
        long expert = ExpertLayout.Of(model.Weights).ExpertBytes;
        if (vramBytes < dense)
            throw new ArgumentOutOfRangeException(nameof(vramBytes), string.Create(CultureInfo.InvariantCulture,
                $"VRAM budget of {vramBytes} bytes ({vramBytes / 1048576.0:F1} MiB) cannot hold the dense part of the model: " +
                $"{dense} bytes ({dense / 1048576.0:F1} MiB) for non-expert weights, {sequences} KV cache(s) of {model.ContextLength} positions " +
                $"and activations for chunks of {maxChunkTokens} tokens; expert slots need {expert} bytes each on top"));
        return SlotsFromBytes(model.Config, vramBytes - dense, expert, popularity);
    }

    /// <summary>
    /// Device bytes of everything but the expert slots when <paramref name="model"/> runs on a <see cref="GpuDevice"/>
    /// with <see cref="OffloadedExpertScheduler"/>: non-expert weights (padded rows), fp32 vectors and RoPE tables,
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
        int t = Math.Min(maxChunkTokens, model.ContextLength), h = c.HiddenSize, q = c.NumHeads * c.HeadDim, kv = c.NumKvHeads * c.HeadDim;
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
        int rotDim = (int)(c.HeadDim * c.Rope.PartialRotaryFactor);
        rotDim -= rotDim % 2;
        total += 2 * Floats((long)model.ContextLength * (rotDim / 2));                 // RoPE cos, sin
        total += (long)sequences * c.NumLayers * 2 * Floats((long)model.ContextLength * kv); // KV caches
        total += 4 * Floats((long)t * h) + 2 * Floats((long)t * q) + 2 * Floats((long)t * kv) // X, Xn, Out, Shared; Q, Ctx; K, V
            + Floats((long)t * Math.Max(c.NumExperts, 1)) + Floats((long)RunState.LogitRows * c.VocabSize);
        total += 4L * Math.Max(64, t);                                                   // token ids
        if (ffnScratch > 0) total += Floats(Math.Max((long)t * ffnScratch, 1024));      // dense / shared FFN scratch
        total += OffloadedExpertScheduler.ScratchBytes(t, c.TopK, h, c.ExpertIntermediate);
        return total;
    }

    // GpuDevice.AllocateFloats: at least 4 floats, rounded up to whole 16-byte groups.
    internal static long Floats(long n) => Math.Max(4, (n + 3) / 4 * 4) * 4;

    static int[] MoeLayers(ModelConfig c) => Enumerable.Range(0, c.NumLayers).Where(l => c.IsMoe(l)).ToArray();

    static long[,]? Subset(long[,]? popularity, int[] moe, int experts)
    {
        if (popularity == null) return null;
        var p = new long[moe.Length, experts];
        for (int i = 0; i < moe.Length; i++)
            for (int e = 0; e < experts; e++) p[i, e] = popularity[moe[i], e];
        return p;
    }

    static int[] Expand(ModelConfig c, int[] moe, int[] slots)
    {
        var all = new int[c.NumLayers];
        for (int i = 0; i < moe.Length; i++) all[moe[i]] = slots[i];
        return all;
    }
}
