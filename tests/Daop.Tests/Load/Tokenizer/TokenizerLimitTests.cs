using System.Text.Json;
using Daop.Engine.Load;
using Daop.Engine.Load.Tokenizer;

namespace Daop.Tests.Load.Tokenizer;

/// <summary>
/// A tokenizer.json is untrusted input: its regexes run with a match timeout, and sizes it controls are bounded, so a
/// hostile file fails with a ModelLoadException naming the file and field instead of hanging or exhausting memory.
/// </summary>
public class TokenizerLimitTests
{
    private static readonly string[] Letters = Enumerable.Range('a', 26).Select(c => ((char)c).ToString()).Concat([" ", "!", ",", "1"]).ToArray();

    private static string Component(string name, string json) => $"\"{name}\": {json}";

    private static string SplitPattern(string regex) => Component("pre_tokenizer",
        $$"""{"type": "Split", "pattern": {"Regex": {{JsonSerializer.Serialize(regex)}}}, "behavior": "Isolated", "invert": false}""");

    [Fact]
    public void CatastrophicSplitPatternFailsWithAClearError()
    {
        // (a+)+$ on a run of a's not followed by the end backtracks exponentially: 26 s on 30 characters before the timeout.
        var tok = SyntheticTokenizer.Load(SyntheticTokenizer.Json(Letters, [], components: SplitPattern("(a+)+$")));
        var e = Assert.Throws<ModelLoadException>(() => tok.Encode(new string('a', 30) + "!"));
        Assert.Equal("tokenizer.json: pre_tokenizer.pattern.Regex '(a+)+$' ran past its 1 s match timeout on a 31-character text " +
            "(catastrophic backtracking); this tokenizer cannot be used until the pattern is fixed", e.Message);
        // Text the pattern handles quickly still encodes.
        Assert.Equal(5, tok.Encode("aaaab").Length);
    }

    [Fact]
    public void CatastrophicReplacePatternFailsWithAClearError()
    {
        string normalizer = Component("normalizer", """
            {"type": "Sequence", "normalizers": [{"type": "Replace", "pattern": {"Regex": "(a|aa)+$"}, "content": "b"}]}
            """);
        var tok = SyntheticTokenizer.Load(SyntheticTokenizer.Json(Letters, [], components: normalizer));
        var e = Assert.Throws<ModelLoadException>(() => tok.Encode(new string('a', 40) + "!"));
        Assert.StartsWith("tokenizer.json: normalizer.normalizers[0].pattern.Regex '(a|aa)+$' ran past its 1 s match timeout", e.Message);
    }

    [Fact]
    public void OptionalPrefixPatternSplitsLikeTheBacktrackingEngine()
    {
        // .NET's NonBacktracking engine drops the match "a" in ",1a b" (dotnet/runtime#130176), which would leave
        // "1a" in one piece and merge it; the backtracking engine (and the Rust library) isolates "a".
        var tok = SyntheticTokenizer.Load(SyntheticTokenizer.Json([",", "1", "a", " ", "b", "1a"], [["1", "a"]],
            components: SplitPattern(@"[^\r\n\p{L}\p{N}]?\p{L}+")));
        Assert.Equal([0, 1, 2, 3, 4], tok.Encode(",1a b"));
    }

    [Theory]
    [InlineData("Regex")]
    [InlineData("String")]
    public void OverlongPatternIsALoadError(string kind)
    {
        string split = Component("pre_tokenizer",
            $$"""{"type": "Split", "pattern": {"{{kind}}": "{{new string('a', 10_001)}}"}, "behavior": "Isolated", "invert": false}""");
        var e = Assert.Throws<ModelLoadException>(() => SyntheticTokenizer.Load(SyntheticTokenizer.Json(Letters, [], components: split)));
        Assert.Equal($"tokenizer.json: pre_tokenizer.pattern.{kind} has 10001 characters; the limit is 10000", e.Message);
    }
}
