using Daop.Engine.Load.Tokenizer;

namespace Daop.Tests.Load.Tokenizer;

/// <summary>Single features on hand-made tokenizers, with expectations derived from the Rust code paths.</summary>
public class HfTokenizerFeatureTests
{
    private static readonly string[] Letters = Enumerable.Range('a', 26).Select(c => ((char)c).ToString()).Append(" ").ToArray();

    private static HfTokenizer AddedTokenTokenizer() => SyntheticTokenizer.Load(SyntheticTokenizer.Json(
        Letters, [],
        addedTokens: "[" + string.Join(",",
            SyntheticTokenizer.Added(100, "<x>", rstrip: true),
            SyntheticTokenizer.Added(101, "[M]", lstrip: true),
            SyntheticTokenizer.Added(102, "foo", special: false, singleWord: true, normalized: true)) + "]",
        components: "\"normalizer\": {\"type\": \"Lowercase\"}"));

    [Fact]
    public void AddedTokensHonourStripSingleWordAndNormalizedFlags()
    {
        var tok = AddedTokenTokenizer();
        // "<x>" eats the spaces after it, "[M]" the space before it; "FOO" matches only after
        // lowercasing and only as a single word (not inside "foobar").
        int[] expected = [0, 1, 26, 100, 2, 101, 3, 26, 102, 26, 5, 14, 14, 1, 0, 17];
        Assert.Equal(expected, tok.Encode("ab <x>  c [M]d FOO foobar"));
    }

    [Fact]
    public void AddedTokenLookupsAndSpecialFlags()
    {
        var tok = AddedTokenTokenizer();
        Assert.Equal(103, tok.VocabSize);
        Assert.Equal(100, tok.TokenToId("<x>"));
        Assert.Equal("foo", tok.IdToToken(102));
        Assert.Equal("a", tok.IdToToken(0));
        Assert.Null(tok.IdToToken(50));
        Assert.Null(tok.TokenToId("zz"));
        Assert.True(tok.IsSpecial(100));
        Assert.False(tok.IsSpecial(102));
        Assert.False(tok.IsSpecial(0));
        // No decoder: tokens are joined with spaces; special tokens are skipped unless asked for.
        Assert.Equal("a foo", tok.Decode([0, 100, 102]));
        Assert.Equal("a <x> foo", tok.Decode([0, 100, 102], skipSpecialTokens: false));
    }

    // "<s>"=0 (added), "▁"=1, a=2, b=3, c=4, "▁a"=5.
    private static HfTokenizer MetaspaceTokenizer(string scheme) => SyntheticTokenizer.Load(SyntheticTokenizer.Json(
        ["<s>", "\u2581", "a", "b", "c", "\u2581a"], [["\u2581", "a"]],
        addedTokens: "[" + SyntheticTokenizer.Added(0, "<s>") + "]",
        components: $$"""
            "pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "{{scheme}}", "split": true},
            "decoder": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "{{scheme}}", "split": true}
            """));

    [Fact]
    public void MetaspaceFirstPrependsOnlyAtTheStartOfTheInput()
    {
        var tok = MetaspaceTokenizer("first");
        Assert.Equal([5, 1, 3], tok.Encode("a b"));
        // After a leading added token the text no longer starts at offset 0: no "▁" is prepended.
        Assert.Equal([0, 2, 1, 3], tok.Encode("<s>a b"));
        Assert.Equal("a b", tok.Decode([5, 1, 3]));
        Assert.Equal("a b", tok.Decode([0, 2, 1, 3]));
    }

    [Fact]
    public void MetaspaceAlwaysPrependsToEverySegment()
    {
        Assert.Equal([0, 5, 1, 3], MetaspaceTokenizer("always").Encode("<s>a b"));
    }

    [Theory]
    [InlineData(true, new[] { 0, 3 })]
    [InlineData(false, new[] { 0, 0, 3 })]
    public void UnknownCharactersFuseWhenAsked(bool fuse, int[] expected)
    {
        var tok = SyntheticTokenizer.Load(SyntheticTokenizer.Json(["<unk>", "a", "b", "ab"], [["a", "b"]],
            modelExtra: $"\"unk_token\": \"<unk>\", \"fuse_unk\": {(fuse ? "true" : "false")}"));
        Assert.Equal(expected, tok.Encode("xyab"));
    }

    [Fact]
    public void UnknownCharactersWithoutUnkTokenAreDropped()
    {
        var tok = SyntheticTokenizer.Load(SyntheticTokenizer.Json(["a", "b", "ab"], [["a", "b"]]));
        Assert.Equal([2, 0], tok.Encode("axbya"));
    }

    [Theory]
    [InlineData(true, new[] { 3 })]
    [InlineData(false, new[] { 4, 2 })]
    public void IgnoreMergesTakesWholeWordsFromTheVocab(bool ignore, int[] expected)
    {
        var tok = SyntheticTokenizer.Load(SyntheticTokenizer.Json(["a", "b", "c", "abc", "ab"], [["a", "b"]],
            modelExtra: $"\"ignore_merges\": {(ignore ? "true" : "false")}"));
        Assert.Equal(expected, tok.Encode("abc"));
    }

    [Fact]
    public void ContinuingSubwordPrefixIsAddedToInnerSymbolsAndDroppedWhenMerging()
    {
        var tok = SyntheticTokenizer.Load(SyntheticTokenizer.Json(["a", "##b", "ab", "##c"], [["a", "##b"]],
            modelExtra: "\"continuing_subword_prefix\": \"##\""));
        Assert.Equal([2, 3], tok.Encode("abc"));
    }

    [Fact]
    public void MergesAreAppliedByRankNotByPosition()
    {
        // "b c" ranks before "a b", so "abc" becomes a + bc although "ab" appears first.
        var tok = SyntheticTokenizer.Load(SyntheticTokenizer.Json(["a", "b", "c", "ab", "bc"], [["b", "c"], ["a", "b"]]));
        Assert.Equal([0, 4], tok.Encode("abc"));
    }

    [Fact]
    public void StringMergesAreAcceptedLikeArrayMerges()
    {
        string json = SyntheticTokenizer.Json(["a", "b", "ab"], []).Replace("\"merges\": []", "\"merges\": [\"a b\"]");
        Assert.Equal([2], SyntheticTokenizer.Load(json).Encode("ab"));
    }

    [Fact]
    public void TemplateProcessingWrapsOnlyWhenAddingSpecialTokens()
    {
        var tok = SyntheticTokenizer.Load(SyntheticTokenizer.Json(["<s>", "</s>", "a"], [],
            addedTokens: "[" + SyntheticTokenizer.Added(0, "<s>") + "," + SyntheticTokenizer.Added(1, "</s>") + "]",
            components: """
                "post_processor": {"type": "TemplateProcessing",
                  "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                             {"SpecialToken": {"id": "</s>", "type_id": 0}}],
                  "special_tokens": {"<s>": {"id": "<s>", "ids": [0], "tokens": ["<s>"]},
                                     "</s>": {"id": "</s>", "ids": [1], "tokens": ["</s>"]}}}
                """));
        Assert.Equal([0, 2, 2, 1], tok.Encode("aa"));
        Assert.Equal([2, 2], tok.Encode("aa", addSpecialTokens: false));
    }

    [Fact]
    public void LongSingleWordEncodesQuickly()
    {
        // spbpe has no pre-tokenizer, so 200k characters are one BPE word: the merge loop must not be quadratic.
        var tok = HfTokenizer.FromFile(Path.Combine(TokTestPaths.TokFixtures, "spbpe-bytefallback.tokenizer.json"));
        string text = string.Concat(Enumerable.Repeat("the quick brown fox ", 10_000));
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var ids = tok.Encode(text, addSpecialTokens: false);
        sw.Stop();
        Assert.Equal(text, tok.Decode(ids));
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(10), $"encoding took {sw.Elapsed}");
    }
}
