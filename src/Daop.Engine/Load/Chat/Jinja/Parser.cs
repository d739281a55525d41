using System.Runtime.CompilerServices;

namespace Daop.Engine.Load.Chat.Jinja;

/// <summary>
/// Statement parser of the Jinja subset (tags: if/elif/else, for/else with an optional "if" filter,
/// set (also block set and namespace attributes), macro, break, continue, generation). Anything else
/// is rejected with the tag name and line. Expressions live in Parser.Expressions.cs.
/// </summary>
internal sealed partial class Parser
{
    private readonly List<Token> _tokens;
    private readonly int _maxDepth;
    private int _pos;
    private int _depth; // nesting so far: blocks, brackets and chained operators (each link of a chain nests one more node)

    private Parser(List<Token> tokens, int maxDepth)
    {
        _tokens = tokens;
        _maxDepth = maxDepth;
    }

    /// <exception cref="ChatTemplateException">The template is invalid, too long or nests too deeply.</exception>
    public static List<Node> Parse(string source, ChatTemplateLimits limits)
    {
        if (source.Length > limits.MaxTemplateLength)
            throw new ChatTemplateException($"chat template: the template has {source.Length} characters; the limit is {limits.MaxTemplateLength}");
        var parser = new Parser(Lexer.Tokenize(source), limits.MaxNestingDepth);
        return parser.ParseBody([], out _);
    }

    /// <summary>
    /// Counts one more level of nesting. The recursive descent would overflow the stack on e.g. 50,000 nested
    /// brackets, and the interpreter recurses as deep as the tree, so depth is bounded here. Callers restore
    /// <see cref="_depth"/> when their construct ends (an error ends the whole parse, so no finally is needed).
    /// </summary>
    private void Deeper(int line)
    {
        if (++_depth > _maxDepth)
            throw Error(line, $"the template nests deeper than {_maxDepth} levels (blocks, brackets and chained operators)");
        if (!RuntimeHelpers.TryEnsureSufficientExecutionStack())
            throw Error(line, "the template nests too deeply for this thread's stack");
    }

    private Token Current => _tokens[_pos];

    private Token Next() => _tokens[_pos++];

    private static ChatTemplateException Error(int line, string message) => new($"chat template line {line}: {message}");

    private bool IsName(string value, int offset = 0)
        => _pos + offset < _tokens.Count && _tokens[_pos + offset] is { Kind: TokenKind.Name } t && t.Value == value;

    private bool IsOp(string value) => Current is { Kind: TokenKind.Operator } t && t.Value == value;

    private bool AcceptOp(string value)
    {
        if (!IsOp(value))
            return false;
        _pos++;
        return true;
    }

    private bool AcceptName(string value)
    {
        if (!IsName(value))
            return false;
        _pos++;
        return true;
    }

    private void ExpectOp(string value)
    {
        if (!AcceptOp(value))
            throw Error(Current.Line, $"expected '{value}' but found {Describe(Current)}");
    }

    private void Expect(TokenKind kind)
    {
        if (Current.Kind != kind)
            throw Error(Current.Line, $"expected {Describe(kind)} but found {Describe(Current)}");
        _pos++;
    }

    private string ExpectName()
    {
        if (Current.Kind != TokenKind.Name)
            throw Error(Current.Line, $"expected a name but found {Describe(Current)}");
        return Next().Value;
    }

    private static string Describe(Token t) => t.Kind switch
    {
        TokenKind.Eof => "the end of the template",
        TokenKind.Text => "text",
        TokenKind.String => $"string '{t.Value}'",
        _ when t.Value.Length > 0 => $"'{t.Value}'",
        _ => Describe(t.Kind),
    };

    private static string Describe(TokenKind k) => k switch
    {
        TokenKind.VarEnd => "'}}'",
        TokenKind.BlockEnd => "'%}'",
        TokenKind.VarBegin => "'{{'",
        TokenKind.BlockBegin => "'{%'",
        _ => k.ToString(),
    };

    /// <summary>Parses nodes until one of <paramref name="endTags"/> (left unconsumed but for "{%").</summary>
    private List<Node> ParseBody(string[] endTags, out string endTag)
    {
        int outer = _depth;
        Deeper(Current.Line);
        var nodes = new List<Node>();
        while (true)
        {
            var t = Current;
            switch (t.Kind)
            {
                case TokenKind.Text:
                    _pos++;
                    nodes.Add(new TextNode(t.Line, t.Value));
                    break;
                case TokenKind.VarBegin:
                    _pos++;
                    var value = ParseExpression();
                    Expect(TokenKind.VarEnd);
                    nodes.Add(new OutputNode(t.Line, value));
                    break;
                case TokenKind.BlockBegin:
                    var tag = _tokens[_pos + 1];
                    if (tag.Kind == TokenKind.Name && endTags.Contains(tag.Value))
                    {
                        _pos += 2;
                        endTag = tag.Value;
                        _depth = outer;
                        return nodes;
                    }
                    _pos++;
                    nodes.Add(ParseStatement());
                    break;
                case TokenKind.Eof:
                    if (endTags.Length > 0)
                        throw Error(t.Line, $"missing '{endTags[^1]}' before the end of the template");
                    endTag = "";
                    _depth = outer;
                    return nodes;
                default:
                    throw Error(t.Line, $"unexpected {Describe(t)}");
            }
        }
    }

    private Node ParseStatement()
    {
        var tag = Current;
        if (tag.Kind != TokenKind.Name)
            throw Error(tag.Line, $"expected a tag name after '{{%' but found {Describe(tag)}");
        _pos++;
        switch (tag.Value)
        {
            case "if":
                return ParseIf(tag.Line);
            case "for":
                return ParseFor(tag.Line);
            case "set":
                return ParseSet(tag.Line);
            case "macro":
                return ParseMacro(tag.Line);
            case "break":
                Expect(TokenKind.BlockEnd);
                return new BreakNode(tag.Line);
            case "continue":
                Expect(TokenKind.BlockEnd);
                return new ContinueNode(tag.Line);
            case "generation":
                Expect(TokenKind.BlockEnd);
                var body = ParseBody(["endgeneration"], out _);
                Expect(TokenKind.BlockEnd);
                return new BlockNode(tag.Line, body);
            case "elif" or "else" or "endif" or "endfor" or "endset" or "endmacro" or "endgeneration":
                throw Error(tag.Line, $"unexpected tag '{tag.Value}'");
            default:
                throw Error(tag.Line, $"unsupported tag '{tag.Value}'");
        }
    }

    private IfNode ParseIf(int line)
    {
        var branches = new List<(Expr, List<Node>)>();
        var condition = ParseExpression();
        while (true)
        {
            Expect(TokenKind.BlockEnd);
            var body = ParseBody(["elif", "else", "endif"], out string end);
            branches.Add((condition, body));
            if (end == "elif")
            {
                condition = ParseExpression();
                continue;
            }
            List<Node>? elseBody = null;
            if (end == "else")
            {
                Expect(TokenKind.BlockEnd);
                elseBody = ParseBody(["endif"], out _);
            }
            Expect(TokenKind.BlockEnd);
            return new IfNode(line, branches, elseBody);
        }
    }

    private ForNode ParseFor(int line)
    {
        var targets = new List<string> { ExpectName() };
        while (AcceptOp(","))
            targets.Add(ExpectName());
        if (!AcceptName("in"))
            throw Error(Current.Line, $"expected 'in' in 'for' but found {Describe(Current)}");
        // No conditional expression here: a trailing "if" is the loop filter.
        var iterable = ParseOr();
        Expr? filter = AcceptName("if") ? ParseExpression() : null;
        if (IsName("recursive"))
            throw Error(Current.Line, "unsupported construct 'recursive' loop");
        Expect(TokenKind.BlockEnd);
        var body = ParseBody(["else", "endfor"], out string end);
        List<Node>? elseBody = null;
        if (end == "else")
        {
            Expect(TokenKind.BlockEnd);
            elseBody = ParseBody(["endfor"], out _);
        }
        Expect(TokenKind.BlockEnd);
        return new ForNode(line, targets, iterable, filter, body, elseBody);
    }

    private Node ParseSet(int line)
    {
        var targets = new List<string> { ExpectName() };
        string? attribute = null;
        if (AcceptOp("."))
            attribute = ExpectName();
        while (attribute == null && AcceptOp(","))
            targets.Add(ExpectName());
        if (Current.Kind == TokenKind.BlockEnd && attribute == null && targets.Count == 1)
        {
            _pos++;
            var body = ParseBody(["endset"], out _);
            Expect(TokenKind.BlockEnd);
            return new SetBlockNode(line, targets[0], body);
        }
        ExpectOp("=");
        var value = ParseTuple();
        Expect(TokenKind.BlockEnd);
        return new SetNode(line, targets, attribute, value);
    }

    private MacroNode ParseMacro(int line)
    {
        string name = ExpectName();
        var parameters = new List<(string, Expr?)>();
        ExpectOp("(");
        while (!AcceptOp(")"))
        {
            if (parameters.Count > 0)
                ExpectOp(",");
            string p = ExpectName();
            parameters.Add((p, AcceptOp("=") ? ParseExpression() : null));
        }
        Expect(TokenKind.BlockEnd);
        var body = ParseBody(["endmacro"], out _);
        Expect(TokenKind.BlockEnd);
        return new MacroNode(line, name, parameters, body);
    }
}
