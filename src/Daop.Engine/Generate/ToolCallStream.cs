using System.Text;
using Daop.Engine.Load.Chat;

namespace Daop.Engine.Generate;

/// <summary>
/// Splits a streamed reply into text and tool calls as it comes, in one <see cref="ToolCallFormat"/>: text outside the
/// blocks goes on as soon as it cannot be the start of the format's opening marker (whitespace is held until text follows
/// it, so the whitespace around calls and at the ends is not sent: the text is what <see cref="ToolCallFormat.Parse"/>
/// gives), a block's calls as soon as the block ends. A block that is not calls goes on as text. One per reply.
/// </summary>
public class ToolCallStream
{
    readonly ToolCallFormat _format;
    readonly StringBuilder _held = new(); // outside a block: text not yet passed on; inside: the block after its opening marker
    IToolCallBlock? _block;               // inside a block: its reader
    bool _texted;                         // some text has gone out (whitespace before the first text is dropped)

    /// <summary>A splitter for a reply in <paramref name="format"/>.</summary>
    /// <exception cref="ArgumentException"><paramref name="format"/> is harmony's, whose replies are not blocks: use its <see cref="ToolCallFormat.NewStream"/>.</exception>
    public ToolCallStream(ToolCallFormat format)
    {
        _format = format ?? throw new ArgumentNullException(nameof(format));
        if (format.Syntax == ToolCallSyntax.Harmony && GetType() == typeof(ToolCallStream))
            throw new ArgumentException("harmony replies are split by HarmonyReply.Stream (ToolCallFormat.NewStream), not by blocks", nameof(format));
    }

    /// <summary>What <paramref name="piece"/> lets go: text pieces and calls, in order.</summary>
    public virtual IEnumerable<(string? Text, ToolCall? Call)> Push(string piece)
    {
        ArgumentNullException.ThrowIfNull(piece);
        var output = new List<(string?, ToolCall?)>();
        string open = _format.Open;
        foreach (char c in piece)
        {
            _held.Append(c);
            if (_block != null)
            {
                if (_block.Feed(_held)) EndBlock(output);
                continue;
            }
            if (!EndsWith(_held, open)) continue;
            _held.Length -= open.Length;
            Text(output, _held.ToString().TrimEnd());
            _held.Clear();
            _block = _format.NewBlock();
        }
        if (_block == null)
        {
            // Pass on what cannot become the opening marker, less the whitespace before what is kept.
            string held = _held.ToString();
            int cut = held.Length - PartialOpen(held, open);
            while (cut > 0 && char.IsWhiteSpace(held[cut - 1])) cut--;
            if (cut > 0)
            {
                Text(output, held[..cut]);
                _held.Remove(0, cut);
            }
        }
        return output;
    }

    /// <summary>What is still held at the end of the reply: an unfinished block as calls when its reader takes it for them, else as text.</summary>
    public virtual IEnumerable<(string? Text, ToolCall? Call)> Flush()
    {
        var output = new List<(string?, ToolCall?)>();
        if (_block != null) EndBlock(output);
        else if (_held.ToString().Trim().Length > 0) Text(output, _held.ToString());
        _held.Clear();
        return output;
    }

    void Text(List<(string?, ToolCall?)> output, string text)
    {
        if (!_texted) text = text.TrimStart();
        if (text.Length == 0) return;
        _texted = true;
        output.Add((text, null));
    }

    // The block read so far: its calls, or else text (the opening marker included).
    void EndBlock(List<(string?, ToolCall?)> output)
    {
        string inside = _held.ToString();
        var calls = _block!.Calls(inside);
        _held.Clear();
        _block = null;
        if (calls != null)
        {
            foreach (var call in calls) output.Add((null, call));
            return;
        }
        _texted = true;
        output.Add((_format.Open + inside, null));
    }

    /// <summary>Whether <paramref name="text"/> ends with <paramref name="tag"/>.</summary>
    internal static bool EndsWith(StringBuilder text, string tag)
    {
        if (text.Length < tag.Length) return false;
        for (int i = 0; i < tag.Length; i++)
            if (text[text.Length - tag.Length + i] != tag[i]) return false;
        return true;
    }

    // The length of the longest end of s that begins open.
    static int PartialOpen(string s, string open)
    {
        for (int n = Math.Min(open.Length - 1, s.Length); n > 0; n--)
            if (string.CompareOrdinal(s, s.Length - n, open, 0, n) == 0) return n;
        return 0;
    }
}
