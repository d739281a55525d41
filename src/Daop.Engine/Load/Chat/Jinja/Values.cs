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
    public static string Repr(object? v) => v switch
    {
        null => "None",
        Undefined => "",
        bool b => b ? "True" : "False",
        long l => l.ToString(CultureInfo.InvariantCulture),
        double d => FloatRepr(d),
        string s => StringRepr(s),
        PyTuple t => t.Count == 1 ? "(" + Repr(t[0]) + ",)" : "(" + string.Join(", ", t.Select(Repr)) + ")",
        List<object?> l => "[" + string.Join(", ", l.Select(Repr)) + "]",
        Dictionary<string, object?> d => "{" + string.Join(", ", d.Select(p => StringRepr(p.Key) + ": " + Repr(p.Value))) + "}",
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

    public static bool Equal(object? a, object? b)
    {
        if (IsNumber(a) && IsNumber(b))
            return ToDouble(a) == ToDouble(b);
        if (a is PyTuple != b is PyTuple)
            return false; // Python: (1, 2) != [1, 2]
        return (a, b) switch
        {
            (null, null) => true,
            (Undefined, Undefined) => true,
            (string x, string y) => string.Equals(x, y, StringComparison.Ordinal),
            (List<object?> x, List<object?> y) => x.Count == y.Count && x.Zip(y).All(p => Equal(p.First, p.Second)),
            (Dictionary<string, object?> x, Dictionary<string, object?> y) =>
                x.Count == y.Count && x.All(p => y.TryGetValue(p.Key, out var o) && Equal(p.Value, o)),
            _ => ReferenceEquals(a, b),
        };
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
        string s => s.EnumerateRunes().Select(r => (object?)r.ToString()).ToList(),
        Dictionary<string, object?> d => d.Keys.Select(k => (object?)k).ToList(),
        _ => null,
    };

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
        _ => e.EnumerateObject().ToDictionary(p => p.Name, p => FromJson(p.Value)),
    };
}
