using System.Text;
using System.Text.Json;
using Daop.Engine.Load.Tokenizer.Unicode;

namespace Daop.Engine.Load.Tokenizer;

/// <summary>A tokenizer.json normalizer: rewrites text before pre-tokenization.</summary>
internal interface INormalizer
{
    string Normalize(string text);
}

/// <summary>Builds normalizers from their JSON description.</summary>
internal static class Normalizers
{
    public static INormalizer? Load(JsonElement? node, TokJson json) => node is { } n ? Load(n, "normalizer", json) : null;

    private static INormalizer Load(JsonElement n, string where, TokJson json)
    {
        string type = json.Type(n, where);
        switch (type)
        {
            case "NFC": return new Lambda(s => UnicodeNormalizer.Normalize(s, compose: true, compat: false));
            case "NFD": return new Lambda(s => UnicodeNormalizer.Normalize(s, compose: false, compat: false));
            case "NFKC": return new Lambda(s => UnicodeNormalizer.Normalize(s, compose: true, compat: true));
            case "NFKD": return new Lambda(s => UnicodeNormalizer.Normalize(s, compose: false, compat: true));
            case "Lowercase": return new Lambda(Lowercase);
            case "StripAccents": return new Lambda(StripAccents);
            case "Prepend":
                string prepend = json.String(n, "prepend", where);
                // The Rust Prepend skips empty input, so "" stays "".
                return new Lambda(s => s.Length == 0 ? s : prepend + s);
            case "Replace":
                var replace = Pattern.Load(n, where, json);
                string content = json.String(n, "content", where);
                return new Lambda(s => replace.Replace(s, content));
            case "Strip":
                bool left = json.Bool(n, "strip_left", where, true), right = json.Bool(n, "strip_right", where, true);
                return new Lambda(s => left && right ? s.Trim() : left ? s.TrimStart() : right ? s.TrimEnd() : s);
            case "Sequence":
                var items = json.Array(n, "normalizers", where).EnumerateArray()
                    .Select((e, i) => Load(e, $"{where}.normalizers[{i}]", json)).ToArray();
                return new Lambda(s =>
                {
                    foreach (var item in items)
                        s = item.Normalize(s);
                    return s;
                });
            default:
                throw json.Unsupported(where, type);
        }
    }

    /// <summary>Per-character lowercase like Rust's char::to_lowercase (no final-sigma context).</summary>
    internal static string Lowercase(string s)
    {
        var sb = new StringBuilder(s.Length);
        foreach (var rune in s.EnumerateRunes())
        {
            // Invariant-mode .NET leaves U+0130 alone; Unicode's full mapping is "i" + U+0307.
            if (rune.Value == 0x130)
                sb.Append("i\u0307");
            else
                sb.Append(Rune.ToLowerInvariant(rune).ToString());
        }
        return sb.ToString();
    }

    private static string StripAccents(string s)
    {
        var sb = new StringBuilder(s.Length);
        foreach (var rune in s.EnumerateRunes())
            if (Rune.GetUnicodeCategory(rune) != System.Globalization.UnicodeCategory.NonSpacingMark)
                sb.Append(rune.ToString());
        return sb.ToString();
    }

    private sealed class Lambda(Func<string, string> f) : INormalizer
    {
        public string Normalize(string text) => f(text);
    }
}
