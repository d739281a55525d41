using System.Globalization;

namespace Daop.Engine.Load.Chat.Jinja;

/// <summary>Postfix parts of expressions: .attr, [index or slice], (call), | filter and "is" test.</summary>
internal sealed partial class Parser
{
    // Callers restore _depth: each postfix link nests the node one level deeper.
    private Expr ParsePostfix(Expr node)
    {
        while (true)
        {
            if (IsOp("."))
            {
                int line = Link();
                var name = Next();
                node = name.Kind switch
                {
                    TokenKind.Name => new AttrExpr(line, node, name.Value),
                    TokenKind.Integer => new ItemExpr(line, node, new LiteralExpr(line, long.Parse(name.Value, CultureInfo.InvariantCulture))),
                    _ => throw Error(line, $"expected an attribute name after '.' but found {Describe(name)}"),
                };
            }
            else if (IsOp("["))
            {
                node = ParseSubscript(node, Link());
            }
            else if (IsOp("("))
            {
                node = ParseCall(node);
            }
            else
            {
                return node;
            }
        }
    }

    private Expr ParseSubscript(Expr target, int line)
    {
        Expr? start = IsOp(":") ? null : ParseExpression();
        if (!AcceptOp(":"))
        {
            ExpectOp("]");
            return new ItemExpr(line, target, start!);
        }
        Expr? stop = IsOp(":") || IsOp("]") ? null : ParseExpression();
        Expr? step = null;
        if (AcceptOp(":") && !IsOp("]"))
            step = ParseExpression();
        ExpectOp("]");
        return new SliceExpr(line, target, start, stop, step);
    }

    /// <summary>Arguments after "(": positional, then name=value keywords, up to ")".</summary>
    private (List<Expr>, List<(string, Expr)>) ParseArguments()
    {
        var args = new List<Expr>();
        var kwargs = new List<(string, Expr)>();
        while (!AcceptOp(")"))
        {
            if (args.Count + kwargs.Count > 0)
            {
                ExpectOp(",");
                if (AcceptOp(")"))
                    break;
            }
            if (Current.Kind == TokenKind.Name && _tokens[_pos + 1] is { Kind: TokenKind.Operator, Value: "=" })
            {
                string name = Next().Value;
                _pos++;
                kwargs.Add((name, ParseExpression()));
            }
            else
            {
                if (kwargs.Count > 0)
                    throw Error(Current.Line, "positional argument follows keyword argument");
                args.Add(ParseExpression());
            }
        }
        return (args, kwargs);
    }

    // Callers restore _depth: each filter, test or call nests the node one level deeper.
    private Expr ParseFiltersAndTests(Expr node)
    {
        while (true)
        {
            if (IsOp("|"))
            {
                int line = Link();
                string name = ExpectName();
                if (!Builtins.HasFilter(name))
                    throw Error(line, $"unsupported filter '{name}'");
                var (args, kwargs) = AcceptOp("(") ? ParseArguments() : ([], []);
                node = new FilterExpr(line, node, name, args, kwargs);
            }
            else if (IsName("is"))
            {
                int line = Link();
                bool negated = AcceptName("not");
                string name = ExpectName();
                if (!Builtins.HasTest(name))
                    throw Error(line, $"unsupported test '{name}'");
                var args = new List<Expr>();
                if (AcceptOp("("))
                    args = ParseArguments().Item1;
                else if (Current.Kind is TokenKind.String or TokenKind.Integer or TokenKind.Float
                    || Current.Kind == TokenKind.Name && Current.Value is not ("else" or "and" or "or" or "if" or "is" or "in" or "not"))
                    args.Add(ParsePostfix(ParsePrimary()));
                node = new TestExpr(line, node, name, args, negated);
            }
            else if (IsOp("("))
            {
                node = ParseCall(node);
            }
            else
            {
                return node;
            }
        }
    }

    /// <summary>A call of <paramref name="callee"/>: the '(' at the current token, its arguments and the ')'.</summary>
    CallExpr ParseCall(Expr callee)
    {
        int line = Link();
        var (args, kwargs) = ParseArguments();
        return new CallExpr(line, callee, args, kwargs);
    }
}
