using Daop.Kernels.Gpu;

namespace Daop.Engine.Device.Gpu.Cuda;

/// <summary>
/// The kernels of this build precompiled to PTX (src/Daop.PtxCompiler at build time), embedded in this assembly as the
/// resource <see cref="ResourceName"/>. Read once, on first use, from any thread.
/// </summary>
internal static class EmbeddedKernels
{
    /// <summary>The manifest resource name the build gives the pack (src/Daop.Engine/Daop.Engine.csproj).</summary>
    public const string ResourceName = "Daop.Engine.kernels.ptxpack";

    // Lazy with ExecutionAndPublication: one read however many threads ask first; a failed read rethrows each time.
    static readonly Lazy<PtxPackContents> Pack = new(Load, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>The PTX target of every image, e.g. <c>sm_80 ptx8.0</c>.</summary>
    public static string Target => Pack.Value.Target;

    /// <summary>The build that wrote the pack (kernels assembly id and ILGPU version), for diagnostics.</summary>
    public static string BuildId => Pack.Value.BuildId;

    /// <summary>Every kernel key in the pack.</summary>
    public static IEnumerable<string> Keys => Pack.Value.Images.Keys;

    /// <summary>The precompiled kernel <paramref name="key"/>, or null when the pack has no such kernel.</summary>
    public static PtxImage? Find(string key) => Pack.Value.Images.GetValueOrDefault(key);

    static PtxPackContents Load() => Load(typeof(EmbeddedKernels).Assembly, ResourceName);

    /// <summary>Reads the pack <paramref name="name"/> of <paramref name="assembly"/> (a parameter for the tests).</summary>
    internal static PtxPackContents Load(System.Reflection.Assembly assembly, string name)
    {
        // Called with typeof(EmbeddedKernels).Assembly: NativeAOT keeps every manifest resource, so the lookup works there.
        using var stream = assembly.GetManifestResourceStream(name)
            ?? throw new InvalidOperationException(
                $"The precompiled GPU kernels (resource '{name}') are missing from {assembly.GetName().Name}: " +
                "it was built without the src/Daop.PtxCompiler step (see src/Daop.Engine/Daop.Engine.csproj).");
        try { return PtxPack.Read(stream); }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"The precompiled GPU kernels (resource '{name}') are unreadable: {e.Message}", e);
        }
    }
}
