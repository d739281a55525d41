namespace Daop.Engine.Generate;

/// <summary>
/// OpenAI's <c>response_format: {"type": "json_object"}</c>: the output is one JSON object (RFC 8259), optionally after
/// whitespace, and ends where it closes. A token is allowed when its text keeps the output a prefix of such an object
/// (<see cref="JsonPrefix"/>, fed character by character); tokens without text (special ones) never are.
/// </summary>
/// <param name="tokenTexts">[V] each token's text as it decodes on its own; null or empty for tokens that never fit.</param>
public sealed class JsonObjectConstraint(IReadOnlyList<string?> tokenTexts) : ITokenConstraint
{
    JsonPrefix _state;

    /// <inheritdoc />
    public bool Allows(int token)
    {
        if ((uint)token >= (uint)tokenTexts.Count || tokenTexts[token] is not { Length: > 0 } text) return false;
        var s = _state;
        foreach (char c in text)
            if (!s.Feed(c)) return false;
        return true;
    }

    /// <inheritdoc />
    public void Accept(int token)
    {
        if (!Allows(token)) throw new InvalidOperationException($"token {token} does not continue the JSON object");
        foreach (char c in tokenTexts[token]!) _state.Feed(c);
    }

    /// <inheritdoc />
    public bool IsComplete => _state.IsComplete;
}

/// <summary>
/// A recognizer of prefixes of one JSON object (RFC 8259; leading whitespace allowed, and trailing whitespace once it
/// closes): a value type, so trying a token on a copy costs no allocation. Nesting is limited to <see cref="MaxDepth"/>
/// and runs of whitespace outside strings to <see cref="MaxWhitespace"/> characters (a model must make progress).
/// </summary>
public struct JsonPrefix
{
    /// <summary>Most nested objects and arrays.</summary>
    public const int MaxDepth = 64;

    /// <summary>Most whitespace characters in a row outside strings.</summary>
    public const int MaxWhitespace = 32;

    enum Mode : byte { Start, ObjectOpen, Key, Colon, Value, ArrayOpen, After, String, Literal, Number }

    ulong _objects;   // bit d: level d + 1 is an object (else an array)
    int _depth, _count, _blank; // nesting; literal characters matched / hex digits read; whitespace in a row
    Mode _mode;
    JsonScalars.StringPhase _string;
    JsonScalars.NumberPhase _number;
    bool _key;        // the string being read is an object key
    bool _arrays;     // the top level may be an array too
    byte _literal;    // 0 true, 1 false, 2 null

    static readonly string[] Literals = ["true", "false", "null"];

    /// <summary>A recognizer of prefixes of one JSON object or array (e.g. a list of tool calls).</summary>
    public static JsonPrefix ObjectOrArray() => new() { _arrays = true };

    /// <summary>True once the top-level object (or array, <see cref="ObjectOrArray"/>) has closed.</summary>
    public readonly bool IsComplete => _mode == Mode.After && _depth == 0;

    /// <summary>Reads one more character; false (and the state is then undefined) if it cannot continue a JSON object.</summary>
    public bool Feed(char c)
    {
        bool blank = c is ' ' or '\t' or '\n' or '\r';
        if (_mode != Mode.String)
        {
            if (!blank) _blank = 0;
            else if (++_blank > MaxWhitespace) return false;
        }
        switch (_mode)
        {
            case Mode.Start: return blank || (c == '{' && Push(object_: true)) || (c == '[' && _arrays && Push(object_: false));
            case Mode.ObjectOpen:
                if (c == '}') return Pop();
                goto case Mode.Key;
            case Mode.Key:
                if (blank) return true;
                return c == '"' && String(key: true);
            case Mode.Colon:
                if (blank) return true;
                if (c != ':') return false;
                _mode = Mode.Value;
                return true;
            case Mode.ArrayOpen:
                if (c == ']') return Pop();
                goto case Mode.Value;
            case Mode.Value: return blank || StartValue(c);
            case Mode.After:
                if (blank) return true;
                if (_depth == 0) return false;
                bool inObject = (_objects >> (_depth - 1) & 1) != 0;
                if (c == ',') { _mode = inObject ? Mode.Key : Mode.Value; return true; }
                return (inObject ? c == '}' : c == ']') && Pop();
            case Mode.String:
                var read = JsonScalars.String(ref _string, ref _count, c);
                if (read == JsonScalars.Step.End) { _mode = _key ? Mode.Colon : Mode.After; _key = false; }
                return read != JsonScalars.Step.Reject;
            case Mode.Literal:
                if (c != Literals[_literal][_count]) return false;
                if (++_count == Literals[_literal].Length) _mode = Mode.After;
                return true;
            case Mode.Number:
                var step = JsonScalars.Number(ref _number, c, integer: false);
                return step == JsonScalars.Step.End ? EndNumber(c) : step == JsonScalars.Step.Read;
            default: return false;
        }
    }

    // A number ends at the first character that cannot extend it, which the enclosing container then reads.
    bool EndNumber(char c)
    {
        _mode = Mode.After;
        if (c is ' ' or '\t' or '\n' or '\r') _blank--; // counted once already, on the way in
        return Feed(c);
    }

    bool StartValue(char c)
    {
        switch (c)
        {
            case '{': return Push(object_: true);
            case '[': return Push(object_: false);
            case '"': return String(key: false);
            case '-' or (>= '0' and <= '9'):
                _number = JsonScalars.NumberStart(c);
                _mode = Mode.Number;
                return true;
            case 't' or 'f' or 'n':
                _literal = (byte)(c == 't' ? 0 : c == 'f' ? 1 : 2);
                _count = 1;
                _mode = Mode.Literal;
                return true;
            default: return false;
        }
    }

    bool String(bool key)
    {
        _mode = Mode.String;
        _string = JsonScalars.StringPhase.Text;
        _key = key;
        return true;
    }

    bool Push(bool object_)
    {
        if (_depth == MaxDepth) return false;
        if (object_) _objects |= 1UL << _depth;
        else _objects &= ~(1UL << _depth);
        _depth++;
        _mode = object_ ? Mode.ObjectOpen : Mode.ArrayOpen;
        return true;
    }

    bool Pop()
    {
        _depth--;
        _mode = Mode.After;
        return true;
    }
}
