using System.Text;

namespace Daop.Engine.Load.Chat.Jinja;

/// <summary>
/// Python str and dict methods that chat templates call (content.startswith('&lt;think&gt;'),
/// content.split('&lt;/think&gt;')[-1].lstrip('\n'), message.items(), ...), with Python semantics.
/// </summary>
internal static class StringMethods
{
    private static readonly HashSet<string> StringNames =
    [
        "startswith", "endswith", "strip", "lstrip", "rstrip", "split", "replace", "upper", "lower",
        "title", "capitalize", "find", "count", "join", "isdigit", "isspace",
    ];

    private static readonly HashSet<string> DictNames = ["items", "keys", "values", "get"];

    /// <summary>The bound method <paramref name="name"/> of a str or dict, or null when there is none.</summary>
    public static Callable? Bind(object? target, string name) => target switch
    {
        string s when StringNames.Contains(name) => new Callable(name, (a, kw) => CallString(s, name, a, kw)),
        Dictionary<string, object?> d when DictNames.Contains(name) => new Callable(name, (a, _) => CallDict(d, name, a)),
        _ => null,
    };

    private static object? Arg(List<object?> a, int i, Dictionary<string, object?>? kw = null, string? name = null)
        => i < a.Count ? a[i] : kw != null && name != null ? kw.GetValueOrDefault(name) : null;

    private static object? CallString(string s, string name, List<object?> a, Dictionary<string, object?> kw)
    {
        switch (name)
        {
            case "startswith":
                return Affixes(Arg(a, 0), name).Any(p => s.StartsWith(p, StringComparison.Ordinal));
            case "endswith":
                return Affixes(Arg(a, 0), name).Any(p => s.EndsWith(p, StringComparison.Ordinal));
            case "strip":
                return Strip(s, Arg(a, 0, kw, "chars") as string, true, true);
            case "lstrip":
                return Strip(s, Arg(a, 0, kw, "chars") as string, true, false);
            case "rstrip":
                return Strip(s, Arg(a, 0, kw, "chars") as string, false, true);
            case "split":
                return Split(s, Arg(a, 0, kw, "sep") as string, Arg(a, 1, kw, "maxsplit") is long m and >= 0 ? (int)Math.Min(m, int.MaxValue - 1) : -1);
            case "replace":
                return Replace(s, Arg(a, 0), Arg(a, 1), Arg(a, 2), 0);
            case "upper":
                return s.ToUpperInvariant();
            case "lower":
                return s.ToLowerInvariant();
            case "title":
                return Title(s);
            case "capitalize":
                return Capitalize(s);
            case "find":
                return (long)s.IndexOf(Need(Arg(a, 0), name), StringComparison.Ordinal);
            case "count":
                string sub = Need(Arg(a, 0), name);
                return sub.Length == 0 ? s.Length + 1L : (long)((s.Length - s.Replace(sub, "", StringComparison.Ordinal).Length) / sub.Length);
            case "join":
                var items = Values.Iterate(Arg(a, 0)) ?? throw new ChatTemplateException("str.join needs an iterable");
                return Builtins.JoinChecked(s, items);
            case "isdigit":
                return s.Length > 0 && s.All(char.IsDigit);
            default: // isspace
                return s.Length > 0 && s.All(char.IsWhiteSpace);
        }
    }

    private static object? CallDict(Dictionary<string, object?> d, string name, List<object?> a) => name switch
    {
        "items" => Builtins.DictItems(d),
        "keys" => d.Keys.Select(k => (object?)k).ToList(),
        "values" => d.Values.ToList(),
        _ => Arg(a, 0) is string key && d.TryGetValue(key, out var v) ? v : Arg(a, 1), // get(key, default=None)
    };

    private static string Need(object? v, string method)
        => v as string ?? throw new ChatTemplateException($"str.{method} needs a string argument, got {Values.TypeName(v)}");

    private static IEnumerable<string> Affixes(object? v, string method) => v switch
    {
        string s => [s],
        List<object?> l => l.Select(x => Need(x, method)),
        _ => throw new ChatTemplateException($"str.{method} needs a string or tuple argument, got {Values.TypeName(v)}"),
    };

    /// <summary>Python strip: whitespace when chars is None, else any of chars.</summary>
    public static string Strip(string s, string? chars, bool left, bool right)
    {
        Func<char, bool> strip = chars == null ? char.IsWhiteSpace : chars.Contains;
        int start = 0, end = s.Length;
        if (left)
            while (start < end && strip(s[start]))
                start++;
        if (right)
            while (end > start && strip(s[end - 1]))
                end--;
        return s[start..end];
    }

    /// <summary>Python split: on runs of whitespace (dropping empties) when sep is None.</summary>
    private static List<object?> Split(string s, string? sep, int maxSplit)
    {
        if (sep == null)
        {
            var parts = s.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            if (maxSplit >= 0 && parts.Length > maxSplit + 1)
            {
                // Re-split keeping the remainder intact after maxSplit cuts.
                var head = s.TrimStart().Split((char[]?)null, maxSplit + 1, StringSplitOptions.RemoveEmptyEntries);
                head[^1] = head[^1].TrimEnd();
                parts = head;
            }
            RenderGuard.Current.CheckList(parts.Length); // at most half the string's length: bounded before this check
            return parts.Select(p => (object?)p).ToList();
        }
        if (sep.Length == 0)
            throw new ChatTemplateException("str.split: empty separator");
        RenderGuard.Current.CheckList(Math.Min(s.AsSpan().Count(sep), maxSplit >= 0 ? maxSplit : long.MaxValue) + 1L);
        var result = maxSplit >= 0 ? s.Split(sep, maxSplit + 1) : s.Split(sep);
        return result.Select(p => (object?)p).ToList();
    }

    public static string Replace(string s, object? oldValue, object? newValue, object? count, int line)
    {
        if (oldValue is not string o || newValue is not string n)
            throw new ChatTemplateException($"chat template line {line}: replace needs two strings");
        long max = count is long c ? c : -1;
        CheckReplace(s, o, n, max);
        if (max < 0)
            return o.Length == 0 ? InsertEverywhere(s, n) : s.Replace(o, n, StringComparison.Ordinal);
        var sb = new StringBuilder();
        int pos = 0;
        for (long i = 0; i < max && o.Length > 0; i++)
        {
            int at = s.IndexOf(o, pos, StringComparison.Ordinal);
            if (at < 0)
                break;
            sb.Append(s, pos, at - pos).Append(n);
            pos = at + o.Length;
        }
        return sb.Append(s, pos, s.Length - pos).ToString();
    }

    /// <summary>Checks the result's length before replacing: a long <paramref name="n"/> can multiply the text.</summary>
    private static void CheckReplace(string s, string o, string n, long max)
    {
        if (n.Length <= o.Length)
            return;
        long hits = o.Length == 0 ? s.Length + 1L : s.AsSpan().Count(o);
        if (max >= 0)
            hits = Math.Min(hits, max);
        RenderGuard.Current.CheckString(s.Length + Arithmetic.Product(hits, n.Length - o.Length));
    }

    private static string InsertEverywhere(string s, string n)
    {
        var sb = new StringBuilder(n);
        foreach (char c in s)
            sb.Append(c).Append(n);
        return sb.ToString();
    }

    public static string Capitalize(string s)
        => s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..].ToLowerInvariant();

    public static string Title(string s)
    {
        var sb = new StringBuilder(s.Length);
        bool previousIsLetter = false;
        foreach (char c in s)
        {
            sb.Append(previousIsLetter ? char.ToLowerInvariant(c) : char.ToUpperInvariant(c));
            previousIsLetter = char.IsLetter(c);
        }
        return sb.ToString();
    }
}
