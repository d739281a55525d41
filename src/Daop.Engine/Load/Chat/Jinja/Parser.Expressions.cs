using System.Globalization;

namespace Daop.Engine.Load.Chat.Jinja;

/// <summary>Expression grammar, in Jinja2's precedence order (lowest first).</summary>
internal sealed partial class Parser
{
    private static readonly HashSet<string> CompareOps = ["==", "!=", "<", "<=", ">", ">="];

    /// <summary>"a, b" without brackets (only after "set x ="); otherwise a single expression.</summary>
    private Expr ParseTuple()
    {
        int line = Current.Line;
        var first = ParseExpression();
        if (!IsOp(","))
            return first;
        var items = new List<Expr> { first };
        while (AcceptOp(","))
            items.Add(ParseExpression());
        return new ListExpr(line, items, IsTuple: true);
    }

    private Expr ParseExpression()
    {
        int outer = _depth;
        Deeper(Current.Line);
        var expr = ParseOr();
        while (IsName("if"))
        {
            int line = Next().Line;
            Deeper(line);
            var condition = ParseOr();
            Expr? otherwise = AcceptName("else") ? ParseExpression() : null;
            expr = new ConditionalExpr(line, condition, expr, otherwise);
        }
        _depth = outer;
        return expr;
    }

    private Expr ParseOr()
    {
        int outer = _depth;
        var left = ParseAnd();
        while (IsName("or"))
            left = new BinaryExpr(Link(), "or", left, ParseAnd());
        _depth = outer;
        return left;
    }

    private Expr ParseAnd()
    {
        int outer = _depth;
        var left = ParseNot();
        while (IsName("and"))
            left = new BinaryExpr(Link(), "and", left, ParseNot());
        _depth = outer;
        return left;
    }

    /// <summary>Consumes the operator of a chain link, which nests the chain one level deeper; returns its line.</summary>
    private int Link()
    {
        int line = Next().Line;
        Deeper(line);
        return line;
    }

    private Expr ParseNot()
    {
        if (!IsName("not"))
            return ParseCompare();
        int outer = _depth;
        var node = new UnaryExpr(Link(), "not", ParseNot());
        _depth = outer;
        return node;
    }

    private Expr ParseCompare()
    {
        int line = Current.Line;
        var first = ParseMath1();
        var rest = new List<(string, Expr)>();
        while (true)
        {
            if (Current.Kind == TokenKind.Operator && CompareOps.Contains(Current.Value))
                rest.Add((Next().Value, ParseMath1()));
            else if (AcceptName("in"))
                rest.Add(("in", ParseMath1()));
            else if (IsName("not") && IsName("in", 1))
            {
                _pos += 2;
                rest.Add(("not in", ParseMath1()));
            }
            else
                break;
        }
        return rest.Count == 0 ? first : new CompareExpr(line, first, rest);
    }

    private Expr ParseMath1()
    {
        int outer = _depth;
        var left = ParseConcat();
        while (IsOp("+") || IsOp("-"))
        {
            string op = Current.Value;
            left = new BinaryExpr(Link(), op, left, ParseConcat());
        }
        _depth = outer;
        return left;
    }

    private Expr ParseConcat()
    {
        int outer = _depth;
        var left = ParseMath2();
        while (IsOp("~"))
            left = new BinaryExpr(Link(), "~", left, ParseMath2());
        _depth = outer;
        return left;
    }

    private Expr ParseMath2()
    {
        int outer = _depth;
        var left = ParsePow();
        while (IsOp("*") || IsOp("/") || IsOp("//") || IsOp("%"))
        {
            string op = Current.Value;
            left = new BinaryExpr(Link(), op, left, ParsePow());
        }
        _depth = outer;
        return left;
    }

    private Expr ParsePow()
    {
        int outer = _depth;
        var left = ParseUnary(withFilters: true);
        while (IsOp("**"))
            left = new BinaryExpr(Link(), "**", left, ParseUnary(withFilters: true));
        _depth = outer;
        return left;
    }

    private Expr ParseUnary(bool withFilters)
    {
        int outer = _depth;
        Expr node;
        if (IsOp("-") || IsOp("+"))
        {
            string op = Current.Value;
            node = new UnaryExpr(Link(), op, ParseUnary(withFilters: false));
        }
        else
        {
            node = ParsePrimary();
        }
        node = ParsePostfix(node);
        node = withFilters ? ParseFiltersAndTests(node) : node;
        _depth = outer;
        return node;
    }

    private Expr ParsePrimary()
    {
        var t = Next();
        switch (t.Kind)
        {
            case TokenKind.Name:
                return t.Value switch
                {
                    "true" or "True" => new LiteralExpr(t.Line, true),
                    "false" or "False" => new LiteralExpr(t.Line, false),
                    "none" or "None" => new LiteralExpr(t.Line, null),
                    _ => new NameExpr(t.Line, t.Value),
                };
            case TokenKind.String:
                if (Current.Kind != TokenKind.String)
                    return new LiteralExpr(t.Line, t.Value);
                // Adjacent literals concatenate, as in Python (a builder: += would be quadratic in their number).
                var s = new System.Text.StringBuilder(t.Value);
                while (Current.Kind == TokenKind.String)
                    s.Append(Next().Value);
                return new LiteralExpr(t.Line, s.ToString());
            case TokenKind.Integer:
                return new LiteralExpr(t.Line, long.TryParse(t.Value, NumberStyles.None, CultureInfo.InvariantCulture, out long n)
                    ? n : throw Error(t.Line, $"integer literal {t.Value} is out of range (at most {long.MaxValue})"));
            case TokenKind.Float:
                return new LiteralExpr(t.Line, double.Parse(t.Value, CultureInfo.InvariantCulture));
            case TokenKind.Operator when t.Value == "(":
                if (AcceptOp(")"))
                    return new ListExpr(t.Line, [], IsTuple: true);
                var inner = ParseExpression();
                if (AcceptOp(")"))
                    return inner;
                var tuple = new List<Expr> { inner };
                while (AcceptOp(",") && !IsOp(")"))
                    tuple.Add(ParseExpression());
                ExpectOp(")");
                return new ListExpr(t.Line, tuple, IsTuple: true);
            case TokenKind.Operator when t.Value == "[":
                var items = new List<Expr>();
                while (!AcceptOp("]"))
                {
                    if (items.Count > 0)
                    {
                        ExpectOp(",");
                        if (AcceptOp("]"))
                            break;
                    }
                    items.Add(ParseExpression());
                }
                return new ListExpr(t.Line, items);
            case TokenKind.Operator when t.Value == "{":
                var pairs = new List<(Expr, Expr)>();
                while (!AcceptOp("}"))
                {
                    if (pairs.Count > 0)
                    {
                        ExpectOp(",");
                        if (AcceptOp("}"))
                            break;
                    }
                    var key = ParseExpression();
                    ExpectOp(":");
                    pairs.Add((key, ParseExpression()));
                }
                return new DictExpr(t.Line, pairs);
            default:
                throw Error(t.Line, $"unexpected {Describe(t)} in an expression");
        }
    }
}
