using System.Globalization;
using Daop.Engine.Device.Gpu;
using Daop.Engine.Load.Config;
using Daop.Engine.Model;
using Daop.Engine.Placement;

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
    /// with <see cref="OffloadedExpertScheduler"/> (<see cref="GpuMemory.DenseBytes"/>): after a forward call over a full
    /// chunk it equals <see cref="GpuDevice.AllocatedBytes"/> minus the pool.
    /// </summary>
    public static long DenseBytes(MoeModel model, int maxChunkTokens, int sequences = 1) => GpuMemory.DenseBytes(model, maxChunkTokens, sequences);

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
