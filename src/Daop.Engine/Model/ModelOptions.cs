using Daop.Engine.Device;
using Daop.Engine.Schedule;

namespace Daop.Engine.Model;

/// <summary>How to load and run a model.</summary>
public sealed record ModelOptions
{
    /// <summary>Positions a sequence's KV cache can hold (default: min(max_position_embeddings, 4096)).</summary>
    public int? ContextLength { get; init; }
    /// <summary>Most tokens one forward call processes at once; longer prompts are prefilled in chunks.</summary>
    public int MaxChunkTokens { get; init; } = 256;
    /// <summary>The device for dense compute (default: CPU).</summary>
    public Func<MoeModel, IDevice>? Device { get; init; }
    /// <summary>The expert scheduler (default: every expert on the CPU).</summary>
    public Func<MoeModel, IDevice, IExpertScheduler>? Experts { get; init; }
}
