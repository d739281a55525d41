using Daop.Engine.Load;
using Daop.Engine.Load.Tokenizer;

namespace Daop.Tests.Load.Tokenizer;

/// <summary>Bad tokenizer files fail with a ModelLoadException naming the file and the field or type.</summary>
public class HfTokenizerErrorTests
{
    private static readonly string[] Vocab = ["a", "b", "ab"];

    private static string LoadError(string json) => Assert.Throws<ModelLoadException>(() => SyntheticTokenizer.Load(json)).Message;

    [Fact]
    public void MissingFile()
    {
        string dir = TokTestPaths.NewTempDir();
        try
        {
            var e = Assert.Throws<ModelLoadException>(() => HfTokenizer.FromDirectory(dir));
            Assert.StartsWith("tokenizer.json: file not found", e.Message);
        }
        finally
        {
            Directory.Delete(dir);
        }
    }

    [Fact]
    public void InvalidJson()
    {
        Assert.StartsWith("tokenizer.json: invalid JSON", LoadError("{ \"model\": "));
    }

    [Fact]
    public void UnknownModelType()
    {
        string json = SyntheticTokenizer.Json(Vocab, []).Replace("\"type\": \"BPE\"", "\"type\": \"Unigram\"");
        Assert.Equal("tokenizer.json: model type 'Unigram' is not supported", LoadError(json));
    }

    [Fact]
    public void MissingModel()
    {
        Assert.Equal("tokenizer.json: model is missing", LoadError("{ \"added_tokens\": [] }"));
    }

    [Fact]
    public void UnknownPreTokenizerType()
    {
        string json = SyntheticTokenizer.Json(Vocab, [], components: "\"pre_tokenizer\": {\"type\": \"Foo\"}");
        Assert.Equal("tokenizer.json: pre_tokenizer type 'Foo' is not supported", LoadError(json));
    }

    [Fact]
    public void UnknownTypeInsideASequenceNamesItsPath()
    {
        string json = SyntheticTokenizer.Json(Vocab, [], components:
            "\"normalizer\": {\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"NFC\"}, {\"type\": \"Precompiled\"}]}");
        Assert.Equal("tokenizer.json: normalizer.normalizers[1] type 'Precompiled' is not supported", LoadError(json));
    }

    [Theory]
    [InlineData("decoder", "CTC")]
    [InlineData("post_processor", "Bogus")]
    public void UnknownDecoderAndPostProcessorTypes(string field, string type)
    {
        string json = SyntheticTokenizer.Json(Vocab, [], components: $"\"{field}\": {{\"type\": \"{type}\"}}");
        Assert.Equal($"tokenizer.json: {field} type '{type}' is not supported", LoadError(json));
    }

    [Fact]
    public void MergeWithATokenOutsideTheVocab()
    {
        string json = SyntheticTokenizer.Json(Vocab, [["a", "z"]]);
        Assert.Equal("tokenizer.json: model.merges[0] 'a z' uses a token that is not in model.vocab", LoadError(json));
    }

    [Fact]
    public void BadSplitBehaviour()
    {
        string json = SyntheticTokenizer.Json(Vocab, [], components:
            "\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"String\": \" \"}, \"behavior\": \"Sideways\", \"invert\": false}");
        Assert.Equal("tokenizer.json: pre_tokenizer.behavior 'Sideways' is not supported", LoadError(json));
    }

    [Fact]
    public void ConfigTokenMissingFromVocabulary()
    {
        string dir = TokTestPaths.NewTempDir();
        try
        {
            File.WriteAllText(Path.Combine(dir, "tokenizer.json"), SyntheticTokenizer.Json(Vocab, []));
            File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), "{\"bos_token\": {\"content\": \"<s>\"}}");
            var e = Assert.Throws<ModelLoadException>(() => HfTokenizer.FromDirectory(dir));
            Assert.Equal("tokenizer_config.json: bos_token '<s>' is not in the vocabulary of tokenizer.json", e.Message);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
