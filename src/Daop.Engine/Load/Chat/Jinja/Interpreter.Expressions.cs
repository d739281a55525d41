using System.Text;

namespace Daop.Engine.Load.Chat.Jinja;

/// <summary>Expression evaluation with Python/Jinja semantics.</summary>
internal sealed partial class Interpreter
{
    private object? Eval(Expr e, Scope scope)
    {
        int outer = _guard.Enter(e.Line);
        var value = EvalNode(e, scope);
        _guard.Exit(outer);
        return value;
    }

    private object? EvalNode(Expr e, Scope scope)
    {
        switch (e)
        {
            case LiteralExpr l:
                return l.Value;
            case NameExpr n:
                return scope.Lookup(n.Name);
            case ListExpr l:
                var list = EvalAll(l.Items, scope);
                return l.IsTuple ? new PyTuple(list) : list;
            case DictExpr d:
                var dict = new Dictionary<string, object?>(StringComparer.Ordinal);
                foreach (var (k, v) in d.Items)
                    dict[Eval(k, scope) as string ?? throw Error(k.Line, "dict keys must be strings")] = Eval(v, scope);
                return dict;
            case AttrExpr a:
                return GetAttribute(Defined(Eval(a.Target, scope), a.Line), a.Name);
            case ItemExpr i:
                return GetItem(Defined(Eval(i.Target, scope), i.Line), Eval(i.Index, scope), i.Line);
            case SliceExpr s:
                return Slice(Defined(Eval(s.Target, scope), s.Line), Optional(s.Start, scope), Optional(s.Stop, scope), Optional(s.Step, scope), s.Line);
            case CallExpr c:
                return Call(c, scope);
            case FilterExpr f:
                return Builtins.ApplyFilter(f.Name, Eval(f.Target, scope), EvalAll(f.Args, scope), EvalKeywords(f.Kwargs, scope, f.Line), f.Line);
            case TestExpr t:
                bool passed = Builtins.ApplyTest(t.Name, Eval(t.Target, scope), EvalAll(t.Args, scope), t.Line);
                return passed != t.Negated;
            case UnaryExpr u:
                return Unary(u.Op, Eval(u.Operand, scope), u.Line);
            case BinaryExpr b when b.Op == "and":
                var left = Eval(b.Left, scope);
                return Values.Truthy(left) ? Eval(b.Right, scope) : left; // Python returns an operand
            case BinaryExpr b when b.Op == "or":
                var first = Eval(b.Left, scope);
                return Values.Truthy(first) ? first : Eval(b.Right, scope);
            case BinaryExpr b:
                return Arithmetic.Apply(b.Op, Eval(b.Left, scope), Eval(b.Right, scope), b.Line);
            case CompareExpr c:
                var current = Eval(c.First, scope);
                foreach (var (op, rightExpr) in c.Rest)
                {
                    var right = Eval(rightExpr, scope);
                    if (!Compare(op, current, right, c.Line))
                        return false;
                    current = right;
                }
                return true;
            case ConditionalExpr c:
                if (Values.Truthy(Eval(c.Condition, scope)))
                    return Eval(c.Then, scope);
                return c.Else != null ? Eval(c.Else, scope) : Undefined.Instance;
            default:
                throw Error(e.Line, $"cannot evaluate {e.GetType().Name}");
        }
    }

    /// <summary>Like Jinja: an undefined value may be printed or tested, but not looked into.</summary>
    private static object? Defined(object? v, int line) => v is Undefined u ? throw Error(line, u.Hint) : v;

    private object? Optional(Expr? e, Scope scope) => e == null ? null : Eval(e, scope);

    private List<object?> EvalAll(List<Expr> items, Scope scope)
    {
        var values = new List<object?>(items.Count);
        foreach (var item in items)
            values.Add(Eval(item, scope));
        return values;
    }

    private Dictionary<string, object?> EvalKeywords(List<(string Name, Expr Value)> kwargs, Scope scope, int line)
    {
        var values = new Dictionary<string, object?>(kwargs.Count, StringComparer.Ordinal);
        foreach (var (name, value) in kwargs)
            if (!values.TryAdd(name, Eval(value, scope)))
                throw Error(line, $"keyword argument '{name}' is given twice");
        return values;
    }

    private object? Call(CallExpr c, Scope scope)
    {
        var function = Eval(c.Function, scope);
        var args = EvalAll(c.Args, scope);
        var kwargs = EvalKeywords(c.Kwargs, scope, c.Line);
        if (function is Callable callable)
        {
            try
            {
                return callable.Invoke(args, kwargs);
            }
            catch (ChatTemplateException)
            {
                throw;
            }
            catch (Exception ex) when (ex is InvalidCastException or ArgumentException or FormatException or OverflowException)
            {
                throw Error(c.Line, $"{callable.Name}(): {ex.Message}");
            }
        }
        if (function is Undefined u)
            throw Error(c.Line, u.Hint);
        string name = c.Function switch
        {
            NameExpr n => n.Name,
            AttrExpr a => a.Name,
            _ => "expression",
        };
        throw Error(c.Line, $"'{name}' ({Values.TypeName(function)}) is not callable");
    }

    private static object? Unary(string op, object? v, int line) => op switch
    {
        "not" => !Values.Truthy(v),
        _ when v is Undefined u => throw Error(line, u.Hint),
        "-" when v is long l => -l,
        "-" when v is double d => -d,
        "+" when v is long or double => v,
        _ => throw Error(line, $"bad operand type for unary '{op}': {Values.TypeName(v)}"),
    };

    private static bool Compare(string op, object? a, object? b, int line)
    {
        switch (op)
        {
            case "==": return Values.Equal(a, b);
            case "!=": return !Values.Equal(a, b);
            case "in": return Contains(b, a);
            case "not in": return !Contains(b, a);
        }
        if ((a as Undefined ?? b as Undefined) is { } u)
            throw Error(line, u.Hint);
        int c = Values.Compare(a, b)
            ?? throw Error(line, $"'{op}' is not supported between {Values.TypeName(a)} and {Values.TypeName(b)}");
        return op switch { "<" => c < 0, "<=" => c <= 0, ">" => c > 0, _ => c >= 0 };
    }

    /// <summary>Python "item in container"; an undefined container contains nothing.</summary>
    internal static bool Contains(object? container, object? item) => container switch
    {
        string s => item is string sub && s.Contains(sub, StringComparison.Ordinal),
        List<object?> l => l.Any(x => Values.Equal(x, item)),
        Dictionary<string, object?> d => item is string k && d.ContainsKey(k),
        _ => false,
    };

    /// <summary>Jinja getattr: object attributes and methods first, then dict items; else Undefined.</summary>
    internal static object? GetAttribute(object? target, string name) => target switch
    {
        Namespace ns => ns.Attributes.TryGetValue(name, out var v) ? v : NoAttribute(target, name),
        LoopContext loop => loop.Get(name),
        Dictionary<string, object?> d => (object?)StringMethods.Bind(d, name) ?? (d.TryGetValue(name, out var v) ? v : NoAttribute(target, name)),
        string s => (object?)StringMethods.Bind(s, name) ?? NoAttribute(target, name),
        Undefined => target,
        _ => NoAttribute(target, name),
    };

    private static Undefined NoAttribute(object? target, string name)
        => new(target == null ? $"'None' has no attribute '{name}'" : $"'{Values.TypeName(target)} object' has no attribute '{name}'");

    /// <summary>Jinja getitem: subscript first, attribute as fallback; missing → Undefined.</summary>
    private static object? GetItem(object? target, object? key, int line)
    {
        switch (target)
        {
            case List<object?> list when key is long i:
                if (i < 0)
                    i += list.Count;
                return i >= 0 && i < list.Count ? list[(int)i] : new Undefined($"list object has no element {i}");
            case string s when key is long i:
                var runes = Values.Runes(s);
                if (i < 0)
                    i += runes.Count;
                return i >= 0 && i < runes.Count ? runes.At((int)i) : new Undefined($"str object has no element {i}");
            case Dictionary<string, object?> d when key is string k:
                return d.TryGetValue(k, out var v) ? v : GetAttribute(d, k);
            case List<object?> or string when key is not long:
                throw Error(line, $"{Values.TypeName(target)} indices must be integers, not {Values.TypeName(key)}");
            default:
                return key is string name ? GetAttribute(target, name) : NoAttribute(target, Values.ToStr(key));
        }
    }

    /// <summary>Python slicing (seq[start:stop:step], including negative steps such as messages[::-1]).</summary>
    private static object? Slice(object? target, object? start, object? stop, object? step, int line)
    {
        int count = target switch
        {
            string s => Values.Runes(s).Count,
            List<object?> l => l.Count,
            _ => throw Error(line, $"a value of type {Values.TypeName(target)} cannot be sliced"),
        };
        var (from, to, st) = SliceBounds(count, start, stop, step, line);
        if (target is string str)
        {
            var runes = Values.Runes(str);
            var text = new StringBuilder();
            for (long i = from; st > 0 ? i < to : i > to; i += st)
                text.Append(runes.At((int)i));
            return text.ToString();
        }
        var items = (List<object?>)target!;
        var result = new List<object?>();
        for (long i = from; st > 0 ? i < to : i > to; i += st)
            result.Add(items[(int)i]);
        return result;
    }

    /// <summary>Python's slice.indices: the first index, the bound and the step over <paramref name="n"/> items.</summary>
    private static (long From, long To, long Step) SliceBounds(long n, object? start, object? stop, object? step, int line)
    {
        long st = step switch { null => 1, long v => v, _ => throw Error(line, "slice step must be an integer") };
        if (st == 0)
            throw Error(line, "slice step cannot be zero");
        st = Math.Clamp(st, -(n + 1), n + 1); // same slice, and i += st cannot overflow
        long Adjust(object? v, long fallback)
        {
            if (v == null)
                return fallback;
            if (v is not long i)
                throw Error(line, "slice indices must be integers");
            if (i < 0)
            {
                i += n;
                if (i < 0)
                    i = st < 0 ? -1 : 0;
            }
            else if (i >= n)
            {
                i = st < 0 ? n - 1 : n;
            }
            return i;
        }
        return (Adjust(start, st < 0 ? n - 1 : 0), Adjust(stop, st < 0 ? -1 : n), st);
    }
}
