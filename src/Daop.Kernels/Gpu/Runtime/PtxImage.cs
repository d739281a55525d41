namespace Daop.Kernels.Gpu;

/// <summary>
/// One kernel of this build compiled to PTX at build time: its catalog key, the PTX entry point, the byte size of each
/// parameter in order (from the entry's declaration), and the PTX text.
/// </summary>
/// <param name="Key">The kernel's key in <see cref="GpuKernelCatalog"/>.</param>
/// <param name="EntryName">The <c>.entry</c> name in <paramref name="Ptx"/>.</param>
/// <param name="ParameterSizes">Bytes of each kernel parameter, in order.</param>
/// <param name="Ptx">The module's PTX.</param>
public sealed record PtxImage(string Key, string EntryName, int[] ParameterSizes, string Ptx);
