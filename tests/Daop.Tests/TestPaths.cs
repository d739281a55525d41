namespace Daop.Tests;

/// <summary>Locates the repository (the folder holding Daop.sln) so tests read fixtures in place.</summary>
static class TestPaths
{
    public static string Root { get; } = FindRoot();

    public static string Fixture(string name) => Path.Combine(Root, "tests", "fixtures", "hf-fixtures", name);

    public static string DefaultModel => Path.Combine(Root, "models", "tiny-mixtral-code");

    public static IEnumerable<object[]> HfFixtures() =>
        new[] { "mixtral-tiny", "mixtral-odd", "qwen2moe-tiny", "qwen3moe-tiny", "olmoe-tiny", "phimoe-tiny" }.Select(n => new object[] { n });

    static string FindRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "Daop.sln"))) return d.FullName;
        throw new InvalidOperationException("Daop.sln not found above " + AppContext.BaseDirectory);
    }
}
