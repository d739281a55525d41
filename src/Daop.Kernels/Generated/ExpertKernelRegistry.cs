namespace Daop.Kernels.Generated;

/// <summary>
/// Picks the expert kernel for a shape: the one generated for it when a model config under <c>models/</c> named
/// it at build time, else the generic runtime-dims path. Both give the same results up to summation order.
/// </summary>
public static class ExpertKernelRegistry
{
    /// <summary>The kernel for experts of <paramref name="hidden"/> × <paramref name="inter"/> with <paramref name="type"/> weights.</summary>
    /// <remarks>
    /// Log <see cref="IExpertKernel.Name"/> to see which one runs. Allocation-free; call it once per model. Block
    /// formats (Q8_0, Q4_0, MXFP4, and the K-quants) always get the generic kernel, which reaches their int8 kernels.
    /// </remarks>
    public static IExpertKernel Select(int hidden, int inter, DType type) =>
        (type.IsBlock() ? null : GeneratedExpertKernels.Find(hidden, inter, type)) ?? GenericExpertKernel.Instance;

    /// <summary>Every kernel generated in this build, ordered by hidden, inter and dtype.</summary>
    public static IReadOnlyList<IExpertKernel> Generated => GeneratedExpertKernels.All;
}
