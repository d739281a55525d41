using System.Text.RegularExpressions;

namespace Daop.Tests.Samples;

/// <summary>
/// README.md's C# examples are, in order, samples/Daop.ReadmeExample/Program.cs and samples/Daop.ChatClientSample/Program.cs,
/// which the solution builds (warnings as errors): each pair must stay identical, so the README shows code that compiles.
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
        string[] samples = ["Daop.ReadmeExample", "Daop.ChatClientSample"]; // a further C# block needs its own compiled sample
        Assert.Equal(samples.Length, blocks.Count);
        for (int i = 0; i < samples.Length; i++)
        {
            string sample = Path.Combine(TestPaths.Root, "samples", samples[i], "Program.cs");
            Assert.True(blocks[i] == Normalize(File.ReadAllText(sample)),
                $"README.md's ```csharp block {i + 1} differs from {sample}: copy one onto the other (the sample is what CI compiles)");
        }
    }
}
