namespace Daop.Tests.Load.Safetensors;

/// <summary>Locates checked-in fixtures independently of where the test runner puts the binaries.</summary>
static class StTestPaths
{
    /// <summary>The repository root (<see cref="TestPaths.Root"/>).</summary>
    public static string RepoRoot => TestPaths.Root;

    /// <summary>tests/fixtures/hf-fixtures.</summary>
    public static string HfFixtures => Path.Combine(RepoRoot, "tests", "fixtures", "hf-fixtures");

    /// <summary>The default model folder shipped with the repository.</summary>
    public static string TinyMixtralCode => TestPaths.DefaultModel;

    /// <summary>Every hf-fixtures sub-folder name, for theories.</summary>
    public static IEnumerable<object[]> FixtureNames() =>
        Directory.GetDirectories(HfFixtures).Select(Path.GetFileName).Order(StringComparer.Ordinal)
            .Select(n => new object[] { n! });
}
