using System.Runtime.CompilerServices;
using static Daop.Engine.Generate.JsonSchemaGrammar;

namespace Daop.Engine.Generate;

/// <summary>
/// OpenAI's <c>response_format: {"type": "json_schema"}</c>: the output is one JSON value that the schema accepts
/// (<see cref="JsonSchemaGrammar"/>), optionally between whitespace, and ends where it closes. A token is allowed when
/// its text keeps the output a prefix of such a value (<see cref="JsonSchemaPrefix"/>, fed character by character).
/// </summary>
/// <param name="tokenTexts">[V] each token's text as it decodes on its own; null or empty for tokens that never fit.</param>
/// <param name="grammar">The compiled schema.</param>
public sealed class JsonSchemaConstraint(IReadOnlyList<string?> tokenTexts, JsonSchemaGrammar grammar) : ITokenConstraint
{
    JsonSchemaPrefix _state = new(grammar);

    /// <inheritdoc />
    public bool Allows(int token)
    {
        if ((uint)token >= (uint)tokenTexts.Count || tokenTexts[token] is not { Length: > 0 } text) return false;
        var s = _state;
        foreach (char c in text)
            if (!s.Feed(grammar, c)) return false;
        return true;
    }

    /// <inheritdoc />
    public void Accept(int token)
    {
        if (!Allows(token)) throw new InvalidOperationException($"token {token} does not continue a value the schema accepts");
        foreach (char c in tokenTexts[token]!) _state.Feed(grammar, c);
    }

    /// <inheritdoc />
    public bool IsComplete => _state.IsComplete;
}

/// <summary>
/// A recognizer of prefixes of one JSON value a <see cref="JsonSchemaGrammar"/> accepts: a value type (a stack of small
/// frames inline), so trying a token on a copy allocates nothing. Nesting is limited to <see cref="MaxDepth"/> and runs of
/// whitespace between tokens to <see cref="MaxWhitespace"/> characters, as in <see cref="JsonPrefix"/>.
/// </summary>
public struct JsonSchemaPrefix
{
    /// <summary>Most nested objects and arrays.</summary>
    public const int MaxDepth = 32;

    /// <summary>Most whitespace characters in a row between tokens.</summary>
    public const int MaxWhitespace = JsonPrefix.MaxWhitespace;

    enum F : byte { Object, Array, String, Number, Literal }

    // Object phases: Open (after '{'), Next (after ','), Key (in a known name), FreeKey (in another key), Colon, Value
    // (the value is a child frame), After. Array: Open, Next, After. Strings, free keys and numbers: JsonScalars' phases.
    enum P : byte { Open, Next, Key, FreeKey, Colon, Value, After }

    struct Frame
    {
        public int Node, Count, Candidate, Matched; // Count: items / hex digits; Candidate, Matched: a known name or literal being matched
        public int Given;                           // Object, free key: a given name the key has spelled so far, or -1
        public ulong Seen;                          // Object: properties given
        public int Key;                             // Object: the property whose value comes next (-1: an additional one)
        public F Kind;
        public P Phase;
        public JsonScalars.StringPhase String;      // String frames and free keys
        public JsonScalars.NumberPhase Number;      // Number frames
    }

    [InlineArray(MaxDepth)]
    struct Stack { Frame _f; }

    readonly int _root;
    Stack _stack;
    int _depth, _blank;
    bool _done;

    /// <summary>The state before any character of a value of <paramref name="grammar"/>'s schema.</summary>
    public JsonSchemaPrefix(JsonSchemaGrammar grammar)
    {
        ArgumentNullException.ThrowIfNull(grammar);
        _root = grammar.Root;
    }

    /// <summary>True once the value is whole.</summary>
    public readonly bool IsComplete => _done && _depth == 0;

    /// <summary>Reads one more character; false (and the state is then undefined) if no accepted value continues so.</summary>
    public bool Feed(JsonSchemaGrammar g, char c)
    {
        bool blank = c is ' ' or '\t' or '\n' or '\r';
        if (_depth == 0)
        {
            if (blank) return Blank();
            _blank = 0;
            return !_done && Start(g, _root, c);
        }
        ref var f = ref _stack[_depth - 1];
        bool text = f.Kind is F.String or F.Literal or F.Number || (f.Kind == F.Object && f.Phase is P.Key or P.FreeKey);
        if (!text)
        {
            if (blank) return Blank();
            _blank = 0;
        }
        var node = g.Nodes[f.Node];
        switch (f.Kind)
        {
            case F.Object: return ObjectChar(g, ref f, node, c);
            case F.Array:
                if (f.Phase == P.After)
                {
                    if (c == ',' && f.Count < node.MaxItems) { f.Phase = P.Next; return true; }
                    return c == ']' && f.Count >= node.MinItems && Pop();
                }
                if (f.Phase == P.Open && c == ']') return node.MinItems == 0 && Pop();
                if (f.Count == node.MaxItems) return false;
                f.Count++;
                f.Phase = P.After;
                return Start(g, node.Items, c);
            case F.String:
                var read = JsonScalars.String(ref f.String, ref f.Count, c);
                return read == JsonScalars.Step.End ? Pop() : read == JsonScalars.Step.Read;
            case F.Literal:
                return LiteralChar(g, ref f, node, c);
            default:
                var step = JsonScalars.Number(ref f.Number, c, node.Kind == Kind.Integer);
                return step == JsonScalars.Step.End ? Pop() && Feed(g, c) : step == JsonScalars.Step.Read; // c follows the number
        }
    }

    bool Blank() => ++_blank <= MaxWhitespace;

    bool ObjectChar(JsonSchemaGrammar g, ref Frame f, Node node, char c)
    {
        switch (f.Phase)
        {
            case P.Open or P.Next:
                if (c == '}' && f.Phase == P.Open) return (f.Seen & node.Required) == node.Required && Pop();
                if (c != '"' || (node.Additional < 0 && !AnyLeft(node, f.Seen))) return false;
                // A key: matched against the names not given yet (so a key never dead-ends), else, when allowed, another key.
                f.Candidate = NextName(node, f.Seen, 0, "", default);
                f.Matched = 0;
                if (f.Candidate >= 0) f.Phase = P.Key;
                else { f.Phase = P.FreeKey; f.String = JsonScalars.StringPhase.Text; f.Given = GivenName(node, f.Seen, 0, "", default); }
                return true;
            case P.Key:
            {
                string typed = node.Names[f.Candidate];
                if (c == '"' && typed.Length == f.Matched)
                {
                    f.Key = f.Candidate;
                    f.Seen |= 1UL << f.Key;
                    f.Phase = P.Colon;
                    return true;
                }
                int next = NextName(node, f.Seen, f.Matched, typed, c);
                if (next >= 0)
                {
                    f.Candidate = next;
                    f.Matched++;
                    return true;
                }
                // No name left continues so: another key, when allowed; one spelled as a given name would repeat it.
                if (node.Additional < 0) return false;
                f.Phase = P.FreeKey;
                f.String = JsonScalars.StringPhase.Text;
                f.Given = GivenName(node, f.Seen, 0, "", default);
                for (int i = 0; i < f.Matched && f.Given >= 0; i++) f.Given = GivenName(node, f.Seen, i, node.Names[f.Given], typed[i]);
                goto case P.FreeKey;
            }
            case P.FreeKey:
            {
                bool plain = f.String == JsonScalars.StringPhase.Text && c != '\\';
                var read = JsonScalars.String(ref f.String, ref f.Count, c);
                if (read == JsonScalars.Step.Reject) return false;
                if (read == JsonScalars.Step.End)
                {
                    if (f.Given >= 0 && node.Names[f.Given].Length == f.Matched) return false; // a given key again
                    f.Key = -1;
                    f.Phase = P.Colon;
                    return true;
                }
                // Escaped characters are not compared: such a key is taken as new.
                f.Given = plain && f.Given >= 0 ? GivenName(node, f.Seen, f.Matched, node.Names[f.Given], c) : -1;
                f.Matched++;
                return true;
            }
            case P.Colon:
                if (c != ':') return false;
                f.Phase = P.Value;
                return true;
            case P.Value:
                f.Phase = P.After;
                return Start(g, f.Key >= 0 ? node.Properties[f.Key] : node.Additional, c);
            default: // After
                if (c == '}') return (f.Seen & node.Required) == node.Required && Pop();
                if (c != ',') return false;
                // Another key must be possible.
                if (node.Additional < 0 && !AnyLeft(node, f.Seen)) return false;
                f.Phase = P.Next;
                return true;
        }
    }

    // Whether some name is not given yet.
    static bool AnyLeft(Node node, ulong seen) => node.Names.Length > 0 && seen != (node.Names.Length == 64 ? ulong.MaxValue : (1UL << node.Names.Length) - 1);

    // A given name that starts with typed[..matched] followed by c (any given name when c is default), or -1.
    static int GivenName(Node node, ulong seen, int matched, string typed, char c) => NextName(node, ~seen, matched, typed, c);

    // A name not given yet that starts with typed[..matched] followed by c (any such name when c is default), or -1.
    static int NextName(Node node, ulong seen, int matched, string typed, char c)
    {
        for (int i = 0; i < node.Names.Length; i++)
        {
            if ((seen >> i & 1) != 0) continue;
            string n = node.Names[i];
            if (c == default) return i;
            if (n.Length > matched && n[matched] == c && string.CompareOrdinal(n, 0, typed, 0, matched) == 0) return i;
        }
        return -1;
    }

    bool LiteralChar(JsonSchemaGrammar g, ref Frame f, Node node, char c)
    {
        string typed = node.Texts[f.Candidate];
        for (int i = 0; i < node.Texts.Length; i++)
        {
            string t = node.Texts[i];
            if (t.Length > f.Matched && t[f.Matched] == c && string.CompareOrdinal(t, 0, typed, 0, f.Matched) == 0)
            {
                f.Candidate = i;
                f.Matched++;
                return !Whole(node, i, f.Matched) || Pop();
            }
        }
        // Nothing continues: the literal ended before c (a number such as 1 of [1, 12]), which the container reads.
        return typed.Length == f.Matched && Pop() && Feed(g, c);
    }

    // Texts[i] is matched whole and no other text continues it: the literal is over.
    static bool Whole(Node node, int i, int matched)
    {
        string t = node.Texts[i];
        if (t.Length != matched) return false;
        foreach (string o in node.Texts)
            if (o.Length > matched && string.CompareOrdinal(o, 0, t, 0, matched) == 0) return false;
        return true;
    }

    // A value of node n starting with c: pushes its frame (or ends at once, for a one-character literal).
    bool Start(JsonSchemaGrammar g, int n, char c)
    {
        var node = g.Nodes[n];
        switch (node.Kind)
        {
            case Kind.Any:
                int any = c switch { '{' => g.AnyObjectNode, '[' => g.AnyArrayNode, '"' => -2, '-' or (>= '0' and <= '9') => -3, 't' or 'f' or 'n' => g.AnyLiteralNode, _ => -4 };
                if (any == -4) return false;
                if (any == -2) return Push(new Frame { Node = n, Kind = F.String });
                if (any == -3) return Push(new Frame { Node = n, Kind = F.Number, Number = JsonScalars.NumberStart(c) });
                return Start(g, any, c);
            case Kind.AnyOf:
                foreach (int b in node.Branches)
                    if ((g.Nodes[b].First & CharBit(c)) != 0) return Start(g, b, c);
                return false;
            case Kind.Object: return c == '{' && Push(new Frame { Node = n, Kind = F.Object, Phase = P.Open });
            case Kind.Array: return c == '[' && Push(new Frame { Node = n, Kind = F.Array, Phase = P.Open });
            case Kind.String: return c == '"' && Push(new Frame { Node = n, Kind = F.String });
            case Kind.Number or Kind.Integer:
                return (c == '-' || char.IsAsciiDigit(c)) && Push(new Frame { Node = n, Kind = F.Number, Number = JsonScalars.NumberStart(c) });
            default: // Literals
                for (int i = 0; i < node.Texts.Length; i++)
                    if (node.Texts[i][0] == c)
                        return Whole(node, i, 1) ? Ended() : Push(new Frame { Node = n, Kind = F.Literal, Candidate = i, Matched = 1 });
                return false;
        }
    }

    bool Push(Frame f)
    {
        if (_depth == MaxDepth) return false;
        _stack[_depth++] = f;
        return true;
    }

    bool Pop()
    {
        _depth--;
        return Ended();
    }

    // A value closed: the document's, when no frame is left.
    bool Ended()
    {
        if (_depth == 0) _done = true;
        return true;
    }
}
