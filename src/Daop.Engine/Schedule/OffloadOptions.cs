using Daop.Engine.Device.Gpu;

namespace Daop.Engine.Schedule;

/// <summary>Knobs of <see cref="OffloadedExpertScheduler"/> beyond the placement.</summary>
public sealed record OffloadOptions
{
    /// <summary>Where transfers read experts from (default: page-locked staged images on CUDA, the checkpoint elsewhere).</summary>
    public HostCopyMode CopyMode { get; init; } = HostCopyMode.Auto;
    /// <summary>
    /// Most bytes of staged (page-locked) host images; past it transfers read the checkpoint directly. Null (default):
    /// <see cref="OffloadedExpertScheduler.DefaultPinnedHostBytes"/>, what host memory holds beside the routed experts'
    /// own bytes — prefill streaming copies most CPU-resident experts, and their page-locked images must not push the
    /// checkpoint the CPU experts read out of memory.
    /// </summary>
    public long? PinnedHostBytes { get; init; }
    /// <summary>
    /// When the staged images of the experts not uploaded at start are made (default: in the background from the start
    /// on CUDA, else on each expert's first transfer).
    /// </summary>
    public HostImageTiming Images { get; init; } = HostImageTiming.Auto;
    /// <summary>
    /// During decode, predict layer l+1's experts inside layer l's <see cref="OffloadedExpertScheduler.RunExperts"/> (layer
    /// l+1's router on layer l's gate input) and tell the policy. Turn off once the forward pass calls
    /// <see cref="OffloadedExpertScheduler.OnNextLayerGateInput"/> itself.
    /// </summary>
    public bool PredictNextLayer { get; init; } = true;
    /// <summary>
    /// DAOP's approximate mode: most CPU worker threads a background pre-calculation uses (0: all). One fewer than the
    /// cores leaves the thread that drives the GPU (and spins in CUDA waits) a core of its own.
    /// </summary>
    public int PrecalcThreads { get; init; }
    /// <summary>
    /// Prefill: a chunk's CPU-resident expert with at least this many of the chunk's tokens routed to it is copied to a
    /// staging slot and run on the GPU rather than on the CPU (<see cref="PlacementDriver.StreamMinTokens"/>; two staging
    /// slots are allocated beside the pool). 0 turns it off; null (default) takes
    /// <see cref="DefaultStreamMinTokens"/> for the experts' format.
    /// </summary>
    public int? StreamPrefillMinTokens { get; init; }

    /// <summary>
    /// The break-even token count for streaming an expert of <paramref name="expertBytes"/> whose bf16 copy would be
    /// <paramref name="bf16Bytes"/>: 32 for bf16 (on the H100's host a Mixtral expert copies in ~6.4 ms at 55 GB/s,
    /// and its batched CPU FFN costs ~0.2 ms per token), scaled by the format's bytes (a copy costs its bytes; the CPU's
    /// batched work per token hardly depends on the format), at least 2.
    /// </summary>
    public static int DefaultStreamMinTokens(long expertBytes, long bf16Bytes) =>
        Math.Max(2, (int)Math.Round(32.0 * expertBytes / Math.Max(1, bf16Bytes)));

    /// <summary>
    /// Mixed precision on a miss (HOBBIT): decode misses run on the CPU with a router weight at most its bound read a
    /// low-precision host copy of the expert, made at construction (<see cref="PlacementDriver.MissPrecision"/>,
    /// <see cref="MissPrecisionCopies"/>). Null (default): off.
    /// </summary>
    public MissPrecision? MissPrecision { get; init; }

    /// <summary>Benchmark-only: replaces the router's choice (and the next-layer predictor's logits), e.g. with a recorded trace.</summary>
    public IRoutingOverride? RoutingOverride { get; init; }
}
