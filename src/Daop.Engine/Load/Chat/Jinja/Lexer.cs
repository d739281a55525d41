using System.Text;

namespace Daop.Engine.Load.Chat.Jinja;

internal enum TokenKind
{
    Text,
    VarBegin,
    VarEnd,
    BlockBegin,
    BlockEnd,
    Name,
    String,
    Integer,
    Float,
    Operator,
    Eof,
}

internal readonly record struct Token(TokenKind Kind, string Value, int Line);

/// <summary>
/// Splits a template into text and tag tokens with Jinja2's whitespace rules as Hugging Face
/// configures them: "-" on a tag strips all whitespace on that side, trim_blocks drops the first
/// newline after a block or comment tag, lstrip_blocks drops spaces/tabs before a block or comment
/// tag that starts its line ("+" on a tag turns the last two off).
/// </summary>
internal sealed partial class Lexer
{
    [System.Text.RegularExpressions.GeneratedRegex(@"\{%([-+]?)\s*endraw\s*([-+]?)%\}")]
    private static partial System.Text.RegularExpressions.Regex EndRaw();

    private static readonly string[] Operators =
        ["**", "//", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">", "=", "(", ")", "[", "]", "{", "}", ",", ".", ":", "|"];

    private readonly string _src;
    private readonly bool _trimBlocks, _lstripBlocks;
    private readonly List<Token> _tokens = [];
    private readonly int[] _lineStarts;
    private int _pos;

    private Lexer(string src, bool trimBlocks, bool lstripBlocks)
    {
        _src = src;
        _trimBlocks = trimBlocks;
        _lstripBlocks = lstripBlocks;
        var starts = new List<int> { 0 };
        for (int i = 0; i < src.Length; i++)
            if (src[i] == '\n')
                starts.Add(i + 1);
        _lineStarts = starts.ToArray();
    }

    public static List<Token> Tokenize(string source, bool trimBlocks = true, bool lstripBlocks = true)
    {
        // Jinja normalizes line endings to "\n" and, without keep_trailing_newline (HF leaves it
        // off), drops one newline at the very end of the template.
        source = source.Replace("\r\n", "\n", StringComparison.Ordinal).Replace('\r', '\n');
        if (source.EndsWith('\n'))
            source = source[..^1];
        var lexer = new Lexer(source, trimBlocks, lstripBlocks);
        lexer.Run();
        return lexer._tokens;
    }

    private int LineAt(int index)
    {
        int i = Array.BinarySearch(_lineStarts, index);
        return (i >= 0 ? i : ~i - 1) + 1;
    }

    private ChatTemplateException Error(int index, string message) => new($"chat template line {LineAt(index)}: {message}");

    private void Run()
    {
        bool stripNext = false; // previous tag ended with "-": strip all leading whitespace
        while (_pos <= _src.Length)
        {
            int tag = NextTagStart(_pos);
            int textEnd = tag < 0 ? _src.Length : tag;
            string text = _src[_pos..textEnd];
            int textStart = _pos;
            if (stripNext)
            {
                string trimmed = text.TrimStart();
                textStart += text.Length - trimmed.Length;
                text = trimmed;
            }
            if (tag >= 0)
                text = ApplyTagLeftRules(text, textStart, tag);
            if (text.Length > 0)
                _tokens.Add(new Token(TokenKind.Text, text, LineAt(textStart)));
            if (tag < 0)
                break;
            stripNext = LexTag(tag, out bool trimNewline);
            if (trimNewline && _pos < _src.Length)
            {
                if (_src[_pos] == '\n')
                    _pos++;
                else if (_src[_pos] == '\r' && _pos + 1 < _src.Length && _src[_pos + 1] == '\n')
                    _pos += 2;
            }
        }
        _tokens.Add(new Token(TokenKind.Eof, "", LineAt(_src.Length)));
    }

    private int NextTagStart(int from)
    {
        for (int i = _src.IndexOf('{', from); i >= 0 && i + 1 < _src.Length; i = _src.IndexOf('{', i + 1))
            if (_src[i + 1] is '{' or '%' or '#')
                return i;
        return -1;
    }

    /// <summary>"-" strips the text's trailing whitespace; lstrip_blocks strips indentation before {% and {#.</summary>
    private string ApplyTagLeftRules(string text, int textStart, int tag)
    {
        char kind = _src[tag + 1];
        char sign = tag + 2 < _src.Length ? _src[tag + 2] : '\0';
        if (sign == '-')
            return text.TrimEnd();
        if (sign == '+' || !_lstripBlocks || kind == '{')
            return text;
        int lineStart = text.LastIndexOf('\n') + 1;
        bool atLineStart = lineStart > 0 || textStart == 0 || _src[textStart - 1] == '\n';
        if (atLineStart && text.AsSpan(lineStart).Trim(" \t\v\f\r").IsEmpty && lineStart < text.Length)
            return text[..lineStart];
        return text;
    }

    /// <summary>Lexes one tag at <paramref name="tag"/>; returns whether it ended with "-".</summary>
    private bool LexTag(int tag, out bool trimNewline)
    {
        char kind = _src[tag + 1];
        _pos = tag + 2;
        if (_pos < _src.Length && _src[_pos] is '-' or '+')
            _pos++;
        if (kind == '#')
        {
            int end = _src.IndexOf("#}", _pos, StringComparison.Ordinal);
            if (end < 0)
                throw Error(tag, "unclosed comment '{#'");
            _pos = end + 2;
            char before = _src[end - 1];
            trimNewline = _trimBlocks && before != '+' && before != '-';
            return before == '-' && end - 1 >= tag + 2;
        }
        bool isVar = kind == '{';
        _tokens.Add(new Token(isVar ? TokenKind.VarBegin : TokenKind.BlockBegin, "", LineAt(tag)));
        int depth = 0; // open braces of dict literals, so "}}" inside one does not end the tag
        while (true)
        {
            while (_pos < _src.Length && char.IsWhiteSpace(_src[_pos]))
                _pos++;
            if (_pos >= _src.Length)
                throw Error(tag, $"unclosed tag '{_src.Substring(tag, 2)}'");
            string close = isVar ? "}}" : "%}";
            char c = _src[_pos];
            if (depth == 0 && (c is '-' or '+') && At(_pos + 1, close) || depth == 0 && At(_pos, close))
            {
                bool minus = c == '-', plus = c == '+';
                _pos += (minus || plus ? 1 : 0) + 2;
                _tokens.Add(new Token(isVar ? TokenKind.VarEnd : TokenKind.BlockEnd, "", LineAt(_pos)));
                trimNewline = !isVar && _trimBlocks && !minus && !plus;
                if (!isVar && IsRawBlockStart())
                    LexRaw(tag);
                return minus;
            }
            LexExpressionToken(ref depth);
        }
    }

    private bool At(int index, string s) => string.CompareOrdinal(_src, index, s, 0, s.Length) == 0;

    private void LexExpressionToken(ref int depth)
    {
        int start = _pos;
        char c = _src[_pos];
        int line = LineAt(start);
        if (c is '\'' or '"')
        {
            _tokens.Add(new Token(TokenKind.String, ReadString(c), line));
        }
        else if (char.IsAsciiDigit(c))
        {
            while (_pos < _src.Length && (char.IsAsciiDigit(_src[_pos]) || _src[_pos] == '_'))
                _pos++;
            bool isFloat = false;
            if (_pos + 1 < _src.Length && _src[_pos] == '.' && char.IsAsciiDigit(_src[_pos + 1]))
            {
                isFloat = true;
                _pos++;
                while (_pos < _src.Length && char.IsAsciiDigit(_src[_pos]))
                    _pos++;
            }
            if (_pos < _src.Length && _src[_pos] is 'e' or 'E')
            {
                isFloat = true;
                _pos++;
                if (_pos < _src.Length && _src[_pos] is '+' or '-')
                    _pos++;
                while (_pos < _src.Length && char.IsAsciiDigit(_src[_pos]))
                    _pos++;
            }
            _tokens.Add(new Token(isFloat ? TokenKind.Float : TokenKind.Integer, _src[start.._pos].Replace("_", ""), line));
        }
        else if (char.IsLetter(c) || c == '_')
        {
            while (_pos < _src.Length && (char.IsLetterOrDigit(_src[_pos]) || _src[_pos] == '_'))
                _pos++;
            _tokens.Add(new Token(TokenKind.Name, _src[start.._pos], line));
        }
        else
        {
            string? op = Operators.FirstOrDefault(o => At(_pos, o));
            if (op == null)
                throw Error(start, $"unexpected character '{c}'");
            depth += op == "{" ? 1 : op == "}" ? -1 : 0;
            _pos += op.Length;
            _tokens.Add(new Token(TokenKind.Operator, op, line));
        }
    }

    private string ReadString(char quote)
    {
        int start = _pos++;
        var sb = new StringBuilder();
        while (true)
        {
            if (_pos >= _src.Length)
                throw Error(start, "unterminated string literal");
            char c = _src[_pos++];
            if (c == quote)
                return sb.ToString();
            if (c != '\\' || _pos >= _src.Length)
            {
                sb.Append(c);
                continue;
            }
            char e = _src[_pos++];
            switch (e)
            {
                case 'n': sb.Append('\n'); break;
                case 't': sb.Append('\t'); break;
                case 'r': sb.Append('\r'); break;
                case '\\': sb.Append('\\'); break;
                case '\'': sb.Append('\''); break;
                case '"': sb.Append('"'); break;
                case 'u' when _pos + 4 <= _src.Length:
                    if (!ushort.TryParse(_src.AsSpan(_pos, 4), System.Globalization.NumberStyles.AllowHexSpecifier,
                            System.Globalization.CultureInfo.InvariantCulture, out ushort code))
                        throw Error(_pos - 2, $"invalid escape '\\u{_src.Substring(_pos, 4)}' in a string literal");
                    sb.Append((char)code);
                    _pos += 4;
                    break;
                default: sb.Append('\\').Append(e); break; // Python keeps unknown escapes verbatim
            }
        }
    }

    /// <summary>True when the tokens just emitted are exactly BlockBegin, Name "raw", BlockEnd.</summary>
    private bool IsRawBlockStart()
        => _tokens.Count >= 3 && _tokens[^2] is { Kind: TokenKind.Name, Value: "raw" } && _tokens[^3].Kind == TokenKind.BlockBegin;

    /// <summary>{% raw %}...{% endraw %}: the body is literal text.</summary>
    private void LexRaw(int tag)
    {
        _tokens.RemoveRange(_tokens.Count - 3, 3);
        // Searched from _pos in place: a copy of the rest per raw block would be quadratic in the template length.
        var m = EndRaw().Match(_src, _pos);
        if (!m.Success)
            throw Error(tag, "'raw' block is not closed by 'endraw'");
        string body = _src[_pos..m.Index];
        if (m.Groups[1].Value == "-")
            body = body.TrimEnd();
        if (body.Length > 0)
            _tokens.Add(new Token(TokenKind.Text, body, LineAt(_pos)));
        _pos = m.Index + m.Length;
        if (m.Groups[2].Value == "-")
            while (_pos < _src.Length && char.IsWhiteSpace(_src[_pos]))
                _pos++;
    }
}
