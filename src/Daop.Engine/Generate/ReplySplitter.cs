using System.Text;

namespace Daop.Engine.Generate;

/// <summary>
/// Splits one streamed chat reply into <see cref="ReplyPart"/>s: a harmony reply (GPT-OSS) into answer, reasoning and
/// calls by its channels (<see cref="HarmonyReply.Stream"/>); another into text and calls by its format's blocks
/// (<see cref="ToolCallStream"/>), after the reasoning of a reply that opens with <c>&lt;think&gt;...&lt;/think&gt;</c>
/// (Qwen3) when the template writes such blocks. One per reply; the reply is decoded with the format's markers shown.
/// </summary>
public sealed class ReplySplitter
{
    /// <summary>Opens the reasoning of a thinking model's reply (Qwen3).</summary>
    public const string ThinkOpen = "<think>";

    /// <summary>Closes it.</summary>
    public const string ThinkClose = "</think>";

    const int Undecided = 0, Thinking = 1, Answering = 2;

    readonly HarmonyReply.Stream? _harmony;
    readonly ToolCallStream? _calls;   // null: the answer is plain text
    readonly StringBuilder _held = new();
    int _think;                        // Undecided (leading text may open <think>), Thinking, or Answering
    bool _reasoned;                    // some reasoning has gone out (its leading newlines are dropped)
    bool _answered;                    // some plain answer text has gone out (its leading whitespace is dropped)

    ReplySplitter(HarmonyReply.Stream? harmony, ToolCallStream? calls, bool thinks)
    {
        _harmony = harmony;
        _calls = calls;
        _think = thinks ? Undecided : Answering;
    }

    /// <summary>
    /// The splitter a reply needs, or null when it is plain text: a harmony reply is always split (its channels are not
    /// text for the user); another when tools were offered (<paramref name="toolCalls"/>, by <paramref name="format"/>)
    /// or when the model thinks in <c>&lt;think&gt;</c> blocks (<paramref name="thinks"/>, <see cref="Load.Chat.ChatTemplate.Thinks"/>).
    /// </summary>
    public static ReplySplitter? For(ToolCallFormat? format, bool toolCalls, bool thinks = false) =>
        format?.Syntax == Load.Chat.ToolCallSyntax.Harmony ? new(new HarmonyReply.Stream(), null, false)
        : toolCalls && format != null ? new(null, format.NewStream(), thinks)
        : thinks ? new(null, null, true)
        : null;

    /// <summary>What <paramref name="piece"/> lets go, in order.</summary>
    public IReadOnlyList<ReplyPart> Push(string piece)
    {
        ArgumentNullException.ThrowIfNull(piece);
        if (_harmony != null) return _harmony.Push(piece);
        var output = new List<ReplyPart>();
        if (_think == Answering)
        {
            Answer(output, piece);
            return output;
        }
        for (int i = 0; i < piece.Length && _think != Answering; i++)
        {
            _held.Append(piece[i]);
            if (_think == Undecided)
            {
                string lead = _held.ToString().TrimStart();
                if (lead == ThinkOpen)
                {
                    _think = Thinking;
                    _held.Clear();
                }
                else if (!ThinkOpen.StartsWith(lead, StringComparison.Ordinal)) Answer(output, Take(_held.Length));
            }
            else if (ToolCallStream.EndsWith(_held, ThinkClose))
            {
                _held.Length -= ThinkClose.Length;
                Reason(output, _held.ToString().TrimEnd('\n'));
                _held.Clear();
                _think = Answering;
            }
            if (_think == Answering) Answer(output, piece[(i + 1)..]);
        }
        if (_think == Thinking)
        {
            // Pass on the reasoning that cannot become the closing tag, less the newlines before what is kept.
            int keep = Partial(_held, ThinkClose);
            while (keep < _held.Length && _held[_held.Length - keep - 1] == '\n') keep++;
            Reason(output, Take(_held.Length - keep));
        }
        return output;
    }

    /// <summary>What is still held at the end of the reply.</summary>
    public IReadOnlyList<ReplyPart> Flush()
    {
        if (_harmony != null) return _harmony.Flush();
        var output = new List<ReplyPart>();
        if (_think == Thinking) Reason(output, Take(_held.Length).TrimEnd('\n')); // cut off while thinking
        else if (_think == Undecided) Answer(output, Take(_held.Length));
        if (_calls != null) output.AddRange(Parts(_calls.Flush()));
        return output;
    }

    /// <summary>
    /// Splits a whole reply with this (new) splitter: its answer (trimmed, except a harmony one; null when there is none
    /// and there are calls), its reasoning (null when it has none) and its calls.
    /// </summary>
    public (string? Content, string? Reasoning, IReadOnlyList<Load.Chat.ToolCall> Calls) Whole(string reply)
    {
        ArgumentNullException.ThrowIfNull(reply);
        if (_harmony != null) return HarmonyReply.Parse(reply);
        StringBuilder content = new(), reasoning = new();
        bool reasoned = false;
        var calls = new List<Load.Chat.ToolCall>();
        foreach (var part in Push(reply).Concat(Flush()))
        {
            content.Append(part.Content);
            if (part.Reasoning != null) reasoned = true;
            reasoning.Append(part.Reasoning);
            if (part.Call != null) calls.Add(part.Call);
        }
        string text = content.ToString().Trim();
        return (text.Length == 0 && calls.Count > 0 ? null : text, reasoned ? reasoning.ToString() : null, calls);
    }

    string Take(int n)
    {
        string s = _held.ToString(0, n);
        _held.Remove(0, n);
        return s;
    }

    void Reason(List<ReplyPart> output, string text)
    {
        if (!_reasoned) text = text.TrimStart('\n');
        if (text.Length == 0) return;
        _reasoned = true;
        output.Add(new ReplyPart(null, text, null));
    }

    // Answer text, after the reasoning: through the tool-call splitter, or as it is less its leading whitespace.
    void Answer(List<ReplyPart> output, string text)
    {
        _think = Answering;
        if (_calls != null)
        {
            output.AddRange(Parts(_calls.Push(text)));
            return;
        }
        if (!_answered && _reasoned) text = text.TrimStart();
        if (text.Length == 0) return;
        _answered = true;
        output.Add(new ReplyPart(text, null, null));
    }

    // The length of the longest end of s that begins tag.
    static int Partial(StringBuilder s, string tag)
    {
        for (int n = Math.Min(tag.Length - 1, s.Length); n > 0; n--)
        {
            bool match = true;
            for (int i = 0; i < n && match; i++) match = s[s.Length - n + i] == tag[i];
            if (match) return n;
        }
        return 0;
    }

    static IEnumerable<ReplyPart> Parts(IEnumerable<(string? Text, Load.Chat.ToolCall? Call)> parts) => parts.Select(p => new ReplyPart(p.Text, null, p.Call));
}
