using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Daop.Engine.Load.Tokenizer;
using Microsoft.ML.Tokenizers;

namespace Daop.Tests.Load.Tokenizer;

/// <summary>
/// Differential test of our BPE pipeline against Microsoft.ML.Tokenizers' BpeTokenizer, an independent
/// implementation that reproduces the byte-level references (see the comment atop HfTokenizer.cs), on
/// far more text than the 17 reference samples: the repository's C# sources and random Unicode mixes.
/// </summary>
public class HfTokenizerMlOracleTests
{
    private const string Gpt2 = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
    private const string Qwen =
        @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    public static TheoryData<string, string> Tokenizers => new()
    {
        { Path.Combine("tests", "fixtures", "tok-fixtures", "bytelevel-bpe.tokenizer.json"), Gpt2 },
        { Path.Combine("tests", "fixtures", "tok-fixtures", "qwen-regex-bpe.tokenizer.json"), Qwen },
        { Path.Combine("models", "tiny-mixtral-code", "tokenizer.json"), Gpt2 },
    };

    private static BpeTokenizer Oracle(string path, string pattern)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        var model = doc.RootElement.GetProperty("model");
        var vocab = model.GetProperty("vocab").EnumerateObject()
            .Select(p => new KeyValuePair<string, int>(p.Name, p.Value.GetInt32())).ToList();
        var merges = model.GetProperty("merges").EnumerateArray()
            .Select(m => m.ValueKind == JsonValueKind.String ? m.GetString()! : m[0].GetString() + " " + m[1].GetString()).ToList();
        return BpeTokenizer.Create(new BpeOptions(vocab)
        {
            Merges = merges,
            ByteLevel = true,
            PreTokenizer = new RegexPreTokenizer(new Regex(pattern, RegexOptions.CultureInvariant), null),
        });
    }

    private static IEnumerable<string> Corpus()
    {
        var root = TokTestPaths.RepoRoot;
        foreach (var file in Directory.EnumerateFiles(Path.Combine(root, "src"), "*.cs", SearchOption.AllDirectories)
                     .Where(f => !f.EndsWith(".g.cs", StringComparison.Ordinal)).Order(StringComparer.Ordinal).Take(40))
        {
            // Keep added-token markers out: the oracle has no added tokens.
            yield return File.ReadAllText(file).Replace("<|", "< |");
        }
        // NFC-stable pieces only (the oracle has no normalizer) and no astral letters or digits,
        // where the oracle's UTF-16 regex differs from Rust's code-point regex on purpose.
        string[] pool =
        [
            "a", "Z", "q", "the", " ", "  ", "\n", "\r\n", "\t", "0", "42", "'s", "'LL", "\u00E9", "\u00FC", "\u00DF",
            "\u65E5\u672C", "\u4E2D", "\uD55C", "\u0416", "\u03A9", "\U0001F642", "\U0001F469\u200D\U0001F4BB", "!", "?!",
            "(", ")", "{", "}", "->", "==", "_", "#", ".", ",", "\u2014", "\u201C", "\u00A0", "\u3000", "x1", "\u0661",
        ];
        var rng = new Random(1234);
        for (int i = 0; i < 200; i++)
        {
            var sb = new StringBuilder();
            int n = rng.Next(1, 60);
            for (int j = 0; j < n; j++)
                sb.Append(pool[rng.Next(pool.Length)]);
            yield return sb.ToString();
        }
    }

    [Theory]
    [MemberData(nameof(Tokenizers))]
    public void EncodeAgreesWithMlTokenizersBpe(string relativePath, string pattern)
    {
        string path = Path.Combine(TokTestPaths.RepoRoot, relativePath);
        var ours = HfTokenizer.FromFile(path);
        var oracle = Oracle(path, pattern);
        int texts = 0;
        foreach (var text in Corpus())
        {
            var expected = oracle.EncodeToIds(text).ToArray();
            var actual = ours.Encode(text, addSpecialTokens: false);
            Assert.True(expected.SequenceEqual(actual), $"mismatch on {JsonSerializer.Serialize(text)}");
            Assert.Equal(text, ours.Decode(actual));
            texts++;
        }
        Assert.True(texts > 200);
    }
}
