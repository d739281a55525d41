using System.Runtime.CompilerServices;
using Daop.Engine.Load.Tokenizer;
using Daop.Engine.Model;

namespace Daop.Engine.Generate;

/// <summary>Text in, text out: tokenizer + <see cref="Generator"/>, streaming decoded pieces as they complete.</summary>
public sealed class TextGenerator(MoeModel model, HfTokenizer tokenizer)
{
    readonly Generator _gen = new(model);

    /// <summary>The stop ids: the config's EOS ids plus the tokenizer's EOS token.</summary>
    public IReadOnlyCollection<int> DefaultStopIds { get; } =
        model.Config.EosTokenIds.Concat(tokenizer.EosTokenId is { } e ? [e] : Array.Empty<int>())
            .Where(id => id >= 0 && id < model.Config.VocabSize).Distinct().ToArray();

    /// <summary>
    /// Streams the continuation of <paramref name="prompt"/> as text pieces (each piece complete UTF-8;
    /// pieces concatenate to the full decoded text). Runs on the caller's thread between awaits.
    /// </summary>
    public async IAsyncEnumerable<string> GenerateAsync(string prompt, SamplingOptions options, bool addSpecialTokens = true,
        GenerationStats? stats = null, [EnumeratorCancellation] CancellationToken cancel = default)
    {
        var ids = tokenizer.Encode(prompt, addSpecialTokens);
        var streamer = tokenizer.CreateStreamer();
        var o = options.StopTokenIds == null ? options with { StopTokenIds = DefaultStopIds } : options;
        foreach (int id in _gen.Generate(ids, o, stats, cancel))
        {
            string piece = streamer.Append(id);
            if (piece.Length > 0) yield return piece;
            await Task.Yield();
        }
        string tail = streamer.Flush();
        if (tail.Length > 0) yield return tail;
    }

    /// <summary>The whole continuation as one string.</summary>
    public string Generate(string prompt, SamplingOptions options, bool addSpecialTokens = true, GenerationStats? stats = null)
    {
        var ids = tokenizer.Encode(prompt, addSpecialTokens);
        var o = options.StopTokenIds == null ? options with { StopTokenIds = DefaultStopIds } : options;
        return tokenizer.Decode(_gen.Generate(ids, o, stats).ToArray());
    }
}
