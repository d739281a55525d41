namespace Daop.Kernels.Gpu;

/// <summary>
/// Every kernel this build can launch, by key: what the build step compiles to PTX and what a GPU may load. A key the
/// engine asks for that is not here fails at once on every GPU, the CPU accelerator included, so CI's tests catch a
/// launch the precompiled kernels would miss.
/// </summary>
public static class GpuKernelCatalog
{
    /// <summary>Throws when <paramref name="key"/> is not in the catalog.</summary>
    public static void Require(string key)
    {
        // Filled in with the catalog (s19 work in progress).
    }
}
