using System.Collections.Generic;
using System.Globalization;
using System.Text;

namespace Daop.Generators.Json;

/// <summary>
/// A small recursive-descent JSON parser. The generator cannot rely on System.Text.Json being loadable in every
/// compiler host (it is not part of netstandard2.0 and the host's copy may differ), and configs are tiny.
/// </summary>
/// <remarks>
/// Accepts RFC 8259 JSON plus the non-finite literals <c>NaN</c>, <c>Infinity</c> and <c>-Infinity</c> that
/// Python's json module writes. Nesting is capped so that a hostile file cannot overflow the compiler's stack.
/// </remarks>
internal sealed class JsonReader
{
    const int MaxDepth = 64;

    readonly string _s;
    int _i;

    JsonReader(string s)
    {
        _s = s;
    }

    /// <summary>Parses one JSON document that must span the whole text (surrounding whitespace aside).</summary>
    /// <exception cref="JsonException">The text is not valid JSON.</exception>
    public static JsonValue Parse(string text)
    {
        var r = new JsonReader(text);
        // A UTF-8 BOM survives into the text when a file was decoded without detection.
        if (r._i < text.Length && text[r._i] == '\uFEFF') r._i++;
        r.SkipSpace();
        var v = r.Value(0);
        r.SkipSpace();
        if (r._i < text.Length) throw new JsonException("unexpected '" + text[r._i] + "' after the top-level value", r._i);
        return v;
    }

    JsonValue Value(int depth)
    {
        if (_i >= _s.Length) throw new JsonException("unexpected end of text, expected a value", _i);
        char c = _s[_i];
        switch (c)
        {
            case '{': return Object(depth);
            case '[': return Array(depth);
            case '"':
                {
                    int start = _i;
                    string s = String();
                    return JsonValue.Scalar(JsonKind.String, s, start, _i);
                }
            case 't': return Word("true", JsonKind.True);
            case 'f': return Word("false", JsonKind.False);
            case 'n': return Word("null", JsonKind.Null);
            case 'N': return NonFinite("NaN", _i);
            case 'I': return NonFinite("Infinity", _i);
            default:
                if (c == '-' || (c >= '0' && c <= '9')) return Number();
                throw new JsonException("unexpected '" + c + "', expected a value", _i);
        }
    }

    JsonValue Object(int depth)
    {
        if (depth >= MaxDepth) throw new JsonException("nesting deeper than " + MaxDepth, _i);
        int start = _i++;
        var members = new List<KeyValuePair<string, JsonValue>>();
        SkipSpace();
        if (Peek() == '}')
        {
            _i++;
            return JsonValue.Object(members, start, _i);
        }
        while (true)
        {
            SkipSpace();
            if (Peek() != '"') throw new JsonException(Found("a member name in quotes"), _i);
            string key = String();
            SkipSpace();
            Expect(':');
            SkipSpace();
            members.Add(new KeyValuePair<string, JsonValue>(key, Value(depth + 1)));
            SkipSpace();
            char c = Peek();
            _i++;
            if (c == '}') return JsonValue.Object(members, start, _i);
            if (c != ',') throw new JsonException(Found("',' or '}'", _i - 1), _i - 1);
        }
    }

    JsonValue Array(int depth)
    {
        if (depth >= MaxDepth) throw new JsonException("nesting deeper than " + MaxDepth, _i);
        int start = _i++;
        var items = new List<JsonValue>();
        SkipSpace();
        if (Peek() == ']')
        {
            _i++;
            return JsonValue.Array(items, start, _i);
        }
        while (true)
        {
            SkipSpace();
            items.Add(Value(depth + 1));
            SkipSpace();
            char c = Peek();
            _i++;
            if (c == ']') return JsonValue.Array(items, start, _i);
            if (c != ',') throw new JsonException(Found("',' or ']'", _i - 1), _i - 1);
        }
    }

    string String()
    {
        int open = _i++;
        var sb = new StringBuilder();
        while (true)
        {
            if (_i >= _s.Length) throw new JsonException("unterminated string", open);
            char c = _s[_i++];
            if (c == '"') return sb.ToString();
            if (c < ' ') throw new JsonException("control character in string", _i - 1);
            if (c != '\\')
            {
                sb.Append(c);
                continue;
            }
            if (_i >= _s.Length) throw new JsonException("unterminated string", open);
            char e = _s[_i++];
            switch (e)
            {
                case '"': sb.Append('"'); break;
                case '\\': sb.Append('\\'); break;
                case '/': sb.Append('/'); break;
                case 'b': sb.Append('\b'); break;
                case 'f': sb.Append('\f'); break;
                case 'n': sb.Append('\n'); break;
                case 'r': sb.Append('\r'); break;
                case 't': sb.Append('\t'); break;
                case 'u':
                    if (_i + 4 > _s.Length ||
                        !ushort.TryParse(_s.Substring(_i, 4), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out ushort u))
                        throw new JsonException("bad \\u escape", _i - 2);
                    sb.Append((char)u);
                    _i += 4;
                    break;
                default: throw new JsonException("bad escape '\\" + e + "'", _i - 2);
            }
        }
    }

    JsonValue Number()
    {
        int start = _i;
        if (_s[_i] == '-')
        {
            _i++;
            if (Peek() == 'I') return NonFinite("Infinity", start);
        }
        if (Peek() == '0') _i++;
        else if (!Digits()) throw new JsonException(Found("a digit"), _i);
        if (Peek() == '.')
        {
            _i++;
            if (!Digits()) throw new JsonException(Found("a digit after '.'"), _i);
        }
        if (Peek() == 'e' || Peek() == 'E')
        {
            _i++;
            if (Peek() == '+' || Peek() == '-') _i++;
            if (!Digits()) throw new JsonException(Found("an exponent digit"), _i);
        }
        return JsonValue.Scalar(JsonKind.Number, _s.Substring(start, _i - start), start, _i);
    }

    JsonValue NonFinite(string word, int start)
    {
        if (string.CompareOrdinal(_s, _i, word, 0, word.Length) != 0) throw new JsonException(Found("a value"), _i);
        _i += word.Length;
        return JsonValue.Scalar(JsonKind.Number, _s.Substring(start, _i - start), start, _i);
    }

    JsonValue Word(string word, JsonKind kind)
    {
        int start = _i;
        if (string.CompareOrdinal(_s, _i, word, 0, word.Length) != 0) throw new JsonException(Found("a value"), _i);
        _i += word.Length;
        return JsonValue.Literal(kind, start, _i);
    }

    bool Digits()
    {
        int start = _i;
        while (_i < _s.Length && _s[_i] >= '0' && _s[_i] <= '9') _i++;
        return _i > start;
    }

    void Expect(char c)
    {
        if (Peek() != c) throw new JsonException(Found("'" + c + "'"), _i);
        _i++;
    }

    char Peek() => _i < _s.Length ? _s[_i] : '\0';

    string Found(string expected) => Found(expected, _i);

    string Found(string expected, int at) =>
        at >= _s.Length ? "unexpected end of text, expected " + expected : "unexpected '" + _s[at] + "', expected " + expected;

    void SkipSpace()
    {
        while (_i < _s.Length)
        {
            char c = _s[_i];
            if (c != ' ' && c != '\t' && c != '\n' && c != '\r') return;
            _i++;
        }
    }
}
