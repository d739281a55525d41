using System.Text.Json;
using Daop.Engine.Load.Gguf;
using Daop.Engine.Load.Tokenizer;
using Daop.Tests.Load.Gguf;

namespace Daop.Tests.Load.Tokenizer;

/// <summary>
/// GPT-OSS's pre-tokenizer: a Split with the o200k regex (openai/gpt-oss-20b tokenizer.json, tiktoken's o200k_base), then
/// ByteLevel without its own regex; and a GGUF's <c>tokenizer.ggml.pre = "gpt-4o"</c>, which llama.cpp reads as the same
/// split. The expected pieces follow from the regex by hand (the first case is llama.cpp's own unicode_regex_split test).
/// </summary>
public sealed class O200kPreTokenizerTests : IDisposable
{
    // As tokenizer.json writes it.
    const string O200k = @"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    readonly string _tmp = Directory.CreateTempSubdirectory("daop-o200k-").FullName;

    public void Dispose() => Directory.Delete(_tmp, recursive: true);

    public static TheoryData<string, string[]> Cases => new()
    {
        { " NASA's GPT-OSS /path/to/file abc/\nfooBAR 123", [" NASA's", " GPT", "-OSS", " /", "path", "/to", "/file", " abc", "/\n", "foo", "BAR", " ", "123"] },
        // A word ends where lower case turns upper; contractions match in any case, after upper-case words too.
        { "I'M HelloWorld McDONALD's don't WE'LL", ["I'M", " Hello", "World", " Mc", "DONALD's", " don't", " WE'LL"] },
        { "12345 x", ["123", "45", " x"] },                                    // numbers in threes
        { "  hello", [" ", " hello"] },                                        // the last space goes with the word
        { "cafe\u0301 ÉCOLE", ["cafe\u0301", " ÉCOLE"] },                      // a combining mark stays in its word
        { "\u01C5emo", ["\u01C5emo"] },                                        // a title-case letter (Lt) starts a word
        { "x\U0001F600y", ["x", "\U0001F600y"] },                              // an astral symbol leads the next word
        { "a\r\n\r\nb", ["a", "\r\n\r\n", "b"] },
        { "hi  ", ["hi", "  "] },
    };

    static string Components => $$"""
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
          {"type": "Split", "pattern": {"Regex": {{JsonSerializer.Serialize(O200k)}}}, "behavior": "Isolated", "invert": false},
          {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}]},
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true}
        """;

    static string[] Bytes => [.. ByteLevelMap.ByteToChar.Select(c => c.ToString())];

    [Theory]
    [MemberData(nameof(Cases))]
    public void TokenizerJsonSplitsAsTheRegexSays(string text, string[] pieces)
    {
        var tok = SyntheticTokenizer.Load(SyntheticTokenizer.Json(Bytes, [], components: Components));
        Assert.Equal(pieces.Select(ByteLevelMap.Encode), tok.PreTokenize(text));
        Assert.Equal(text, tok.Decode(tok.Encode(text)));
    }

    [Theory]
    [InlineData("gpt-4o")]
    [InlineData("llama4")]
    public void GgufGpt4oIsTheSameSplit(string pre)
    {
        var w = new GgufWriter().Add("general.architecture", "gpt-oss")
            .Add("tokenizer.ggml.model", "gpt2").Add("tokenizer.ggml.pre", pre)
            .Add("tokenizer.ggml.tokens", Bytes).Add("tokenizer.ggml.token_type", Enumerable.Repeat(1, 256).ToArray())
            .Add("tokenizer.ggml.merges", new[] { "a b" });
        using var c = GgufCheckpoint.Open(w.Write(Path.Combine(_tmp, "o200k.gguf")));
        var gguf = GgufTokenizer.Load(c.Metadata);
        foreach (var row in Cases)
        {
            var (text, pieces) = ((string)row[0], (string[])row[1]);
            Assert.Equal(pieces.Select(ByteLevelMap.Encode), gguf.PreTokenize(text));
        }
    }
}
