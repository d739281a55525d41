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

    private static string Repeat(string item, int n) => string.Join(", ", Enumerable.Repeat(item, n));

    private static string LoadError(string json) => Assert.Throws<ModelLoadException>(() => SyntheticTokenizer.Load(json)).Message;

    [Fact]
    public void ReplaceThatMatchesEverywhereCannotBlowUpTheText()
    {
        // An empty regex matches between every two characters: each gets the whole content.
        string normalizer = Component("normalizer", $$"""{"type": "Replace", "pattern": {"Regex": ""}, "content": "{{new string('x', 10_000)}}"}""");
        var tok = SyntheticTokenizer.Load(SyntheticTokenizer.Json(Letters, [], components: normalizer));
        var e = Assert.Throws<ModelLoadException>(() => tok.Encode("ab"));
        Assert.Equal("tokenizer.json: normalizer.pattern.Regex '' makes the text longer than 4224 characters " +
            "(64 times the input plus 4096); this tokenizer cannot be used", e.Message);
    }

    [Fact]
    public void ChainedReplacesCannotMultiplyPastTheLimit()
    {
        // Each step doubles the text: 2^20 times 1000 characters without one limit for the whole chain.
        string step = """{"type": "Replace", "pattern": {"String": "a"}, "content": "aa"}""";
        string normalizer = Component("normalizer", $$"""{"type": "Sequence", "normalizers": [{{Repeat(step, 20)}}]}""");
        var tok = SyntheticTokenizer.Load(SyntheticTokenizer.Json(Letters, [], components: normalizer));
        var e = Assert.Throws<ModelLoadException>(() => tok.Encode(new string('a', 1000)));
        Assert.StartsWith("tokenizer.json: normalizer.normalizers[6].pattern.String 'a' makes the text longer than 68096 characters", e.Message);
        Assert.Equal([1, 2], tok.Encode("bc")); // text the steps do not grow encodes
    }

    [Fact]
    public void ChainedByteLevelsCannotMultiplyPastTheLimit()
    {
        // ByteLevel writes each UTF-8 byte as one character, and those characters are 2 bytes each: it doubles "é".
        string step = """{"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}""";
        string pre = Component("pre_tokenizer", $$"""{"type": "Sequence", "pretokenizers": [{{Repeat(step, 30)}}]}""");
        var tok = SyntheticTokenizer.Load(SyntheticTokenizer.Json(Letters, [], components: pre));
        var e = Assert.Throws<ModelLoadException>(() => tok.Encode(new string('é', 100)));
        Assert.StartsWith("tokenizer.json: pre_tokenizer.pretokenizers[6] makes the text longer than 10496 characters", e.Message);
    }

    [Fact]
    public void ReplaceDecoderCannotBlowUpTheText()
    {
        string decoder = Component("decoder", $$"""{"type": "Replace", "pattern": {"Regex": "x*"}, "content": "{{new string('y', 1000)}}"}""");
        var tok = SyntheticTokenizer.Load(SyntheticTokenizer.Json(Letters, [], components: decoder));
        var e = Assert.Throws<ModelLoadException>(() => tok.Decode(Enumerable.Repeat(0, 100).ToArray()));
        Assert.StartsWith("tokenizer.json: decoder.pattern.Regex 'x*' makes the text longer than 10496 characters", e.Message);
    }

    [Fact]
    public void ManyAddedTokensWithOneFirstCharacterMatchLeftmostLongest()
    {
        // 50,000 tokens starting with '<': each '<' of the text used to be compared with all of them.
        var added = Enumerable.Range(0, 50_000).Select(i => SyntheticTokenizer.Added(100 + i, $"<t{i}>"))
            .Append(SyntheticTokenizer.Added(50_100, "<t1>x")).Append(SyntheticTokenizer.Added(50_101, "<"));
        var tok = SyntheticTokenizer.Load(SyntheticTokenizer.Json(Letters, [], addedTokens: "[" + string.Join(",", added) + "]"));
        Assert.Equal([50_100, 100 + 12, 50_101, 50_101, 19, 100 + 1, 100 + 49_999], tok.Encode("<t1>x<t12><<t<t1><t49999>"));
        string text = string.Concat(Enumerable.Repeat("<t", 100_000));
        Assert.Equal(200_000, tok.Encode(text).Length);
    }

    [Fact]
    public void OverlongAddedTokenIsALoadError()
    {
        string json = SyntheticTokenizer.Json(Letters, [], addedTokens: "[" + SyntheticTokenizer.Added(100, new string('a', 257)) + "]");
        Assert.Equal("tokenizer.json: added_tokens[0].content has 257 characters; the limit is 256", LoadError(json));
    }

    [Fact]
    public void OverlongSubwordPrefixIsALoadError()
    {
        string json = SyntheticTokenizer.Json(Letters, [], modelExtra: $"\"continuing_subword_prefix\": \"{new string('#', 65)}\"");
        Assert.Equal("tokenizer.json: model.continuing_subword_prefix has 65 characters; the limit is 64", LoadError(json));
    }

    [Fact]
    public void PostProcessorCannotRepeatALongIdList()
    {
        string ids = string.Join(", ", Enumerable.Repeat(0, 600));
        string piece = """{"SpecialToken": {"id": "X", "type_id": 0}}""";
        string post = Component("post_processor", "{\"type\": \"TemplateProcessing\", \"single\": [" + piece + ", " + piece +
            ", {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}], \"special_tokens\": {\"X\": {\"id\": \"X\", \"ids\": [" + ids + "], \"tokens\": []}}}");
        Assert.Equal("tokenizer.json: post_processor.single adds more than 1024 ids around the sequence",
            LoadError(SyntheticTokenizer.Json(Letters, [], components: post)));
    }

    [Fact]
    public void TooManyComponentsIsALoadError()
    {
        string step = """{"type": "Lowercase"}""";
        string normalizer = Component("normalizer", $$"""{"type": "Sequence", "normalizers": [{{Repeat(step, 300)}}]}""");
        Assert.Equal("tokenizer.json: normalizer.normalizers[255]: more than 256 normalizers, pre-tokenizers, decoders and post-processors in all",
            LoadError(SyntheticTokenizer.Json(Letters, [], components: normalizer)));
    }

    [Fact]
    public void EmptyBpeDecoderSuffixIsALoadError()
    {
        // string.Replace("", ...) threw ArgumentException at decode time.
        string decoder = Component("decoder", """{"type": "BPEDecoder", "suffix": ""}""");
        Assert.Equal("tokenizer.json: decoder.suffix must not be empty", LoadError(SyntheticTokenizer.Json(Letters, [], components: decoder)));
    }

    [Fact]
    public void LongRunOfCombiningMarksNormalizesInLinearithmicTime()
    {
        // Canonical ordering used insertion sort: 200,000 alternating marks were 10^10 swaps.
        string marks = string.Concat(Enumerable.Repeat("\u0301\u0316", 100_000)); // classes 230 and 220
        string nfd = Daop.Engine.Load.Tokenizer.Unicode.UnicodeNormalizer.Normalize("a" + marks, compose: false, compat: false);
        Assert.Equal("a" + new string('\u0316', 100_000) + new string('\u0301', 100_000), nfd);
    }
}
