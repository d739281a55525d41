using System.Text.RegularExpressions;

namespace Daop.Tests.Samples;

/// <summary>
/// README.md's C# example is samples/Daop.ReadmeExample/Program.cs, which the solution builds (warnings as errors): the two
/// must stay identical, so the README shows code that compiles.
/// </summary>
public partial class ReadmeExampleTests
{
    [GeneratedRegex(@"^```csharp\n(.*?)^```$", RegexOptions.Singleline | RegexOptions.Multiline)]
    private static partial Regex CSharpBlock();

    static string Normalize(string s) => s.Replace("\r\n", "\n", StringComparison.Ordinal).TrimEnd() + "\n";

    [Fact]
    public void ReadmeCSharpBlocksAreTheCompiledSample()
    {
        string readme = Normalize(File.ReadAllText(Path.Combine(TestPaths.Root, "README.md")));
        var blocks = CSharpBlock().Matches(readme).Select(m => Normalize(m.Groups[1].Value)).ToList();
        string sample = Path.Combine(TestPaths.Root, "samples", "Daop.ReadmeExample", "Program.cs");
        var block = Assert.Single(blocks); // a second C# block needs its own compiled sample
        Assert.True(block == Normalize(File.ReadAllText(sample)),
            $"README.md's ```csharp block differs from {sample}: copy one onto the other (the sample is what CI compiles)");
    }
}
