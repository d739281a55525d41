namespace Daop.Cli;

/// <summary>Finds the embedded default model: next to the tool (packed as content) or in the repository's models/.</summary>
static class ModelLocator
{
    public const string DefaultName = "tiny-mixtral-code";

    public static string Default()
    {
        string beside = Path.Combine(AppContext.BaseDirectory, "models", DefaultName);
        if (File.Exists(Path.Combine(beside, "config.json"))) return beside;
        for (var d = new DirectoryInfo(Environment.CurrentDirectory); d != null; d = d.Parent)
        {
            string candidate = Path.Combine(d.FullName, "models", DefaultName);
            if (File.Exists(Path.Combine(candidate, "config.json"))) return candidate;
        }
        throw new FileNotFoundException($"the default model '{DefaultName}' was not found beside the tool or under models/; pass --model DIR");
    }
}
