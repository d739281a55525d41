namespace Daop.Tests.Load.Safetensors;

/// <summary>Locates checked-in fixtures independently of where the test runner puts the binaries.</summary>
static class StTestPaths
{
    static readonly Lazy<string> Root = new(FindRoot);

    /// <summary>The repository root: the nearest ancestor of the test binaries holding Daop.sln.</summary>
    public static string RepoRoot => Root.Value;

    /// <summary>tests/fixtures/hf-fixtures.</summary>
    public static string HfFixtures => Path.Combine(RepoRoot, "tests", "fixtures", "hf-fixtures");

    /// <summary>The default model folder shipped with the repository.</summary>
    public static string TinyMixtralCode => Path.Combine(RepoRoot, "models", "tiny-mixtral-code");

    /// <summary>Every hf-fixtures sub-folder name, for theories.</summary>
    public static IEnumerable<object[]> FixtureNames() =>
        Directory.GetDirectories(HfFixtures).Select(Path.GetFileName).Order(StringComparer.Ordinal)
            .Select(n => new object[] { n! });

    static string FindRoot()
    {
        // Walk up rather than hard-code "../../../..": the bin layout differs between
        // dotnet test, IDE runners and artifacts-output builds.
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Daop.sln"))) return dir.FullName;
        throw new InvalidOperationException($"no Daop.sln above {AppContext.BaseDirectory}");
    }
}
