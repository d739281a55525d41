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
        var expr = ParseOr();
        while (IsName("if"))
        {
            int line = Next().Line;
            var condition = ParseOr();
            Expr? otherwise = AcceptName("else") ? ParseExpression() : null;
            expr = new ConditionalExpr(line, condition, expr, otherwise);
        }
        return expr;
    }

    private Expr ParseOr()
    {
        var left = ParseAnd();
        while (IsName("or"))
            left = new BinaryExpr(Next().Line, "or", left, ParseAnd());
        return left;
    }

    private Expr ParseAnd()
    {
        var left = ParseNot();
        while (IsName("and"))
            left = new BinaryExpr(Next().Line, "and", left, ParseNot());
        return left;
    }

    private Expr ParseNot()
    {
        if (IsName("not"))
            return new UnaryExpr(Next().Line, "not", ParseNot());
        return ParseCompare();
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
        var left = ParseConcat();
        while (IsOp("+") || IsOp("-"))
        {
            var op = Next();
            left = new BinaryExpr(op.Line, op.Value, left, ParseConcat());
        }
        return left;
    }

    private Expr ParseConcat()
    {
        var left = ParseMath2();
        while (IsOp("~"))
            left = new BinaryExpr(Next().Line, "~", left, ParseMath2());
        return left;
    }

    private Expr ParseMath2()
    {
        var left = ParsePow();
        while (IsOp("*") || IsOp("/") || IsOp("//") || IsOp("%"))
        {
            var op = Next();
            left = new BinaryExpr(op.Line, op.Value, left, ParsePow());
        }
        return left;
    }

    private Expr ParsePow()
    {
        var left = ParseUnary(withFilters: true);
        while (IsOp("**"))
            left = new BinaryExpr(Next().Line, "**", left, ParseUnary(withFilters: true));
        return left;
    }

    private Expr ParseUnary(bool withFilters)
    {
        Expr node;
        if (IsOp("-") || IsOp("+"))
        {
            var op = Next();
            node = new UnaryExpr(op.Line, op.Value, ParseUnary(withFilters: false));
        }
        else
        {
            node = ParsePrimary();
        }
        node = ParsePostfix(node);
        return withFilters ? ParseFiltersAndTests(node) : node;
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
                string s = t.Value;
                while (Current.Kind == TokenKind.String) // adjacent literals concatenate, as in Python
                    s += Next().Value;
                return new LiteralExpr(t.Line, s);
            case TokenKind.Integer:
                return new LiteralExpr(t.Line, long.Parse(t.Value, CultureInfo.InvariantCulture));
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
