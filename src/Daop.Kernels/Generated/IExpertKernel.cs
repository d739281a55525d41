namespace Daop.Kernels.Generated;

/// <summary>Where an <see cref="IExpertKernel"/> comes from.</summary>
public enum ExpertKernelKind
{
    /// <summary>Specialised at build time for one shape named by a model config.</summary>
    Generated,
    /// <summary>The runtime-dims path (<see cref="Cpu.ExpertFfn.Forward"/>), for any shape.</summary>
    Generic,
}

/// <summary>
/// One SwiGLU expert, y = W_down · (SiLU(W_gate·x) ⊙ (W_up·x)), as picked by <see cref="ExpertKernelRegistry.Select"/>.
/// </summary>
public interface IExpertKernel
{
    /// <summary>For logs: e.g. "generated H4096xI14336 bf16" or "generic runtime-dims".</summary>
    string Name { get; }

    /// <summary>Generated or generic.</summary>
    ExpertKernelKind Kind { get; }

    /// <summary>
    /// Runs the expert with the contract of <see cref="Cpu.ExpertFfn.Forward"/>: gate/up [inter, hidden],
    /// down [hidden, inter], x and y [tokens, hidden], scratch at least 2·tokens·inter floats.
    /// </summary>
    void Forward(in WeightMatrix gate, in WeightMatrix up, in WeightMatrix down,
        ReadOnlySpan<float> x, Span<float> y, int tokens, Span<float> scratch);
}
