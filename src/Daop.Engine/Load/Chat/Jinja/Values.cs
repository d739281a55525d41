using System.Collections;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Daop.Engine.Load.Chat.Jinja;

/// <summary>
/// Jinja's default Undefined: renders as "", is falsy, iterates as empty, but using it further
/// (attribute, subscript, call, arithmetic) fails with <see cref="Hint"/>, e.g. "'x' is undefined".
/// </summary>
internal sealed class Undefined(string hint)
{
    public static readonly Undefined Instance = new("value is undefined");

    public string Hint { get; } = hint;
}

/// <summary>The object made by namespace(...): the one value a loop body may change for later use.</summary>
internal sealed class Namespace
{
    public Dictionary<string, object?> Attributes { get; } = new(StringComparer.Ordinal);
}

/// <summary>A Python tuple: a list that prints as "(a, b)" (tuple literals, dict.items() pairs).</summary>
internal sealed class PyTuple(IEnumerable<object?> items) : List<object?>(items);

internal delegate object? JinjaFunction(List<object?> args, Dictionary<string, object?> kwargs);

/// <summary>Anything callable from a template: globals, macros, bound string/dict methods.</summary>
internal sealed class Callable(string name, JinjaFunction function)
{
    public string Name { get; } = name;

    public object? Invoke(List<object?> args, Dictionary<string, object?> kwargs) => function(args, kwargs);
}

/// <summary>
/// Python semantics for the value model: null is None, long/double are numbers, List&lt;object?&gt; is
/// a list (or tuple), Dictionary&lt;string, object?&gt; a dict, plus <see cref="Undefined"/>.
/// </summary>
internal static class Values
{
    public static bool IsUndefined(object? v) => v is Undefined;

    public static bool Truthy(object? v) => v switch
    {
        null or Undefined => false,
        bool b => b,
        long l => l != 0,
        double d => d != 0,
        string s => s.Length > 0,
        List<object?> l => l.Count > 0,
        Dictionary<string, object?> d => d.Count > 0,
        _ => true,
    };

    /// <summary>Python str(): what {{ value }} prints.</summary>
    public static string ToStr(object? v) => v switch
    {
        Undefined => "",
        string s => s,
        _ => Repr(v),
    };

    /// <summary>Python repr(), used for values inside printed lists and dicts.</summary>
    public static string Repr(object? v)
    {
        var sb = new StringBuilder();
        AppendRepr(sb, v, 0, RenderGuard.Current);
        return sb.ToString();
    }

    // Written into one builder and checked as it grows: a list may hold the same big value a million times, so
    // the printed size is known only while printing.
    private static void AppendRepr(StringBuilder sb, object? v, int depth, RenderGuard guard)
    {
        guard.CheckValueDepth(depth);
        switch (v)
        {
            case PyTuple t:
                sb.Append('(');
                AppendItems(sb, t, depth, guard);
                sb.Append(t.Count == 1 ? ",)" : ")");
                break;
            case List<object?> l:
                sb.Append('[');
                AppendItems(sb, l, depth, guard);
                sb.Append(']');
                break;
            case Dictionary<string, object?> d:
                sb.Append('{');
                bool first = true;
                foreach (var (key, value) in d)
                {
                    if (!first)
                        sb.Append(", ");
                    first = false;
                    sb.Append(StringRepr(key)).Append(": ");
                    AppendRepr(sb, value, depth + 1, guard);
                }
                sb.Append('}');
                break;
            default:
                sb.Append(ScalarRepr(v));
                break;
        }
        guard.CheckString(sb.Length);
    }

    private static void AppendItems(StringBuilder sb, List<object?> items, int depth, RenderGuard guard)
    {
        for (int i = 0; i < items.Count; i++)
        {
            if (i > 0)
                sb.Append(", ");
            AppendRepr(sb, items[i], depth + 1, guard);
        }
    }

    private static string ScalarRepr(object? v) => v switch
    {
        null => "None",
        Undefined => "",
        bool b => b ? "True" : "False",
        long l => l.ToString(CultureInfo.InvariantCulture),
        double d => FloatRepr(d),
        string s => StringRepr(s),
        Namespace => "<Namespace>",
        Callable c => $"<function {c.Name}>",
        _ => v.ToString() ?? "",
    };

    public static string FloatRepr(double d)
    {
        if (double.IsNaN(d))
            return "nan";
        if (double.IsInfinity(d))
            return d > 0 ? "inf" : "-inf";
        if (d == Math.Floor(d) && Math.Abs(d) < 1e16)
            return d.ToString("F1", CultureInfo.InvariantCulture);
        string r = d.ToString("R", CultureInfo.InvariantCulture);
        int e = r.IndexOf('E');
        if (e < 0)
            return r;
        // .NET "1E-05" → Python "1e-05".
        string mantissa = r[..e], exp = r[(e + 1)..];
        char sign = exp[0] == '-' ? '-' : '+';
        exp = exp.TrimStart('+', '-');
        return mantissa + "e" + sign + exp.PadLeft(2, '0');
    }

    private static string StringRepr(string s)
    {
        char quote = s.Contains('\'') && !s.Contains('"') ? '"' : '\'';
        var sb = new StringBuilder(s.Length + 2).Append(quote);
        foreach (char c in s)
        {
            switch (c)
            {
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                default:
                    if (c == quote)
                        sb.Append('\\').Append(c);
                    else if (c < 0x20 || c == 0x7F)
                        sb.Append("\\x").Append(((int)c).ToString("x2", CultureInfo.InvariantCulture));
                    else
                        sb.Append(c);
                    break;
            }
        }
        return sb.Append(quote).ToString();
    }

    public static string TypeName(object? v) => v switch
    {
        null => "NoneType",
        Undefined => "undefined",
        bool => "bool",
        long => "int",
        double => "float",
        string => "str",
        PyTuple => "tuple",
        List<object?> => "list",
        Dictionary<string, object?> => "dict",
        Namespace => "Namespace",
        Callable => "function",
        _ => v.GetType().Name,
    };

    public static bool IsNumber(object? v) => v is long or double or bool;

    public static double ToDouble(object? v) => v switch
    {
        long l => l,
        double d => d,
        bool b => b ? 1 : 0,
        _ => throw new InvalidCastException(),
    };

    public static bool Equal(object? a, object? b) => Equal(a, b, 0, RenderGuard.Current);

    // Guarded: values can nest deeply, and lists sharing items can make a comparison cost far more than their size.
    private static bool Equal(object? a, object? b, int depth, RenderGuard guard)
    {
        guard.Tick(); // unique and "in" compare many pairs; each comparison is a unit of work
        if (IsNumber(a) && IsNumber(b))
            return ToDouble(a) == ToDouble(b);
        if (a is PyTuple != b is PyTuple)
            return false; // Python: (1, 2) != [1, 2]
        if (ReferenceEquals(a, b))
            return true; // Python's containers also compare items by identity first
        guard.CheckValueDepth(depth);
        switch (a, b)
        {
            case (string x, string y):
                return string.Equals(x, y, StringComparison.Ordinal);
            case (List<object?> x, List<object?> y):
                if (x.Count != y.Count)
                    return false;
                for (int i = 0; i < x.Count; i++)
                    if (!Equal(x[i], y[i], depth + 1, guard))
                        return false;
                return true;
            case (Dictionary<string, object?> x, Dictionary<string, object?> y):
                if (x.Count != y.Count)
                    return false;
                foreach (var (key, value) in x)
                    if (!y.TryGetValue(key, out var other) || !Equal(value, other, depth + 1, guard))
                        return false;
                return true;
            default:
                return a is Undefined && b is Undefined;
        }
    }

    /// <summary>Ordering for &lt; &gt; and sort; null when Python would raise TypeError.</summary>
    public static int? Compare(object? a, object? b)
    {
        if (IsNumber(a) && IsNumber(b))
            return ToDouble(a).CompareTo(ToDouble(b));
        if (a is string x && b is string y)
            return string.CompareOrdinal(x, y);
        return null;
    }

    /// <summary>Items of an iterable: list items, string characters, dict keys; Undefined is empty.</summary>
    public static List<object?>? Iterate(object? v) => v switch
    {
        Undefined => [],
        List<object?> l => l,
        string s => Characters(s),
        Dictionary<string, object?> d => d.Keys.Select(k => (object?)k).ToList(),
        _ => null,
    };

    private static List<object?> Characters(string s)
    {
        var runes = Runes(s);
        RenderGuard.Current.CheckList(runes.Count);
        var list = new List<object?>(runes.Count);
        for (int i = 0; i < runes.Count; i++)
            list.Add(runes.At(i));
        return list;
    }

    /// <summary>The code points of <paramref name="s"/> by index, as Python indexes a str.</summary>
    public static RuneView Runes(string s) => new(s);

    /// <summary>Converts caller-supplied .NET values (ints, records' strings, dictionaries, JSON) to the model.</summary>
    public static object? FromClr(object? v) => v switch
    {
        null or Undefined or bool or long or double or string or Namespace or Callable => v,
        int i => (long)i,
        short s => (long)s,
        byte b => (long)b,
        uint u => (long)u,
        float f => (double)f,
        decimal m => (double)m,
        JsonElement e => FromJson(e),
        IDictionary d => d.Keys.Cast<object>().ToDictionary(k => Convert.ToString(k, CultureInfo.InvariantCulture)!, k => FromClr(d[k])),
        IEnumerable<KeyValuePair<string, object?>> d => d.ToDictionary(p => p.Key, p => FromClr(p.Value)),
        IEnumerable e => e.Cast<object?>().Select(FromClr).ToList(),
        _ => throw new ChatTemplateException($"chat template variables: values of type {v.GetType().Name} are not supported"),
    };

    private static object? FromJson(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Null or JsonValueKind.Undefined => null,
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        JsonValueKind.String => e.GetString(),
        JsonValueKind.Number => e.TryGetInt64(out long l) ? (object)l : e.GetDouble(),
        JsonValueKind.Array => e.EnumerateArray().Select(FromJson).ToList(),
        _ => Object(e),
    };

    // A repeated key keeps its last value, as Python's json.loads does.
    private static Dictionary<string, object?> Object(JsonElement e)
    {
        var d = new Dictionary<string, object?>();
        foreach (var p in e.EnumerateObject()) d[p.Name] = FromJson(p.Value);
        return d;
    }
}

/// <summary>
/// A string's code points by index (Python str semantics). Indexes the UTF-16 text directly when it has no surrogates,
/// the usual case, so s[i] in a loop does not copy the string each time.
/// </summary>
internal readonly struct RuneView
{
    private readonly string _text;
    private readonly Rune[]? _runes; // only when the text has surrogates

    public RuneView(string text)
    {
        _text = text;
        _runes = text.AsSpan().IndexOfAnyInRange('\uD800', '\uDFFF') < 0 ? null : text.EnumerateRunes().ToArray();
    }

    public int Count => _runes?.Length ?? _text.Length;

    public string At(int i) => _runes != null ? _runes[i].ToString() : _text[i].ToString();
}
