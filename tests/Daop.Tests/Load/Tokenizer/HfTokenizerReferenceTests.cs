using System.Text;
using System.Text.Json;
using Daop.Engine.Load.Tokenizer;

namespace Daop.Tests.Load.Tokenizer;

/// <summary>
/// Every sample of tokenizer-reference.json (produced by the Rust tokenizers library) for each of
/// the three fixture tokenizers: encode with and without special tokens, tokens, decode, streaming.
/// </summary>
public class HfTokenizerReferenceTests
{
    private static readonly string[] Names = ["bytelevel-bpe", "spbpe-bytefallback", "qwen-regex-bpe"];
    private static readonly Lazy<JsonDocument> Reference =
        new(() => JsonDocument.Parse(File.ReadAllText(Path.Combine(TokTestPaths.TokFixtures, "tokenizer-reference.json"))));
    private static readonly Dictionary<string, HfTokenizer> Tokenizers = new();

    private static HfTokenizer Load(string name)
    {
        lock (Tokenizers)
        {
            if (!Tokenizers.TryGetValue(name, out var tok))
                Tokenizers[name] = tok = HfTokenizer.FromFile(Path.Combine(TokTestPaths.TokFixtures, name + ".tokenizer.json"));
            return tok;
        }
    }

    public static IEnumerable<object[]> Samples()
    {
        foreach (var name in Names)
        {
            int count = Reference.Value.RootElement.GetProperty(name).GetArrayLength();
            for (int i = 0; i < count; i++)
                yield return [name, i];
        }
    }

    private static JsonElement Sample(string name, int index) => Reference.Value.RootElement.GetProperty(name)[index];

    private static int[] Ints(JsonElement e) => e.EnumerateArray().Select(x => x.GetInt32()).ToArray();

    [Fact]
    public void ReferenceHasSeventeenSamplesPerTokenizer()
    {
        foreach (var name in Names)
            Assert.Equal(17, Reference.Value.RootElement.GetProperty(name).GetArrayLength());
    }

    [Theory]
    [MemberData(nameof(Samples))]
    public void EncodeWithSpecialTokensMatchesReference(string name, int index)
    {
        var s = Sample(name, index);
        Assert.Equal(Ints(s.GetProperty("ids")), Load(name).Encode(s.GetProperty("text").GetString()!, addSpecialTokens: true));
    }

    [Theory]
    [MemberData(nameof(Samples))]
    public void EncodeWithoutSpecialTokensMatchesReference(string name, int index)
    {
        var s = Sample(name, index);
        Assert.Equal(Ints(s.GetProperty("ids_no_special")), Load(name).Encode(s.GetProperty("text").GetString()!, addSpecialTokens: false));
    }

    [Theory]
    [MemberData(nameof(Samples))]
    public void IdsMapToReferenceTokens(string name, int index)
    {
        var s = Sample(name, index);
        var tok = Load(name);
        var expected = s.GetProperty("tokens").EnumerateArray().Select(x => x.GetString()).ToArray();
        Assert.Equal(expected, Ints(s.GetProperty("ids")).Select(tok.IdToToken).ToArray());
    }

    [Theory]
    [MemberData(nameof(Samples))]
    public void DecodeMatchesReference(string name, int index)
    {
        var s = Sample(name, index);
        var tok = Load(name);
        string expected = s.GetProperty("decoded").GetString()!;
        Assert.Equal(expected, tok.Decode(Ints(s.GetProperty("ids_no_special")), skipSpecialTokens: true));
        // With specials skipped, the post-processor's tokens must not change the text either.
        Assert.Equal(expected, tok.Decode(Ints(s.GetProperty("ids")), skipSpecialTokens: true));
    }

    [Theory]
    [MemberData(nameof(Samples))]
    public void StreamerOutputConcatenatesToDecodedText(string name, int index)
    {
        var s = Sample(name, index);
        var streamer = Load(name).CreateStreamer();
        var sb = new StringBuilder();
        foreach (int id in Ints(s.GetProperty("ids")))
        {
            string piece = streamer.Append(id);
            // Released text never ends in a half character.
            Assert.False(piece.EndsWith('\uFFFD'), $"streamer released an incomplete character after id {id}");
            sb.Append(piece);
        }
        sb.Append(streamer.Flush());
        Assert.Equal(s.GetProperty("decoded").GetString(), sb.ToString());
    }
}
