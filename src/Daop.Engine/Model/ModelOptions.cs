using Daop.Engine.Device;
using Daop.Engine.Schedule;
using Daop.Kernels;

namespace Daop.Engine.Model;

/// <summary>How to load and run a model.</summary>
public sealed record ModelOptions
{
    /// <summary>Positions a sequence's KV cache can hold (default: min(max_position_embeddings, 4096)).</summary>
    public int? ContextLength { get; init; }
    /// <summary>Most tokens one forward call processes at once; longer prompts are prefilled in chunks.</summary>
    public int MaxChunkTokens { get; init; } = 256;
    /// <summary>
    /// Check the residual stream for NaN/±∞ after the embedding and after each layer's attention and FFN, and name the
    /// first step that produced one (<see cref="NonFiniteException"/>). Costs a device-to-host copy per step; off in
    /// normal runs, which still check each layer's router logits and the output logits.
    /// </summary>
    public bool CheckFinite { get; init; }
    /// <summary>
    /// Stored type of the routed experts: F32/F16/BF16 matrices are converted at load (quantized for the block formats,
    /// exactly as ggml's reference quantizers do) into memory the model owns; block-format ones (a <c>daop quantize</c>
    /// checkpoint) convert only to F32/F16/BF16. Default: as stored.
    /// </summary>
    public DType? ExpertDType { get; init; }
    /// <summary>
    /// Stored type of attention projections, shared experts and dense MLPs, converted like <see cref="ExpertDType"/>.
    /// Token embedding, LM head, routers and shared-expert gates always stay as stored. Default: as stored.
    /// </summary>
    public DType? DenseDType { get; init; }
    /// <summary>The device for dense compute (default: CPU).</summary>
    public Func<MoeModel, IDevice>? Device { get; init; }
    /// <summary>The expert scheduler (default: every expert on the CPU).</summary>
    public Func<MoeModel, IDevice, IExpertScheduler>? Experts { get; init; }
    /// <summary>
    /// With every expert resident on a GPU device (<see cref="Schedule.GpuExpertScheduler"/>): run a short prompt and a
    /// decode step through a scratch cache at load, so the kernels of both paths are compiled then (ILGPU compiles each
    /// on its first launch, a few seconds in all) and the first request runs at full speed. Off by default (benchmarks
    /// warm up on their own); <c>daop run|chat|serve</c> and <see cref="Api.DaopModel"/> turn it on. Offloading
    /// schedulers are not warmed: their placement would count the scratch tokens.
    /// </summary>
    public bool WarmUp { get; init; }
}
