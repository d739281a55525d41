namespace Daop.Tests.Load.Tokenizer;

/// <summary>Locates repository files from the test binary folder (walks up to Daop.sln).</summary>
internal static class TokTestPaths
{
    private static readonly Lazy<string> Root = new(() =>
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Daop.sln")))
                return dir.FullName;
        throw new InvalidOperationException($"Daop.sln not found above {AppContext.BaseDirectory}");
    });

    public static string RepoRoot => Root.Value;

    public static string TokFixtures => Path.Combine(RepoRoot, "tests", "fixtures", "tok-fixtures");

    public static string ChatTemplates => Path.Combine(RepoRoot, "tests", "fixtures", "chat-templates");

    public static string TinyModel => Path.Combine(RepoRoot, "models", "tiny-mixtral-code");

    /// <summary>A fresh empty temporary folder for tests that write broken files.</summary>
    public static string NewTempDir()
    {
        string dir = Path.Combine(Path.GetTempPath(), "daop-tok-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        return dir;
    }
}
