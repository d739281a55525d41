using Daop.Engine.Load.Chat;
using Daop.Engine.Model;
using Daop.Kernels;

namespace Daop.Engine.Api;

/// <summary>How <see cref="DaopModel.Load"/> loads and runs a model.</summary>
public sealed record DaopOptions
{
    /// <summary>Positions one sequence can hold (prompt plus generated tokens). Default: min(max_position_embeddings, 4096).</summary>
    public int? ContextLength { get; init; }

    /// <summary>
    /// Where dense compute runs: <c>"cpu"</c> (default; experts on the CPU), <c>"cuda"</c> (the first NVIDIA GPU through
    /// ILGPU, every expert resident on it) or <c>"ilgpu-cpu"</c> (the GPU code path on ILGPU's CPU accelerator, for
    /// testing). The GPU devices need the JIT runtime: they are not available in the ahead-of-time compiled binary.
    /// </summary>
    public string Device { get; init; } = "cpu";

    /// <summary>
    /// CPU worker threads for the whole process (default: <c>DAOP_THREADS</c> or all cores). The pool starts with the first
    /// model that runs; asking for a different count afterwards throws <see cref="ArgumentException"/>.
    /// </summary>
    public int? Threads { get; init; }

    /// <summary>
    /// Stored type of the routed experts (<see cref="ModelOptions.ExpertDType"/>): e.g. <see cref="DType.Q4_0"/> quantizes
    /// F32/F16/BF16 experts at load, in parallel, into memory the model owns. Default: as stored.
    /// </summary>
    public DType? ExpertDType { get; init; }

    /// <summary>
    /// Stored type of attention, shared-expert and dense-MLP matrices (<see cref="ModelOptions.DenseDType"/>). Embedding, LM
    /// head and routers stay as stored. Default: as stored.
    /// </summary>
    public DType? DenseDType { get; init; }

    /// <summary>
    /// Full control over the device and the expert scheduler (offloading, placement policies). When set, it is used as
    /// given and <see cref="Device"/> is ignored; <see cref="ContextLength"/>, <see cref="ExpertDType"/> and <see cref="DenseDType"/>
    /// still apply where it leaves them unset.
    /// </summary>
    public ModelOptions? Engine { get; init; }

    /// <summary>
    /// Sequences generated at once (continuous batching, <see cref="Generate.SequenceBatcher"/>): 1 (default) runs one
    /// generation at a time, FIFO; N &gt; 1 decodes up to N together, one KV cache of the whole context each, so each
    /// weight is read once per step for all of them. Offloaded experts are placed by the batch's routing as decode; DAOP's
    /// approximate mode stays exact for batched steps (its prediction is per token).
    /// </summary>
    public int Parallel { get; init; } = 1;

    /// <summary>Bounds on parsing and rendering the model's chat template (default: <see cref="ChatTemplateLimits.Default"/>).</summary>
    public ChatTemplateLimits? ChatTemplateLimits { get; init; }
}
