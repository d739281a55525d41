using Daop.Engine.Device;
using Daop.Engine.Device.Gpu;
using Daop.Engine.Load.Config;
using Daop.Engine.Model;
using Daop.Engine.Model.Layers;

namespace Daop.Engine.Schedule;

/// <summary>
/// Routed experts on a <see cref="GpuDevice"/> with every expert resident: the routing is checked here, and
/// <see cref="GpuResidentExperts"/> groups the positions by expert into tiles and launches the grouped kernels (see there).
/// </summary>
public sealed class GpuExpertScheduler : IExpertScheduler
{
    /// <inheritdoc />
    public bool BatchesSequences => true;

    /// <summary>Up to this many tokens use the fused down-and-combine kernel.</summary>
    public const int FusedCombineMaxTokens = GpuResidentExperts.FusedCombineMaxTokens;

    readonly GpuResidentExperts _experts;
    readonly bool _hostRouting = Environment.GetEnvironmentVariable("DAOP_GPU_ROUTING") == "host";

    /// <summary>Experts of <paramref name="weights"/> on <paramref name="device"/>.</summary>
    public GpuExpertScheduler(ModelWeights weights, int hidden, int numExperts, int expertInter, GpuDevice device) =>
        _experts = new GpuResidentExperts(weights, hidden, numExperts, expertInter, device);

    /// <summary>Experts of <paramref name="model"/> on <paramref name="device"/> (which must be a <see cref="GpuDevice"/>).</summary>
    public GpuExpertScheduler(MoeModel model, IDevice device)
        : this(model.Weights, model.Config.HiddenSize, model.Config.NumExperts, model.Config.ExpertIntermediate,
            device as GpuDevice ?? throw new ArgumentException($"the GPU expert scheduler needs a GpuDevice, got {device.Name}", nameof(device)))
    { }

    /// <summary>
    /// Whether decode steps of up to <see cref="FusedCombineMaxTokens"/> tokens route on the GPU (routers with
    /// <see cref="RouterSpec.DeviceRenormalize"/>: softmax top-k, and top-k softmax as GPT-OSS's),
    /// so a layer never waits for the host; false with <c>DAOP_GPU_ROUTING=host</c> (for comparison).
    /// </summary>
    public bool RoutesOnDevice => !_hostRouting;

    /// <inheritdoc cref="GpuResidentExperts.BatchedRuns"/>
    public long BatchedRuns => _experts.BatchedRuns;

    /// <inheritdoc />
    public bool DecodeStepQueuesOnly => !_hostRouting;

    /// <summary>Uploads every layer's experts now rather than on first use.</summary>
    public void Preload() => _experts.Preload();

    /// <inheritdoc />
    public void RunExperts(int layer, DeviceBuffer x, RoutingBatch r, DeviceBuffer y, int tokens)
    {
        if (tokens <= 0) return;
        for (int i = 0; i < tokens * r.TopK; i++)
            if ((uint)r.Experts[i] >= (uint)_experts.Experts)
                throw new ArgumentOutOfRangeException(nameof(r), $"expert {r.Experts[i]} of slot {i} is outside [0, {_experts.Experts})");
        _experts.Run(layer, x, r, y, tokens);
    }

    /// <inheritdoc />
    /// <remarks>
    /// Decode only (up to <see cref="FusedCombineMaxTokens"/> tokens) with a router the device runs
    /// (<see cref="RouterSpec.DeviceRenormalize"/>: softmax top-k, and GPT-OSS's top-k softmax): the host's grouping
    /// pays for its wait only when tokens share experts. NaN logits give NaN outputs (checked with the model's logits)
    /// instead of the host's per-layer error.
    /// </remarks>
    public bool TryRunExpertsRoutedOnDevice(int layer, DeviceBuffer x, DeviceBuffer logits, RouterSpec router, int topK, DeviceBuffer y, int tokens)
    {
        if (_hostRouting || tokens <= 0 || tokens > FusedCombineMaxTokens || router.DeviceRenormalize is not bool renormalize) return false;
        _experts.RunRouted(layer, x, logits, topK, renormalize, y, tokens);
        return true;
    }
}
