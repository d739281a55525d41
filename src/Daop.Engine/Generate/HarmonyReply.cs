using System.Text;
using Daop.Engine.Load.Chat;

namespace Daop.Engine.Generate;

/// <summary>
/// One piece of a split reply: text of the answer (<see cref="Content"/>), of the reasoning (<see cref="Reasoning"/>),
/// or a whole tool call (<see cref="Call"/>); one of the three is set.
/// </summary>
/// <param name="Content">Answer text (OpenAI's <c>content</c>), or null.</param>
/// <param name="Reasoning">Reasoning text (<c>reasoning_content</c>, as vLLM and llama.cpp's server name it), or null.</param>
/// <param name="Call">A tool call, or null.</param>
public readonly record struct ReplyPart(string? Content, string? Reasoning, ToolCall? Call);

/// <summary>
/// Replies in OpenAI's harmony format (GPT-OSS, <see cref="ToolCallSyntax.Harmony"/>), decoded with the format's special
/// tokens shown (<see cref="Markers"/>). The prompt ends with <c>&lt;|start|&gt;assistant</c>, so a reply is messages
/// <c>[to=R]&lt;|channel|&gt;C[ to=R][ [&lt;|constrain|&gt;]TYPE]&lt;|message|&gt;BODY&lt;|end|&gt;</c>, the next one after
/// <c>&lt;|start|&gt;assistant</c>, the last ended by <c>&lt;|return|&gt;</c> or <c>&lt;|call|&gt;</c> (or by the end of the
/// text: both are stop tokens, not decoded). The <c>analysis</c> channel is reasoning; <c>final</c>, and
/// <c>commentary</c> that goes to no one (a preamble), is the answer; a message to <c>functions.NAME</c> is a call to
/// NAME with the body as its arguments. Text outside this shape is kept as answer text, markers included, so nothing the
/// model wrote is lost.
/// </summary>
public static class HarmonyReply
{
    /// <summary>Starts a message (then its role).</summary>
    public const string Start = "<|start|>";
    /// <summary>Starts a message's channel name.</summary>
    public const string Channel = "<|channel|>";
    /// <summary>Ends a message's header; its body follows.</summary>
    public const string Message = "<|message|>";
    /// <summary>Ends a message that more may follow.</summary>
    public const string End = "<|end|>";
    /// <summary>Ends the reply (a stop token).</summary>
    public const string Return = "<|return|>";
    /// <summary>Ends a tool call, and the reply with it (a stop token).</summary>
    public const string Call = "<|call|>";
    /// <summary>Precedes a call's content type (<c>json</c>).</summary>
    public const string Constrain = "<|constrain|>";

    /// <summary>The format's special tokens: a reply to be split is decoded with these shown.</summary>
    public static IReadOnlyList<string> Markers { get; } = [Start, Channel, Message, End, Return, Call, Constrain];

    /// <summary>Longest message header (role, channel, recipient, content type) read before the text is taken for answer text.</summary>
    public const int MaxHeaderLength = 256;

    /// <summary>
    /// Splits a whole reply into its answer (null when there is none and there are calls), its reasoning (null when it
    /// has none) and its calls, as <see cref="Stream"/> does.
    /// </summary>
    public static (string? Content, string? Reasoning, IReadOnlyList<ToolCall> Calls) Parse(string reply)
    {
        ArgumentNullException.ThrowIfNull(reply);
        var stream = new Stream();
        StringBuilder content = new(), reasoning = new();
        bool reasoned = false;
        var calls = new List<ToolCall>();
        foreach (var part in stream.Push(reply).Concat(stream.Flush()))
        {
            content.Append(part.Content);
            if (part.Reasoning != null)
            {
                reasoned = true;
                reasoning.Append(part.Reasoning);
            }
            if (part.Call != null) calls.Add(part.Call);
        }
        string text = content.ToString();
        return (text.Length == 0 && calls.Count > 0 ? null : text, reasoned ? reasoning.ToString() : null, calls);
    }

    /// <summary>
    /// Splits one streamed reply as it comes: message text goes on as soon as it cannot be the start of a marker, a call
    /// when its message ends. One per reply.
    /// </summary>
    public sealed class Stream
    {
        static readonly string[] BodyEnds = [End, Return, Call, Start]; // Start: a message the model did not end

        readonly StringBuilder _held = new(); // the header so far, or the body not yet passed on (a call's whole body)
        bool _inBody;
        string? _channel;                     // the body's channel
        string? _recipient;                   // the body's recipient ("functions.NAME"), or null
        string _header = "";                  // the body's header as written, for a message to a recipient that is not a call

        /// <summary>What <paramref name="piece"/> lets go, in order.</summary>
        public IReadOnlyList<ReplyPart> Push(string piece)
        {
            ArgumentNullException.ThrowIfNull(piece);
            var output = new List<ReplyPart>();
            foreach (char c in piece)
            {
                _held.Append(c);
                if (_inBody)
                {
                    foreach (string end in BodyEnds)
                    {
                        if (!ToolCallStream.EndsWith(_held, end)) continue;
                        _held.Length -= end.Length;
                        EndBody(output);
                        if (end == Start) _held.Append(Start);
                        break;
                    }
                }
                else if (ToolCallStream.EndsWith(_held, Message)) BeginBody(output);
                else if (_held.Length > MaxHeaderLength || !CouldBeHeader(_held)) BadHeader(output);
            }
            if (_inBody && _recipient == null)
            {
                // Pass on what cannot become a marker that ends the body.
                int keep = PartialMarker(_held);
                if (_held.Length > keep)
                {
                    Emit(output, _held.ToString(0, _held.Length - keep));
                    _held.Remove(0, _held.Length - keep);
                }
            }
            return output;
        }

        /// <summary>What is still held at the end of the reply: the last message's rest, a call cut off by its stop token as a call.</summary>
        public IReadOnlyList<ReplyPart> Flush()
        {
            var output = new List<ReplyPart>();
            if (_inBody) EndBody(output);
            else if (_held.Length > 0 && _held.ToString() is var header && header != Start + "assistant" && header.Trim().Length > 0)
                output.Add(new ReplyPart(header, null, null));
            _held.Clear();
            return output;
        }

        void BeginBody(List<ReplyPart> output)
        {
            _held.Length -= Message.Length;
            string header = _header = _held.ToString();
            _held.Clear();
            // "<|start|>assistant" between messages, then the channel and the recipient in either order.
            if (header.StartsWith(Start, StringComparison.Ordinal))
            {
                int role = header.IndexOfAny([' ', '<'], Start.Length);
                header = role < 0 ? "" : header[role..];
            }
            _channel = null;
            _recipient = null;
            foreach (string word in header.Replace(Channel, " " + Channel).Replace(Constrain, " ").Split(' ', StringSplitOptions.RemoveEmptyEntries))
            {
                if (word.StartsWith(Channel, StringComparison.Ordinal)) _channel = word[Channel.Length..];
                else if (word.StartsWith("to=", StringComparison.Ordinal)) _recipient = word[3..];
            }
            _inBody = true;
            if (_channel == null && _recipient == null)
            {
                // Not a header the format knows: the text as it came, and what follows as answer text.
                _channel = "final";
                Emit(output, _header + Message);
            }
        }

        void EndBody(List<ReplyPart> output)
        {
            string body = _held.ToString();
            _held.Clear();
            _inBody = false;
            if (_recipient != null)
            {
                // Only functions.NAME is a tool the client offered; other recipients (the built-in browser and python) are text.
                const string Functions = "functions.";
                string name = _recipient.StartsWith(Functions, StringComparison.Ordinal) ? _recipient[Functions.Length..] : "";
                using var doc = ToolCallJson.Document(body.Trim());
                if (name.Length > 0 && doc?.RootElement.ValueKind == System.Text.Json.JsonValueKind.Object)
                    output.Add(new ReplyPart(null, null, new ToolCall(ToolCall.NewId(), name, body.Trim())));
                else
                    output.Add(new ReplyPart(_header + Message + body, null, null));
            }
            else Emit(output, body);
            _recipient = null;
        }

        // A header opens with a marker, or with " to=" right after the prompt's "<|start|>assistant".
        static bool CouldBeHeader(StringBuilder held)
        {
            foreach (string start in (ReadOnlySpan<string>)["<|", " to="])
            {
                int n = Math.Min(start.Length, held.Length);
                bool match = true;
                for (int i = 0; i < n && match; i++) match = held[i] == start[i];
                if (match) return true;
            }
            return false;
        }

        // A header longer than any the format writes, or text that cannot begin one: what came is answer text, and the
        // text goes on as a body.
        void BadHeader(List<ReplyPart> output)
        {
            _channel = "final";
            _recipient = null;
            _inBody = true;
            Emit(output, _held.ToString());
            _held.Clear();
        }

        void Emit(List<ReplyPart> output, string text, bool answer = false)
        {
            if (text.Length == 0) return;
            output.Add(!answer && _channel == "analysis" ? new ReplyPart(null, text, null) : new ReplyPart(text, null, null));
        }

        // The length of the longest end of s that begins one of the markers that end a body.
        static int PartialMarker(StringBuilder s)
        {
            int best = 0;
            foreach (string m in BodyEnds)
                for (int n = Math.Min(m.Length - 1, s.Length); n > best; n--)
                {
                    bool match = true;
                    for (int i = 0; i < n && match; i++) match = s[s.Length - n + i] == m[i];
                    if (match)
                    {
                        best = n;
                        break;
                    }
                }
            return best;
        }
    }
}

/// <summary>
/// Tool calls in the harmony format (<see cref="ToolCallSyntax.Harmony"/>): how a forced call is written and which
/// markers a reply keeps. Replies are split, with their reasoning, by <see cref="HarmonyReply.Stream"/>;
/// <see cref="ToolCallFormat.Parse"/> gives their answer and calls.
/// </summary>
public static class HarmonyToolCalls
{
    /// <summary>The format: calls as messages to <c>functions.NAME</c> on the commentary channel, ids <c>call_...</c>.</summary>
    public static ToolCallFormat Format { get; } = new HarmonyFormat();

    sealed class HarmonyFormat : ToolCallFormat
    {
        public override ToolCallSyntax Syntax => ToolCallSyntax.Harmony;
        public override string Open => HarmonyReply.Channel + "commentary to=functions.";
        public override IReadOnlyList<string> Markers => HarmonyReply.Markers;
        // The call straight after the prompt's "<|start|>assistant", in the documented spelling (openai/harmony
        // docs/format.md); <|call|> is a stop token, so the sequence ends with it.
        public override ForcedCallShape Forced { get; } = new(HarmonyReply.Channel + "commentary to=functions.",
            " " + HarmonyReply.Constrain + "json" + HarmonyReply.Message, HarmonyReply.Call);
        public override string NewId() => ToolCall.NewId();
        public override ToolCallStream NewStream() => new HarmonyCallStream();
        internal override IToolCallBlock NewBlock() =>
            throw new InvalidOperationException("harmony replies are split by HarmonyReply.Stream, not by blocks");
    }

    // The answer and the calls of a harmony reply, its reasoning left out (the form ToolCallStream's users take).
    sealed class HarmonyCallStream() : ToolCallStream(Format)
    {
        readonly HarmonyReply.Stream _reply = new();

        public override IEnumerable<(string? Text, ToolCall? Call)> Push(string piece) => Answer(_reply.Push(piece));

        public override IEnumerable<(string? Text, ToolCall? Call)> Flush() => Answer(_reply.Flush());

        static IEnumerable<(string? Text, ToolCall? Call)> Answer(IReadOnlyList<ReplyPart> parts) =>
            parts.Where(p => p.Reasoning == null).Select(p => (p.Content, p.Call)).ToList();
    }
}
