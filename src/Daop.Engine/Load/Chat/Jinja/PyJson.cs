using System.Globalization;
using System.Text;

namespace Daop.Engine.Load.Chat.Jinja;

/// <summary>
/// Python's json.dumps as transformers' tojson filter calls it (ensure_ascii=False, sort_keys=False):
/// ", " and ": " separators without indent, "," and newline+indent with one. Matching it byte for
/// byte matters because tool schemas are rendered into prompts with it.
/// </summary>
internal static class PyJson
{
    public static string Dumps(object? value, int? indent, bool ensureAscii, bool sortKeys, string? itemSep, string? keySep, int line)
    {
        itemSep ??= indent == null ? ", " : ",";
        keySep ??= ": ";
        var sb = new StringBuilder();
        Write(sb, value, indent, 0, ensureAscii, sortKeys, itemSep, keySep, line);
        return sb.ToString();
    }

    // Checked as it grows, like Values.Repr: shared items can make the text far bigger than the value.
    private static void Write(StringBuilder sb, object? v, int? indent, int depth, bool ascii, bool sort, string itemSep, string keySep, int line)
    {
        var guard = RenderGuard.Current;
        guard.CheckValueDepth(depth); // also ends a namespace that holds itself
        WriteValue(sb, v, indent, depth, ascii, sort, itemSep, keySep, line);
        guard.CheckString(sb.Length);
    }

    private static void WriteValue(StringBuilder sb, object? v, int? indent, int depth, bool ascii, bool sort, string itemSep, string keySep, int line)
    {
        switch (v)
        {
            case null:
                sb.Append("null");
                break;
            case bool b:
                sb.Append(b ? "true" : "false");
                break;
            case long l:
                sb.Append(l.ToString(CultureInfo.InvariantCulture));
                break;
            case double d:
                sb.Append(double.IsNaN(d) ? "NaN" : double.IsInfinity(d) ? (d > 0 ? "Infinity" : "-Infinity") : Values.FloatRepr(d));
                break;
            case string s:
                WriteString(sb, s, ascii);
                break;
            case List<object?> list:
                WriteContainer(sb, '[', ']', list.Count, indent, depth, itemSep, i =>
                    Write(sb, list[i], indent, depth + 1, ascii, sort, itemSep, keySep, line));
                break;
            case Dictionary<string, object?> dict:
                var keys = sort ? dict.Keys.Order(StringComparer.Ordinal).ToList() : dict.Keys.ToList();
                WriteContainer(sb, '{', '}', keys.Count, indent, depth, itemSep, i =>
                {
                    WriteString(sb, keys[i], ascii);
                    sb.Append(keySep);
                    Write(sb, dict[keys[i]], indent, depth + 1, ascii, sort, itemSep, keySep, line);
                });
                break;
            case Namespace ns:
                Write(sb, ns.Attributes, indent, depth, ascii, sort, itemSep, keySep, line);
                break;
            default:
                throw new ChatTemplateException($"chat template line {line}: tojson cannot serialize a value of type {Values.TypeName(v)}");
        }
    }

    private static void WriteContainer(StringBuilder sb, char open, char close, int count, int? indent, int depth, string itemSep, Action<int> item)
    {
        sb.Append(open);
        if (count == 0)
        {
            sb.Append(close);
            return;
        }
        for (int i = 0; i < count; i++)
        {
            if (i > 0)
                sb.Append(itemSep);
            if (indent is int n)
                Indent(sb, n, depth + 1);
            item(i);
        }
        if (indent is int m)
            Indent(sb, m, depth);
        sb.Append(close);
    }

    private static void Indent(StringBuilder sb, int indent, int depth)
    {
        long spaces = (long)indent * depth;
        RenderGuard.Current.CheckString(sb.Length + 1 + spaces);
        sb.Append('\n').Append(' ', (int)spaces);
    }

    private static void WriteString(StringBuilder sb, string s, bool ascii)
    {
        sb.Append('"');
        foreach (char c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                default:
                    if (c < 0x20 || ascii && c > 0x7E)
                        sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    else
                        sb.Append(c);
                    break;
            }
        }
        sb.Append('"');
    }
}
