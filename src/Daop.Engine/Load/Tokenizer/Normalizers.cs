using System.Text;
using System.Text.Json;
using Daop.Engine.Load.Tokenizer.Unicode;

namespace Daop.Engine.Load.Tokenizer;

/// <summary>A tokenizer.json normalizer: rewrites text before pre-tokenization.</summary>
internal interface INormalizer
{
    /// <summary>The normalized text, at most <paramref name="maxLength"/> characters long (see <see cref="TextGrowth"/>).</summary>
    /// <exception cref="ModelLoadException">The result would be longer, or a regex timed out.</exception>
    string Normalize(string text, int maxLength);
}

/// <summary>Builds normalizers from their JSON description.</summary>
internal static class Normalizers
{
    public static INormalizer? Load(JsonElement? node, TokJson json) => node is { } n ? Load(n, "normalizer", json) : null;

    /// <summary>Normalizes with the growth limit for <paramref name="text"/> as the whole input.</summary>
    public static string Normalize(this INormalizer normalizer, string text) => normalizer.Normalize(text, TextGrowth.Limit(text.Length));

    // Every component checks its result, so an error names the one that grew the text.
    private static INormalizer Load(JsonElement n, string where, TokJson json)
    {
        json.CountComponent(where);
        string what = $"{json.File}: {where}";
        return new Checked(Create(n, where, json, what), what);
    }

    private static Lambda Create(JsonElement n, string where, TokJson json, string what)
    {
        string type = json.Type(n, where);
        switch (type)
        {
            case "NFC": return Unicode(compose: true, compat: false, what);
            case "NFD": return Unicode(compose: false, compat: false, what);
            case "NFKC": return Unicode(compose: true, compat: true, what);
            case "NFKD": return Unicode(compose: false, compat: true, what);
            case "Lowercase": return new Lambda((s, _) => Lowercase(s));
            case "StripAccents": return new Lambda((s, _) => StripAccents(s));
            case "Prepend":
                string prepend = json.String(n, "prepend", where);
                // The Rust Prepend skips empty input, so "" stays "".
                return new Lambda((s, _) => s.Length == 0 ? s : prepend + s);
            case "Replace":
                var replace = Pattern.Load(n, where, json);
                string content = json.String(n, "content", where);
                return new Lambda((s, max) => replace.Replace(s, content, max));
            case "Strip":
                bool left = json.Bool(n, "strip_left", where, true), right = json.Bool(n, "strip_right", where, true);
                return new Lambda((s, _) => left && right ? s.Trim() : left ? s.TrimStart() : right ? s.TrimEnd() : s);
            case "Sequence":
                var items = json.Array(n, "normalizers", where).EnumerateArray()
                    .Select((e, i) => Load(e, $"{where}.normalizers[{i}]", json)).ToArray();
                // Every item gets the same absolute limit: a chain of growing steps cannot multiply past it.
                return new Lambda((s, max) =>
                {
                    foreach (var item in items)
                        s = item.Normalize(s, max);
                    return s;
                });
            default:
                throw json.Unsupported(where, type);
        }
    }

    private static Lambda Unicode(bool compose, bool compat, string what) => new((s, max) =>
        UnicodeNormalizer.Normalize(s, compose, compat, max) ?? throw TextGrowth.TooLong(what, max));

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

    private sealed class Lambda(Func<string, int, string> f) : INormalizer
    {
        public string Normalize(string text, int maxLength) => f(text, maxLength);
    }

    private sealed class Checked(INormalizer inner, string what) : INormalizer
    {
        public string Normalize(string text, int maxLength)
        {
            string result = inner.Normalize(text, maxLength);
            return result.Length <= maxLength ? result : throw TextGrowth.TooLong(what, maxLength);
        }
    }
}
