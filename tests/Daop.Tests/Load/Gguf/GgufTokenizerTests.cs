using Daop.Engine.Api;
using Daop.Engine.Load;
using Daop.Engine.Load.Chat;
using Daop.Engine.Load.Gguf;
using Daop.Engine.Load.Tokenizer;

namespace Daop.Tests.Load.Gguf;

/// <summary>
/// Tokenizers built from GGUF metadata encode as llama.cpp encodes with the same file (llama-tokenize: BOS per the file,
/// special tokens parsed, as tests/tools/gguf-references.py records), decode back to the text, and carry the chat template.
/// </summary>
public sealed class GgufTokenizerTests : IDisposable
{
    readonly LlamaCppReference _ref = new();
    readonly string _tmp = Directory.CreateTempSubdirectory("daop-gguf-tok-").FullName;

    public void Dispose()
    {
        _ref.Dispose();
        Directory.Delete(_tmp, recursive: true);
    }

    public static IEnumerable<object[]> Vocabularies() =>
        new[] { "vocab-gpt2.gguf", "vocab-qwen2.gguf", "vocab-spm.gguf", "tiny-mixtral-code-bf16.gguf" }.Select(v => new object[] { v });

    HfTokenizer Load(string file)
    {
        using var c = GgufCheckpoint.Open(_ref.Path(file, _tmp));
        return GgufTokenizer.Load(c.Metadata);
    }

    [Theory]
    [MemberData(nameof(Vocabularies))]
    public void EncodesAsLlamaCppAndDecodesBack(string file)
    {
        var tok = Load(file);
        foreach (var sample in _ref.Manifest.GetProperty("tokenize").GetProperty(file).EnumerateArray())
        {
            string text = sample.GetProperty("text").GetString()!;
            int[] want = sample.GetProperty("ids").EnumerateArray().Select(x => x.GetInt32()).ToArray();
            int[] ids = tok.Encode(text);
            Assert.True(want.SequenceEqual(ids), $"{file} '{text}': Daop [{string.Join(", ", ids)}], llama.cpp [{string.Join(", ", want)}]");
            // Special tokens decode to their text; a BOS the file adds is not part of the text.
            var body = ids.Length > 0 && ids[0] == tok.BosTokenId && !text.StartsWith("<s>", StringComparison.Ordinal) ? ids[1..] : ids;
            Assert.Equal(text, tok.Decode(body, skipSpecialTokens: false));
        }
    }

    [Fact]
    public void EmbeddedModelGgufTokenizerEqualsItsTokenizerJson()
    {
        var gguf = Load("tiny-mixtral-code-bf16.gguf");
        var json = HfTokenizer.FromDirectory(TestPaths.DefaultModel);
        foreach (var sample in _ref.Manifest.GetProperty("tokenize").GetProperty("tiny-mixtral-code-bf16.gguf").EnumerateArray())
        {
            string text = sample.GetProperty("text").GetString()!;
            Assert.Equal(json.Encode(text), gguf.Encode(text));
        }
        Assert.Equal(json.VocabSize, gguf.VocabSize);
        Assert.Equal(json.EosTokenId, gguf.EosTokenId);
    }

    [Fact]
    public void ChatTemplateAndStopTokensComeFromTheMetadata()
    {
        using var gguf = DaopModel.Load(_ref.Path("tiny-mixtral-code-bf16.gguf", _tmp));
        using var folder = DaopModel.Load(TestPaths.DefaultModel);
        var chat = new[] { new ChatMessage("system", "terse"), new ChatMessage("user", "Sort a list") };
        Assert.NotNull(gguf.ChatTemplate);
        Assert.Equal(folder.RenderChat(chat), gguf.RenderChat(chat));
        Assert.Equal(folder.ChatTokens(chat), gguf.ChatTokens(chat));
        Assert.Equal(folder.StopTokenIds.Order(), gguf.StopTokenIds.Order());
        Assert.Equal(folder.ChatStopTokenIds.Order(), gguf.ChatStopTokenIds.Order());
    }

    [Theory]
    [InlineData("tokenizer.ggml.model", "'wordpiece' is not supported")]
    [InlineData("tokenizer.ggml.pre", "'gpt-5' is not a pre-tokenizer llama.cpp knows")]
    [InlineData("tokenizer.ggml.merges", "is missing (a gpt2 vocabulary needs its merges)")]
    [InlineData("tokenizer.ggml.token_type", "has 2 entries for 3 tokens")]
    [InlineData("tokenizer.ggml.tokens[2]", "'a' repeats token 0")]
    [InlineData("tokenizer.ggml.eos_token_id", "is 7, not one of the 3 tokens")]
    [InlineData("tokenizer.ggml.scores", "is missing (a SentencePiece vocabulary merges by score)")]
    [InlineData("tokenizer.ggml.merges[0]", "'ab' is not two tokens separated by a space")]
    public void BadVocabulariesNameTheKey(string key, string message)
    {
        var w = new GgufWriter().Add("general.architecture", "llama");
        string[] tokens = key == "tokenizer.ggml.tokens[2]" ? ["a", "b", "a"] : ["a", "b", "ab"];
        w.Add("tokenizer.ggml.model", key switch { "tokenizer.ggml.model" => "wordpiece", "tokenizer.ggml.scores" => "llama", _ => "gpt2" });
        w.Add("tokenizer.ggml.pre", key == "tokenizer.ggml.pre" ? "gpt-5" : "gpt-2");
        w.Add("tokenizer.ggml.tokens", tokens);
        w.Add("tokenizer.ggml.token_type", key == "tokenizer.ggml.token_type" ? new[] { 1, 1 } : [1, 1, 1]);
        if (key != "tokenizer.ggml.merges") w.Add("tokenizer.ggml.merges", key == "tokenizer.ggml.merges[0]" ? new[] { "ab" } : ["a b"]);
        if (key == "tokenizer.ggml.eos_token_id") w.Add(key, 7u);
        string path = w.Write(Path.Combine(_tmp, "bad.gguf"));
        using var c = GgufCheckpoint.Open(path);
        var e = Assert.Throws<ModelLoadException>(() => GgufTokenizer.Load(c.Metadata));
        Assert.StartsWith($"{path}: key '{key}' {message}", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void SentencePieceMergesFollowScoresNotTokenOrder()
    {
        // "▁ab" can form as "▁a"+"b" or "▁"+"ab"; whichever pair's result scores higher merges first, as in llama.cpp.
        string[] tokens = ["<unk>", "<s>", "</s>", "▁", "a", "b", "▁a", "ab", "▁ab", "c", "bc"];
        var w = new GgufWriter().Add("general.architecture", "llama")
            .Add("tokenizer.ggml.model", "llama").Add("tokenizer.ggml.tokens", tokens)
            .Add("tokenizer.ggml.scores", new[] { 0f, 0, 0, -1, -1, -1, -5, -2, -3, -1, -4 })
            .Add("tokenizer.ggml.token_type", new[] { 2, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1 })
            .Add("tokenizer.ggml.bos_token_id", 1u).Add("tokenizer.ggml.eos_token_id", 2u).Add("tokenizer.ggml.unknown_token_id", 0u);
        using var c = GgufCheckpoint.Open(w.Write(Path.Combine(_tmp, "spm.gguf")));
        var tok = GgufTokenizer.Load(c.Metadata);
        // "abc": ab (-2) beats bc (-4): ▁ + ab + c, then ▁ab (-3) → [▁ab, c]; with BOS first (add_bos defaults on for llama).
        Assert.Equal([1, 8, 9], tok.Encode("abc"));
        Assert.Equal("abc", tok.Decode([1, 8, 9]));
        // Unknown characters fall back to bytes only when the vocabulary has byte tokens; here they are <unk>.
        Assert.Equal([1, 3, 0], tok.Encode("é"));
    }
}
