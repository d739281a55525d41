using System.Text;
using System.Text.Json;
using Daop.Engine.Load.Chat;

namespace Daop.Engine.Generate;

/// <summary>
/// Tool calls in Hermes syntax (<see cref="ToolCallSyntax.Hermes"/>, Qwen's): a reply is text with blocks
/// <c>&lt;tool_call&gt;\n{"name": "f", "arguments": {...}}\n&lt;/tool_call&gt;</c>. A block whose JSON is not a call
/// (an object with a string "name" and an object "arguments") stays in the text, as vLLM's parser leaves it.
/// </summary>
public static class HermesToolCalls
{
    /// <summary>Opens a call.</summary>
    public const string Open = "<tool_call>";

    /// <summary>Closes a call.</summary>
    public const string Close = "</tool_call>";

    /// <summary>
    /// Splits a whole reply into its text (outside the calls, trimmed; null when only calls and whitespace remain) and
    /// its calls, in order, as <see cref="Stream"/> does. A last block cut off before its closing tag counts when its JSON
    /// is whole.
    /// </summary>
    public static (string? Content, IReadOnlyList<ToolCall> Calls) Parse(string reply)
    {
        ArgumentNullException.ThrowIfNull(reply);
        var stream = new Stream();
        var text = new StringBuilder();
        var calls = new List<ToolCall>();
        foreach (var (piece, call) in stream.Push(reply).Concat(stream.Flush()))
        {
            if (piece != null) text.Append(piece);
            if (call != null) calls.Add(call);
        }
        string content = text.ToString().Trim();
        return (content.Length == 0 && calls.Count > 0 ? null : content, calls);
    }

    /// <summary>
    /// A call's JSON (the inside of a block), or null when it is not one: an object with a string <c>name</c> and an object
    /// (or a JSON text of one) <c>arguments</c>; missing arguments are <c>{}</c>.
    /// </summary>
    public static ToolCall? ParseCall(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        try
        {
            using var doc = JsonDocument.Parse(json);
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("name", out var name) || name.ValueKind != JsonValueKind.String)
                return null;
            string args = "{}";
            if (root.TryGetProperty("arguments", out var a))
            {
                if (a.ValueKind == JsonValueKind.Object) args = a.GetRawText();
                else if (a.ValueKind == JsonValueKind.String && IsObject(a.GetString()!)) args = a.GetString()!;
                else return null;
            }
            return new ToolCall(ToolCall.NewId(), name.GetString()!, args);
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException) // not JSON, or a lone surrogate escape in the name
        {
            return null;
        }
    }

    static bool IsObject(string json)
    {
        try
        {
            using var doc = JsonDocument.Parse(json);
            return doc.RootElement.ValueKind == JsonValueKind.Object;
        }
        catch (JsonException)
        {
            return false;
        }
    }

    /// <summary>
    /// Splits a streamed reply as it comes: text outside the calls goes on as soon as it cannot be the start of a call
    /// (whitespace is held until text follows it, so the whitespace around calls and at the ends is not sent: the text is
    /// what <see cref="Parse"/> gives), each call as soon as its
    /// block closes. A block's JSON is read as it comes (<see cref="JsonPrefix"/>), so a closing tag inside one of its
    /// strings does not end it; a block that is not a call ends at its closing tag and goes on as text. One per reply.
    /// </summary>
    public sealed class Stream
    {
        readonly StringBuilder _held = new(); // outside a block: text not yet passed on; inside: the block after its opening tag
        bool _inCall, _bad;  // inside a block; its JSON went wrong (then it ends at the next closing tag, as text)
        bool _texted;        // some text has gone out (whitespace before the first text is dropped)
        JsonPrefix _json;
        int _jsonEnd = -1;   // where in _held the block's JSON object closed, or -1

        /// <summary>What <paramref name="piece"/> lets go: text pieces and calls, in order.</summary>
        public IEnumerable<(string? Text, ToolCall? Call)> Push(string piece)
        {
            ArgumentNullException.ThrowIfNull(piece);
            var output = new List<(string?, ToolCall?)>();
            foreach (char c in piece)
            {
                _held.Append(c);
                if (!_inCall)
                {
                    if (!EndsWith(Open)) continue;
                    _held.Length -= Open.Length;
                    Text(output, _held.ToString().TrimEnd());
                    _held.Clear();
                    (_inCall, _bad, _json, _jsonEnd) = (true, false, default, -1);
                }
                else if (_bad)
                {
                    if (EndsWith(Close)) output.Add(EndBlock());
                }
                else if (_jsonEnd < 0)
                {
                    if (!_json.Feed(c)) _bad = true;
                    else if (_json.IsComplete) _jsonEnd = _held.Length;
                    if (_bad && EndsWith(Close)) output.Add(EndBlock());
                }
                else
                {
                    // After the object: whitespace, then the closing tag.
                    string tail = _held.ToString(_jsonEnd, _held.Length - _jsonEnd).TrimStart();
                    if (tail == Close) output.Add(EndBlock());
                    else if (!Close.StartsWith(tail, StringComparison.Ordinal)) _bad = true;
                }
            }
            if (!_inCall)
            {
                // Pass on what cannot become Open, less the whitespace before what is kept.
                string held = _held.ToString();
                int cut = held.Length - PartialOpen(held);
                while (cut > 0 && char.IsWhiteSpace(held[cut - 1])) cut--;
                if (cut > 0)
                {
                    Text(output, held[..cut]);
                    _held.Remove(0, cut);
                }
            }
            return output;
        }

        /// <summary>What is still held at the end of the reply: an unclosed block as a call when its JSON is whole, else as text.</summary>
        public IEnumerable<(string? Text, ToolCall? Call)> Flush()
        {
            if (_inCall) return [EndBlock()];
            var output = new List<(string?, ToolCall?)>();
            if (_held.ToString().Trim().Length > 0) Text(output, _held.ToString());
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

        // The block read so far, as a call when its JSON object is whole and is one, else as text (tags included).
        (string?, ToolCall?) EndBlock()
        {
            string inside = _held.ToString();
            _held.Clear();
            _inCall = false;
            var call = !_bad && _jsonEnd >= 0 ? ParseCall(inside[.._jsonEnd]) : null;
            if (call != null) return (null, call);
            _texted = true;
            return (Open + inside, null);
        }

        bool EndsWith(string tag)
        {
            if (_held.Length < tag.Length) return false;
            for (int i = 0; i < tag.Length; i++)
                if (_held[_held.Length - tag.Length + i] != tag[i]) return false;
            return true;
        }

        // The length of the longest end of s that begins Open.
        static int PartialOpen(string s)
        {
            for (int n = Math.Min(Open.Length - 1, s.Length); n > 0; n--)
                if (string.CompareOrdinal(s, s.Length - n, Open, 0, n) == 0) return n;
            return 0;
        }
    }
}

/// <summary>
/// OpenAI's <c>tool_choice</c> "required" or a named function, in Hermes syntax: the output is exactly one call,
/// <c>&lt;tool_call&gt;\n{"name": "NAME", "arguments": {...}}\n&lt;/tool_call&gt;</c>, NAME one of the functions given and the
/// arguments one JSON object that the function's parameters schema accepts (<see cref="JsonSchemaPrefix"/>), or any
/// JSON object where it has none (<see cref="JsonPrefix"/>); the sequence ends where the block closes.
/// </summary>
public sealed class HermesToolCallConstraint : ITokenConstraint
{
    const string Head = HermesToolCalls.Open + "\n{\"name\": \"", Between = "\", \"arguments\": ", Tail = "}\n" + HermesToolCalls.Close;

    readonly IReadOnlyList<string?> _texts;
    readonly string[] _names;
    readonly JsonSchemaGrammar?[] _schemas; // [name] the arguments' grammar, or null: any object
    State _state;

    // Where the output stands: Part 0 in Head, 1 the name, 2 Between, 3 the arguments object, 4 Tail, 5 done; Matched is how
    // much of the current literal (or of the name) is matched, Candidate a name that begins with what was typed.
    struct State
    {
        public int Part, Matched, Candidate;
        public JsonPrefix Args;          // without a schema
        public JsonSchemaPrefix Schema;  // with one
    }

    /// <param name="tokenTexts">[V] each token's text as it decodes on its own; null or empty for tokens that never fit.</param>
    /// <param name="names">The functions the call may name (one for a named tool_choice).</param>
    /// <param name="schemas">For each name, its arguments' grammar (<see cref="ArgumentsGrammar"/>), or null for any
    /// JSON object; null: any object for every name.</param>
    public HermesToolCallConstraint(IReadOnlyList<string?> tokenTexts, IReadOnlyList<string> names, IReadOnlyList<JsonSchemaGrammar?>? schemas = null)
    {
        ArgumentNullException.ThrowIfNull(tokenTexts);
        ArgumentNullException.ThrowIfNull(names);
        if (names.Count == 0) throw new ArgumentException("a forced tool call needs at least one function name", nameof(names));
        if (schemas != null && schemas.Count != names.Count) throw new ArgumentException($"{schemas.Count} schemas for {names.Count} names", nameof(schemas));
        foreach (var n in names) ToolDefinition.CheckName(n);
        _texts = tokenTexts;
        _names = [.. names];
        _schemas = schemas != null ? [.. schemas] : new JsonSchemaGrammar?[names.Count];
    }

    /// <summary>
    /// The grammar a function's arguments follow: its parameters schema compiled, when it describes objects only and
    /// stays within <see cref="JsonSchemaGrammar"/>'s subset; else null (any JSON object).
    /// </summary>
    public static JsonSchemaGrammar? ArgumentsGrammar(string? parameters)
    {
        if (parameters == null) return null;
        try
        {
            var g = JsonSchemaGrammar.Compile(parameters);
            return g.StartsOnlyAsObject ? g : null;
        }
        catch (JsonSchemaException)
        {
            return null;
        }
    }

    /// <inheritdoc />
    public bool Allows(int token)
    {
        if ((uint)token >= (uint)_texts.Count || _texts[token] is not { Length: > 0 } text) return false;
        var s = _state;
        foreach (char c in text)
            if (!Feed(ref s, c)) return false;
        return true;
    }

    /// <inheritdoc />
    public void Accept(int token)
    {
        if (!Allows(token)) throw new InvalidOperationException($"token {token} does not continue the tool call");
        foreach (char c in _texts[token]!) Feed(ref _state, c);
    }

    /// <inheritdoc />
    public bool IsComplete => _state.Part == 5;

    bool Feed(ref State s, char c)
    {
        switch (s.Part)
        {
            case 0: return Literal(ref s, Head, c);
            case 1:
                string typed = _names[s.Candidate];
                for (int i = 0; i < _names.Length; i++)
                {
                    string n = _names[i];
                    if (n.Length < s.Matched || string.CompareOrdinal(n, 0, typed, 0, s.Matched) != 0) continue;
                    if (c == '"' && n.Length == s.Matched)
                    {
                        s.Part = 2;
                        s.Matched = 1; // Between starts with the closing quote
                        return true;
                    }
                    if (n.Length > s.Matched && n[s.Matched] == c)
                    {
                        s.Candidate = i;
                        s.Matched++;
                        return true;
                    }
                }
                return false;
            case 2:
                if (!Literal(ref s, Between, c)) return false;
                if (s.Part == 3 && _schemas[s.Candidate] is { } g) s.Schema = new JsonSchemaPrefix(g);
                return true;
            case 3:
                bool whole;
                if (_schemas[s.Candidate] is { } grammar)
                {
                    // A schema's object ends at its '}', which no whitespace precedes in the Tail, so the prefix is
                    // complete exactly when the arguments are.
                    if (!s.Schema.Feed(grammar, c)) return false;
                    whole = s.Schema.IsComplete;
                }
                else
                {
                    if (!s.Args.Feed(c)) return false;
                    whole = s.Args.IsComplete;
                }
                if (whole) { s.Part = 4; s.Matched = 0; }
                return true;
            case 4: return Literal(ref s, Tail, c);
            default: return false;
        }
    }

    static bool Literal(ref State s, string literal, char c)
    {
        if (literal[s.Matched] != c) return false;
        if (++s.Matched == literal.Length) { s.Part++; s.Matched = 0; }
        return true;
    }
}
