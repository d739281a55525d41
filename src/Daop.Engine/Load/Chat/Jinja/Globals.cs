using System.Globalization;
using System.Text;

namespace Daop.Engine.Load.Chat.Jinja;

/// <summary>
/// Global functions a Hugging Face chat template may call: Jinja's range/namespace/dict plus
/// transformers' raise_exception and strftime_now.
/// </summary>
internal static class Globals
{
    public static void AddTo(Scope scope, Func<DateTime> now)
    {
        scope.Set("range", new Callable("range", Range));
        scope.Set("namespace", new Callable("namespace", (a, kw) =>
        {
            var ns = new Namespace();
            foreach (var arg in a)
                if (arg is Dictionary<string, object?> d)
                    foreach (var (k, v) in d)
                        ns.Attributes[k] = v;
            foreach (var (k, v) in kw)
                ns.Attributes[k] = v;
            return ns;
        }));
        scope.Set("dict", new Callable("dict", (a, kw) =>
        {
            var d = a.Count > 0 && a[0] is Dictionary<string, object?> src ? new Dictionary<string, object?>(src) : new Dictionary<string, object?>();
            foreach (var (k, v) in kw)
                d[k] = v;
            return d;
        }));
        // The template's own error: the message is exactly what the template passed.
        scope.Set("raise_exception", new Callable("raise_exception", (a, _) =>
            throw new ChatTemplateException(a.Count > 0 ? Values.ToStr(a[0]) : "raise_exception() called")));
        scope.Set("strftime_now", new Callable("strftime_now", (a, _) =>
            Strftime(now(), a.Count > 0 && a[0] is string f ? f : throw new ArgumentException("needs a format string"))));
    }

    private static object? Range(List<object?> a, Dictionary<string, object?> kw)
    {
        long[] n = a.Select(x => x is long l ? l : throw new ArgumentException("range() arguments must be integers")).ToArray();
        var (start, stop, step) = n.Length switch
        {
            1 => (0L, n[0], 1L),
            2 => (n[0], n[1], 1L),
            3 => (n[0], n[1], n[2]),
            _ => throw new ArgumentException("range() takes 1 to 3 arguments"),
        };
        if (step == 0)
            throw new ArgumentException("range() step must not be zero");
        // The length first, in 128 bits (range(-2**63, 2**63-1) overflows long), so range(10**9) fails before it allocates.
        Int128 span = step > 0 ? (Int128)stop - start : (Int128)start - stop;
        Int128 count = span <= 0 ? 0 : (span - 1) / Int128.Abs((Int128)step) + 1;
        RenderGuard.Current.CheckList(count > long.MaxValue ? long.MaxValue : (long)count);
        var result = new List<object?>((int)count);
        for (long i = 0; i < (long)count; i++)
            result.Add(start + i * step);
        return result;
    }

    /// <summary>The strftime codes templates use for dates ("%d %b %Y" in Llama 3.x).</summary>
    private static string Strftime(DateTime t, string format)
    {
        var c = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        for (int i = 0; i < format.Length; i++)
        {
            RenderGuard.Current.CheckString(sb.Length); // "%A" grows to "Wednesday"
            if (format[i] != '%' || i + 1 >= format.Length)
            {
                sb.Append(format[i]);
                continue;
            }
            char code = format[++i];
            sb.Append(code switch
            {
                'd' => t.ToString("dd", c),
                'm' => t.ToString("MM", c),
                'Y' => t.ToString("yyyy", c),
                'y' => t.ToString("yy", c),
                'b' => t.ToString("MMM", c),
                'B' => t.ToString("MMMM", c),
                'a' => t.ToString("ddd", c),
                'A' => t.ToString("dddd", c),
                'H' => t.ToString("HH", c),
                'I' => t.ToString("hh", c),
                'M' => t.ToString("mm", c),
                'S' => t.ToString("ss", c),
                'p' => t.Hour < 12 ? "AM" : "PM",
                'j' => t.DayOfYear.ToString("D3", c),
                '%' => "%",
                _ => "%" + code,
            });
        }
        return sb.ToString();
    }
}
