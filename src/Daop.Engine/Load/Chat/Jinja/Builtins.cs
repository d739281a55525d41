using System.Globalization;

namespace Daop.Engine.Load.Chat.Jinja;

/// <summary>
/// Filters and tests of the subset. Names are checked while parsing (Jinja also rejects unknown
/// filters at compile time), so a template using one we lack fails early with its line number.
/// </summary>
internal static partial class Builtins
{
    private delegate object? Filter(object? value, List<object?> args, Dictionary<string, object?> kwargs, int line);

    private static readonly Dictionary<string, Filter> Filters = new(StringComparer.Ordinal)
    {
        ["trim"] = (v, a, _, l) => StringMethods.Strip(Str(v, "trim", l), Arg(a, 0) as string, left: true, right: true),
        ["length"] = (v, _, _, l) => Length(v, l),
        ["count"] = (v, _, _, l) => Length(v, l),
        ["tojson"] = ToJson,
        ["upper"] = (v, _, _, l) => Str(v, "upper", l).ToUpperInvariant(),
        ["lower"] = (v, _, _, l) => Str(v, "lower", l).ToLowerInvariant(),
        ["capitalize"] = (v, _, _, l) => StringMethods.Capitalize(Str(v, "capitalize", l)),
        ["title"] = (v, _, _, l) => StringMethods.Title(Str(v, "title", l)),
        ["default"] = Default,
        ["d"] = Default,
        ["first"] = (v, _, _, l) => Item(v, first: true, l),
        ["last"] = (v, _, _, l) => Item(v, first: false, l),
        ["join"] = Join,
        ["string"] = (v, _, _, _) => Values.ToStr(v),
        ["int"] = (v, a, _, _) => ToInt(v, Arg(a, 0) ?? 0L),
        ["float"] = (v, a, _, _) => ToFloat(v, Arg(a, 0) ?? 0.0),
        ["abs"] = (v, _, _, l) => v is long n ? (object)Math.Abs(n) : v is double d ? Math.Abs(d) : throw TypeError("abs", v, l),
        ["list"] = (v, _, _, l) => Values.Iterate(v) is { } items ? new List<object?>(items) : throw NotIterable(v, l),
        ["reverse"] = (v, _, _, l) => v is string s ? new string(s.Reverse().ToArray())
            : Values.Iterate(v) is { } items ? Enumerable.Reverse(items).ToList() : throw NotIterable(v, l),
        ["items"] = (v, _, _, l) => v is Dictionary<string, object?> d ? DictItems(d) : v is Undefined ? new List<object?>() : throw TypeError("items", v, l),
        ["replace"] = (v, a, _, l) => StringMethods.Replace(Str(v, "replace", l), Arg(a, 0), Arg(a, 1), Arg(a, 2), l),
        ["safe"] = (v, _, _, _) => v,
        ["map"] = Map,
        ["select"] = (v, a, _, l) => Select(v, a, l, attribute: false, keep: true),
        ["reject"] = (v, a, _, l) => Select(v, a, l, attribute: false, keep: false),
        ["selectattr"] = (v, a, _, l) => Select(v, a, l, attribute: true, keep: true),
        ["rejectattr"] = (v, a, _, l) => Select(v, a, l, attribute: true, keep: false),
        ["sort"] = Sort,
        ["unique"] = (v, _, _, l) => Values.Iterate(v) is { } items
            ? items.Aggregate(new List<object?>(), (acc, x) => { if (!acc.Any(y => Values.Equal(x, y))) acc.Add(x); return acc; })
            : throw NotIterable(v, l),
    };

    public static bool HasFilter(string name) => Filters.ContainsKey(name);

    public static object? ApplyFilter(string name, object? value, List<object?> args, Dictionary<string, object?> kwargs, int line)
        => Filters[name](value, args, kwargs, line);

    private static object? Arg(List<object?> args, int i) => i < args.Count ? args[i] : null;

    private static ChatTemplateException TypeError(string what, object? v, int line)
        => new($"chat template line {line}: '{what}' cannot be applied to a value of type {Values.TypeName(v)}");

    private static ChatTemplateException NotIterable(object? v, int line)
        => new($"chat template line {line}: a value of type {Values.TypeName(v)} is not iterable");

    private static string Str(object? v, string what, int line)
        => v switch { string s => s, Undefined => "", _ => throw TypeError(what, v, line) };

    /// <summary>first/last: on a string without splitting it into a list of characters.</summary>
    private static object? Item(object? v, bool first, int line)
    {
        if (v is string s)
        {
            var runes = Values.Runes(s);
            return runes.Count == 0 ? Undefined.Instance : runes.At(first ? 0 : runes.Count - 1);
        }
        var items = Values.Iterate(v) ?? throw NotIterable(v, line);
        return items.Count == 0 ? Undefined.Instance : items[first ? 0 : ^1];
    }

    private static object Length(object? v, int line) => v switch
    {
        string s => (long)s.EnumerateRunes().Count(),
        List<object?> l => (long)l.Count,
        Dictionary<string, object?> d => (long)d.Count,
        Undefined => 0L,
        _ => throw TypeError("length", v, line),
    };

    internal static List<object?> DictItems(Dictionary<string, object?> d)
        => d.Select(p => (object?)new PyTuple([p.Key, p.Value])).ToList();

    private static object? ToJson(object? v, List<object?> a, Dictionary<string, object?> kw, int line)
    {
        object? indent = kw.GetValueOrDefault("indent", Arg(a, 0));
        string? itemSep = null, keySep = null;
        if (kw.GetValueOrDefault("separators") is List<object?> { Count: 2 } seps)
        {
            itemSep = seps[0] as string;
            keySep = seps[1] as string;
        }
        // Python indents by ' ' * indent, so a negative indent means none; a huge one fails the size check.
        return PyJson.Dumps(v, indent is long n ? (int)Math.Clamp(n, 0, int.MaxValue) : null,
            Values.Truthy(kw.GetValueOrDefault("ensure_ascii", false)), Values.Truthy(kw.GetValueOrDefault("sort_keys", false)),
            itemSep, keySep, line);
    }

    /// <summary>default(value, default_value="", boolean=false): replaces undefined (or any falsy value with boolean).</summary>
    private static object? Default(object? v, List<object?> a, Dictionary<string, object?> kw, int line)
    {
        object? fallback = a.Count > 0 ? a[0] : kw.GetValueOrDefault("default_value", "");
        bool boolean = Values.Truthy(a.Count > 1 ? a[1] : kw.GetValueOrDefault("boolean", false));
        return v is Undefined || boolean && !Values.Truthy(v) ? fallback : v;
    }

    private static object? Join(object? v, List<object?> a, Dictionary<string, object?> kw, int line)
    {
        var items = Values.Iterate(v) ?? throw NotIterable(v, line);
        string sep = Arg(a, 0) as string ?? kw.GetValueOrDefault("d") as string ?? "";
        if ((Arg(a, 1) ?? kw.GetValueOrDefault("attribute")) is string attr)
            items = items.Select(x => Interpreter.GetAttribute(x, attr)).ToList();
        return JoinChecked(sep, items);
    }

    /// <summary>Python sep.join(items), its length checked before it is built.</summary>
    internal static string JoinChecked(string sep, List<object?> items)
    {
        var texts = new List<string>(items.Count);
        long length = (long)sep.Length * Math.Max(0, items.Count - 1);
        foreach (var item in items)
        {
            string text = Values.ToStr(item);
            length += text.Length;
            RenderGuard.Current.CheckString(length);
            texts.Add(text);
        }
        return string.Join(sep, texts);
    }

    private static object? ToInt(object? v, object? fallback) => v switch
    {
        long l => l,
        double d => (long)Math.Truncate(d),
        bool b => b ? 1L : 0L,
        string s when long.TryParse(s.Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out long l) => l,
        string s when double.TryParse(s.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out double d) => (long)Math.Truncate(d),
        _ => fallback,
    };

    private static object? ToFloat(object? v, object? fallback) => v switch
    {
        long l => (double)l,
        double d => d,
        string s when double.TryParse(s.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out double d) => d,
        _ => fallback,
    };

    /// <summary>map(attribute='x') or map('filter', args...).</summary>
    private static object? Map(object? v, List<object?> a, Dictionary<string, object?> kw, int line)
    {
        var items = Values.Iterate(v) ?? throw NotIterable(v, line);
        if (kw.GetValueOrDefault("attribute") is string attr)
        {
            object? fallback = kw.GetValueOrDefault("default", Undefined.Instance);
            return items.Select(x => Interpreter.GetAttribute(x, attr) is Undefined ? fallback : Interpreter.GetAttribute(x, attr)).ToList();
        }
        if (Arg(a, 0) is string filter && Filters.TryGetValue(filter, out var f))
            return items.Select(x => f(x, a.Skip(1).ToList(), [], line)).ToList();
        throw new ChatTemplateException($"chat template line {line}: map needs attribute='name' or a known filter name");
    }

    /// <summary>select/reject(test, args...) and selectattr/rejectattr(attribute, test, args...).</summary>
    private static object? Select(object? v, List<object?> a, int line, bool attribute, bool keep)
    {
        var items = Values.Iterate(v) ?? throw NotIterable(v, line);
        int i = 0;
        string? attr = attribute ? Arg(a, i++) as string ?? throw new ChatTemplateException($"chat template line {line}: selectattr needs an attribute name") : null;
        string? test = Arg(a, i++) as string;
        var testArgs = a.Skip(i).ToList();
        if (test != null && !HasTest(test))
            throw new ChatTemplateException($"chat template line {line}: unsupported test '{test}'");
        return items.Where(x =>
        {
            object? subject = attr == null ? x : Interpreter.GetAttribute(x, attr);
            bool passed = test == null ? Values.Truthy(subject) : ApplyTest(test, subject, testArgs, line);
            return passed == keep;
        }).ToList();
    }

    private static object? Sort(object? v, List<object?> a, Dictionary<string, object?> kw, int line)
    {
        var items = new List<object?>(Values.Iterate(v) ?? throw NotIterable(v, line));
        bool reverse = Values.Truthy(kw.GetValueOrDefault("reverse", Arg(a, 0) ?? false));
        string? attr = kw.GetValueOrDefault("attribute") as string;
        object? Key(object? x) => attr == null ? x : Interpreter.GetAttribute(x, attr);
        try
        {
            items.Sort((x, y) => Values.Compare(Key(x), Key(y))
                ?? throw new ChatTemplateException($"chat template line {line}: cannot sort {Values.TypeName(Key(x))} and {Values.TypeName(Key(y))}"));
        }
        catch (InvalidOperationException e) when (e.InnerException is ChatTemplateException inner)
        {
            throw inner; // List.Sort wraps what the comparison throws
        }
        if (reverse)
            items.Reverse();
        return items;
    }
}
