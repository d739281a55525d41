using Daop.Engine.Device.Gpu;

namespace Daop.Engine.Schedule;

/// <summary>Knobs of <see cref="OffloadedExpertScheduler"/> beyond the placement.</summary>
public sealed record OffloadOptions
{
    /// <summary>Where transfers read experts from (default: page-locked staged images on CUDA, the checkpoint elsewhere).</summary>
    public HostCopyMode CopyMode { get; init; } = HostCopyMode.Auto;
    /// <summary>Most bytes of staged (page-locked) host images; past it transfers read the checkpoint directly.</summary>
    public long PinnedHostBytes { get; init; } = long.MaxValue;
    /// <summary>Make every expert's staged image at start (else on its first transfer).</summary>
    public bool PinAhead { get; init; }
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
    /// <summary>Benchmark-only: replaces the router's choice (and the next-layer predictor's logits), e.g. with a recorded trace.</summary>
    public IRoutingOverride? RoutingOverride { get; init; }
}
