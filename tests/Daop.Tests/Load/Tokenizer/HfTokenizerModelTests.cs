using System.Text;
using Daop.Engine.Load.Tokenizer;

namespace Daop.Tests.Load.Tokenizer;

/// <summary>The embedded model's tokenizer (models/tiny-mixtral-code, byte-level BPE) and streaming details.</summary>
public class HfTokenizerModelTests
{
    private static readonly Lazy<HfTokenizer> Tiny = new(() => HfTokenizer.FromDirectory(TokTestPaths.TinyModel));

    [Theory]
    [InlineData("def fibonacci(n):\n")]
    [InlineData("import os\nimport sys\n\n")]
    [InlineData("The quick brown fox")]
    public void PromptsRoundTrip(string prompt)
    {
        var ids = Tiny.Value.Encode(prompt);
        Assert.NotEmpty(ids);
        Assert.All(ids, id => Assert.InRange(id, 0, Tiny.Value.VocabSize - 1));
        Assert.Equal(prompt, Tiny.Value.Decode(ids));
    }

    [Fact]
    public void ConfigTokensAndVocabulary()
    {
        var tok = Tiny.Value;
        // tokenizer_config.json: bos_token = eos_token = "<|endoftext|>", added token id 0.
        Assert.Equal(0, tok.BosTokenId);
        Assert.Equal(0, tok.EosTokenId);
        Assert.Equal(4096, tok.VocabSize);
        Assert.True(tok.IsSpecial(0));
        Assert.Equal(1, tok.TokenToId("<|im_start|>"));
        // FromFile does not read tokenizer_config.json.
        Assert.Null(HfTokenizer.FromFile(Path.Combine(TokTestPaths.TinyModel, "tokenizer.json")).BosTokenId);
    }

    [Fact]
    public void ChatMarkersAreSingleIdsAndSkippedOnDecode()
    {
        var tok = Tiny.Value;
        var ids = tok.Encode("<|im_start|>user\nhi<|im_end|>\n");
        Assert.Equal(1, ids[0]);
        Assert.Contains(2, ids);
        Assert.Equal("user\nhi\n", tok.Decode(ids));
        Assert.Equal("<|im_start|>user\nhi<|im_end|>\n", tok.Decode(ids, skipSpecialTokens: false));
    }

    [Fact]
    public void ByteLevelStreamerHoldsBackSplitCharacters()
    {
        var tok = Tiny.Value;
        // An emoji is 4 UTF-8 bytes; in this small vocab it spans several byte-level tokens.
        var ids = tok.Encode("ok \U0001F642!");
        var streamer = tok.CreateStreamer();
        var pieces = ids.Select(streamer.Append).ToList();
        pieces.Add(streamer.Flush());
        Assert.All(pieces, p => Assert.DoesNotContain('\uFFFD', p));
        Assert.Contains("\U0001F642", pieces.Single(p => p.Contains("\U0001F642")));
        Assert.Equal("ok \U0001F642!", string.Concat(pieces));
    }

    [Fact]
    public void ByteFallbackStreamerReleasesACharacterWhenItsLastByteArrives()
    {
        var tok = HfTokenizer.FromFile(Path.Combine(TokTestPaths.TokFixtures, "spbpe-bytefallback.tokenizer.json"));
        int[] bytes = new[] { "<0xE6>", "<0x97>", "<0xA5>" }.Select(t => tok.TokenToId(t)!.Value).ToArray();
        var streamer = tok.CreateStreamer();
        Assert.Equal("", streamer.Append(bytes[0]));
        Assert.Equal("", streamer.Append(bytes[1]));
        Assert.Equal("\u65E5", streamer.Append(bytes[2]));
        // An unfinished character comes out as U+FFFD only when flushed.
        Assert.Equal("", streamer.Append(bytes[0]));
        Assert.Equal("\uFFFD", streamer.Flush());
    }

    [Fact]
    public void StreamerSkipsOrKeepsSpecialTokens()
    {
        var tok = Tiny.Value;
        var ids = tok.Encode("<|im_start|>a b<|im_end|>");
        string Stream(bool skip)
        {
            var s = tok.CreateStreamer(skip);
            var sb = new StringBuilder();
            foreach (int id in ids)
                sb.Append(s.Append(id));
            return sb.Append(s.Flush()).ToString();
        }
        Assert.Equal("a b", Stream(skip: true));
        Assert.Equal("<|im_start|>a b<|im_end|>", Stream(skip: false));
    }

    [Fact]
    public void UnknownIdsAreIgnoredByDecode()
    {
        Assert.Equal("", Tiny.Value.Decode([99_999, -1]));
    }
}
