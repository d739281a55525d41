namespace Daop.Engine.Load.Tokenizer;

/// <summary>
/// Turns generated token ids into text as they arrive. A token may end inside a UTF-8 character
/// (byte-level BPE, or "&lt;0xE6&gt;" byte-fallback tokens), so text is only released once it no longer
/// ends in U+FFFD; the held-back bytes come out with the token that completes them, or in <see cref="Flush"/>.
/// </summary>
/// <remarks>
/// Uses the incremental scheme of text-generation-inference: decode the tokens of the last emitted
/// step together with the new ones and release only the difference. Decoding with one step of
/// context keeps decoders that treat the first token specially (Strip, Metaspace) consistent, so the
/// concatenated output equals <see cref="HfTokenizer.Decode(ReadOnlySpan{int}, bool)"/> of all ids, and each call costs
/// O(tokens since the last release) rather than O(all tokens). The one exception is invalid UTF-8
/// from byte-fallback tokens: Decode turns a whole invalid byte run into U+FFFDs, while the streamer
/// has already released the valid characters at its start.
/// </remarks>
public sealed class TextStreamer
{
    private readonly HfTokenizer _tokenizer;
    private readonly bool _skipSpecialTokens;
    private readonly IReadOnlySet<string>? _shown; // special tokens written out although skipped otherwise
    private readonly List<int> _ids = [];
    private int _prefixOffset; // first id of the context window (the last released step)
    private int _readOffset;   // first id not yet released

    internal TextStreamer(HfTokenizer tokenizer, bool skipSpecialTokens, IReadOnlySet<string>? shownSpecialTokens)
    {
        _tokenizer = tokenizer;
        _skipSpecialTokens = skipSpecialTokens;
        _shown = shownSpecialTokens;
    }

    /// <summary>Adds one generated id and returns the text that is now complete (often empty).</summary>
    public string Append(int id)
    {
        _ids.Add(id);
        return Release(final: false);
    }

    /// <summary>Returns whatever is still held back (an incomplete character becomes U+FFFD) and resets.</summary>
    public string Flush()
    {
        string text = Release(final: true);
        _ids.Clear();
        _prefixOffset = _readOffset = 0;
        return text;
    }

    private string Release(bool final)
    {
        var span = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_ids);
        string prefixText = _tokenizer.Decode(span[_prefixOffset.._readOffset], _skipSpecialTokens, _shown);
        string newText = _tokenizer.Decode(span[_prefixOffset..], _skipSpecialTokens, _shown);
        if (!newText.StartsWith(prefixText, StringComparison.Ordinal))
        {
            // The context decodes differently once new ids follow it: a byte-fallback run that was a
            // valid character became invalid as a whole (the Rust decoder then turns every byte into
            // U+FFFD). Released text cannot be taken back, so decode the unreleased ids on their own.
            prefixText = "";
            newText = _tokenizer.Decode(span[_readOffset..], _skipSpecialTokens, _shown);
        }
        if (newText.Length <= prefixText.Length || !final && newText.EndsWith('\uFFFD'))
            return "";
        _prefixOffset = _readOffset;
        _readOffset = _ids.Count;
        if (_prefixOffset > 4096)
        {
            // Ids before the context window are never decoded again; drop them to bound memory.
            _ids.RemoveRange(0, _prefixOffset);
            _readOffset -= _prefixOffset;
            _prefixOffset = 0;
        }
        return newText[prefixText.Length..];
    }
}
