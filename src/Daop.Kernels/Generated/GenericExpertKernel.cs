using Daop.Kernels.Cpu;

namespace Daop.Kernels.Generated;

/// <summary>The runtime-dims expert: <see cref="ExpertFfn.Forward"/>, for shapes no config named.</summary>
public sealed class GenericExpertKernel : IExpertKernel
{
    GenericExpertKernel()
    {
    }

    /// <summary>The single instance (the kernel holds no state).</summary>
    public static GenericExpertKernel Instance { get; } = new();

    /// <inheritdoc/>
    public string Name => "generic runtime-dims";

    /// <inheritdoc/>
    public ExpertKernelKind Kind => ExpertKernelKind.Generic;

    /// <inheritdoc/>
    public void Forward(in WeightMatrix gate, in WeightMatrix up, in WeightMatrix down,
        ReadOnlySpan<float> x, Span<float> y, int tokens, Span<float> scratch) =>
        ExpertFfn.Forward(gate, up, down, x, y, tokens, scratch);
}
