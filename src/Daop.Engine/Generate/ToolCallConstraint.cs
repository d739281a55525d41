using Daop.Engine.Load.Chat;

namespace Daop.Engine.Generate;

/// <summary>
/// OpenAI's <c>tool_choice</c> "required" or a named function: the output is exactly one call in a format's
/// <see cref="ForcedCallShape"/>, <c>Head NAME Between ARGUMENTS Tail</c>, NAME one of the functions given and the
/// arguments one JSON object that the function's parameters schema accepts (<see cref="JsonSchemaPrefix"/>), or any
/// JSON object where it has none (<see cref="JsonPrefix"/>); the sequence ends where the call does. A marker that the
/// vocabulary has as a token of its own (Mistral's <c>[TOOL_CALLS]</c>) is written by that token only, as the model
/// learnt it, not spelt out in pieces.
/// </summary>
public class ToolCallConstraint : ITokenConstraint
{
    const int Head = 0, Name = 1, Between = 2, Arguments = 3, Tail = 4, Done = 5;

    readonly IReadOnlyList<string?> _texts;
    readonly string[] _literals;           // by part: Head, Between and Tail (the others unused)
    readonly bool[][] _markerAt;           // [part][i]: a token's marker starts at literal[i]
    readonly IReadOnlyDictionary<int, string> _markers;
    readonly string[] _names;
    readonly JsonSchemaGrammar?[] _schemas; // [name] the arguments' grammar, or null: any object
    State _state;

    // Where the output stands: Part (Head ... Done); Matched is how much of the current literal (or of the name) is
    // matched, Candidate a name that begins with what was typed.
    struct State
    {
        public int Part, Matched, Candidate;
        public JsonPrefix Args;          // without a schema
        public JsonSchemaPrefix Schema;  // with one
    }

    /// <param name="tokenTexts">[V] each token's text as it decodes on its own; null or empty for tokens that never fit.</param>
    /// <param name="shape">The call's fixed text.</param>
    /// <param name="names">The functions the call may name (one for a named tool_choice).</param>
    /// <param name="schemas">For each name, its arguments' grammar (<see cref="ArgumentsGrammar"/>), or null for any
    /// JSON object; null: any object for every name.</param>
    /// <param name="markerTokens">Token id → the text of the marker it writes; where the shape has such a marker only
    /// that token may write it. Null: none.</param>
    public ToolCallConstraint(IReadOnlyList<string?> tokenTexts, ForcedCallShape shape, IReadOnlyList<string> names,
        IReadOnlyList<JsonSchemaGrammar?>? schemas = null, IReadOnlyDictionary<int, string>? markerTokens = null)
    {
        ArgumentNullException.ThrowIfNull(tokenTexts);
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentNullException.ThrowIfNull(names);
        if (names.Count == 0) throw new ArgumentException("a forced tool call needs at least one function name", nameof(names));
        if (schemas != null && schemas.Count != names.Count) throw new ArgumentException($"{schemas.Count} schemas for {names.Count} names", nameof(schemas));
        if (shape.Head.Length == 0 || shape.Between.Length == 0) throw new ArgumentException("a forced call's head and the text between name and arguments cannot be empty", nameof(shape));
        foreach (var n in names) ToolDefinition.CheckName(n);
        _texts = tokenTexts;
        _names = [.. names];
        _schemas = schemas != null ? [.. schemas] : new JsonSchemaGrammar?[names.Count];
        _markers = markerTokens ?? new Dictionary<int, string>();
        _literals = [shape.Head, "", shape.Between, "", shape.Tail];
        _markerAt = [.. _literals.Select(l => Enumerable.Range(0, l.Length)
            .Select(i => _markers.Values.Any(m => m.Length > 0 && l.AsSpan(i).StartsWith(m, StringComparison.Ordinal))).ToArray())];
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
        var s = _state;
        return Step(ref s, token);
    }

    /// <inheritdoc />
    public void Accept(int token)
    {
        var s = _state;
        if (!Step(ref s, token)) throw new InvalidOperationException($"token {token} does not continue the tool call");
        _state = s;
    }

    /// <inheritdoc />
    public bool IsComplete => _state.Part == Done;

    bool Step(ref State s, int token)
    {
        if (_markers.TryGetValue(token, out var marker)) return Marker(ref s, marker);
        if ((uint)token >= (uint)_texts.Count || _texts[token] is not { Length: > 0 } text) return false;
        foreach (char c in text)
            if (!Feed(ref s, c)) return false;
        return true;
    }

    // A marker token: where the literal has its marker (a name ends where Between begins).
    bool Marker(ref State s, string marker)
    {
        if (s.Part == Name)
        {
            if (!NameEnds(ref s)) return false;
            s.Part = Between;
            s.Matched = 0;
        }
        if (s.Part is not (Head or Between or Tail)) return false;
        string literal = _literals[s.Part];
        if (!literal.AsSpan(s.Matched).StartsWith(marker, StringComparison.Ordinal)) return false;
        s.Matched += marker.Length;
        if (s.Matched == literal.Length) Next(ref s);
        return true;
    }

    bool Feed(ref State s, char c)
    {
        switch (s.Part)
        {
            case Head or Between or Tail:
                string literal = _literals[s.Part];
                if (_markerAt[s.Part][s.Matched] || literal[s.Matched] != c) return false;
                if (++s.Matched == literal.Length) Next(ref s);
                return true;
            case Name:
                // The name ends where Between begins (Hermes: its closing quote), unless a marker token must write that.
                if (c == _literals[Between][0] && !_markerAt[Between][0])
                {
                    if (!NameEnds(ref s)) return false;
                    s.Part = Between;
                    s.Matched = 1;
                    if (s.Matched == _literals[Between].Length) Next(ref s);
                    return true;
                }
                string typed = _names[s.Candidate];
                for (int i = 0; i < _names.Length; i++)
                {
                    string n = _names[i];
                    if (n.Length <= s.Matched || string.CompareOrdinal(n, 0, typed, 0, s.Matched) != 0 || n[s.Matched] != c) continue;
                    s.Candidate = i;
                    s.Matched++;
                    return true;
                }
                return false;
            case Arguments:
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
                if (whole) Next(ref s);
                return true;
            default: return false;
        }
    }

    // Whether what was typed is a whole name; if so it becomes the candidate.
    bool NameEnds(ref State s)
    {
        string typed = _names[s.Candidate];
        for (int i = 0; i < _names.Length; i++)
        {
            string n = _names[i];
            if (n.Length != s.Matched || string.CompareOrdinal(n, 0, typed, 0, s.Matched) != 0) continue;
            s.Candidate = i;
            return true;
        }
        return false;
    }

    // On to the next part; the arguments start their grammar, and an empty Tail is no part at all.
    void Next(ref State s)
    {
        s.Part++;
        s.Matched = 0;
        if (s.Part == Arguments && _schemas[s.Candidate] is { } g) s.Schema = new JsonSchemaPrefix(g);
        if (s.Part == Tail && _literals[Tail].Length == 0) s.Part = Done;
    }
}
