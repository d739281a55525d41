namespace Daop.Engine.Generate;

/// <summary>
/// Splits one streamed chat reply into <see cref="ReplyPart"/>s: a harmony reply (GPT-OSS) into answer, reasoning and
/// calls by its channels (<see cref="HarmonyReply.Stream"/>); another into text and calls by its format's blocks
/// (<see cref="ToolCallStream"/>). One per reply; the reply is decoded with the format's markers shown.
/// </summary>
public sealed class ReplySplitter
{
    readonly HarmonyReply.Stream? _harmony;
    readonly ToolCallStream? _calls;

    ReplySplitter(HarmonyReply.Stream? harmony, ToolCallStream? calls)
    {
        _harmony = harmony;
        _calls = calls;
    }

    /// <summary>
    /// The splitter a reply in <paramref name="format"/> needs, or null when it is plain text: a harmony reply is always
    /// split (its channels are not text for the user); another only when tools were offered (<paramref name="toolCalls"/>).
    /// </summary>
    public static ReplySplitter? For(ToolCallFormat? format, bool toolCalls) =>
        format?.Syntax == Load.Chat.ToolCallSyntax.Harmony ? new(new HarmonyReply.Stream(), null)
        : toolCalls && format != null ? new(null, format.NewStream())
        : null;

    /// <summary>What <paramref name="piece"/> lets go, in order.</summary>
    public IReadOnlyList<ReplyPart> Push(string piece) => _harmony?.Push(piece) ?? Parts(_calls!.Push(piece));

    /// <summary>What is still held at the end of the reply.</summary>
    public IReadOnlyList<ReplyPart> Flush() => _harmony?.Flush() ?? Parts(_calls!.Flush());

    static List<ReplyPart> Parts(IEnumerable<(string? Text, Load.Chat.ToolCall? Call)> parts) => [.. parts.Select(p => new ReplyPart(p.Text, null, p.Call))];
}
