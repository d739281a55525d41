namespace Daop.Tests.Load.Tokenizer;

/// <summary>Locates repository files from the test binary folder (walks up to Daop.sln).</summary>
internal static class TokTestPaths
{
    public static string RepoRoot => TestPaths.Root;

    public static string TokFixtures => Path.Combine(RepoRoot, "tests", "fixtures", "tok-fixtures");

    public static string ChatTemplates => Path.Combine(RepoRoot, "tests", "fixtures", "chat-templates");

    public static string TinyModel => TestPaths.DefaultModel;

    /// <summary>A fresh empty temporary folder for tests that write broken files.</summary>
    public static string NewTempDir()
    {
        string dir = Path.Combine(Path.GetTempPath(), "daop-tok-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        return dir;
    }
}
