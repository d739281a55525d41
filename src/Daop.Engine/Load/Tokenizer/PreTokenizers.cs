using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Daop.Engine.Load.Tokenizer;

/// <summary>
/// A pre-tokenized piece. <see cref="AtStart"/> says the piece begins at offset 0 of the original
/// input, which Metaspace's prepend_scheme "first" needs.
/// </summary>
internal readonly record struct Piece(string Text, bool AtStart);

/// <summary>A tokenizer.json pre-tokenizer: splits (and may rewrite) pieces before the model runs.</summary>
internal interface IPreTokenizer
{
    /// <summary>The pieces, at most <paramref name="maxLength"/> characters in all (see <see cref="TextGrowth"/>).</summary>
    /// <exception cref="ModelLoadException">The result would be longer, or a regex timed out.</exception>
    List<Piece> PreTokenize(List<Piece> pieces, int maxLength);
}

/// <summary>Builds pre-tokenizers from their JSON description.</summary>
internal static partial class PreTokenizers
{
    /// <summary>The GPT-2 pattern the ByteLevel pre-tokenizer uses when use_regex is true.</summary>
    internal const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    [GeneratedRegex(Gpt2Pattern, RegexOptions.CultureInvariant)]
    private static partial Regex Gpt2Regex();

    [GeneratedRegex(@"\w+|[^\w\s]+", RegexOptions.CultureInvariant)]
    private static partial Regex WhitespaceRegex();

    [GeneratedRegex(@"\s+", RegexOptions.CultureInvariant)]
    private static partial Regex WhitespaceSplitRegex();

    [GeneratedRegex(@"\p{N}", RegexOptions.CultureInvariant)]
    private static partial Regex DigitRegex();

    [GeneratedRegex(@"\p{N}+", RegexOptions.CultureInvariant)]
    private static partial Regex DigitsRegex();

    // Rust's is_punctuation: Unicode P* plus all ASCII punctuation (which includes $+<=>^`|~).
    [GeneratedRegex(@"[\p{P}!-/:-@\[-`{-~]", RegexOptions.CultureInvariant)]
    private static partial Regex PunctuationRegex();

    public static IPreTokenizer? Load(JsonElement? node, TokJson json) => node is { } n ? Load(n, "pre_tokenizer", json) : null;

    // Every component checks its result, so an error names the one that grew the text (ByteLevel triples non-ASCII
    // text, so a Sequence of them grows it exponentially).
    private static IPreTokenizer Load(JsonElement n, string where, TokJson json)
    {
        json.CountComponent(where);
        return new Checked(Create(n, where, json), $"{json.File}: {where}");
    }

    private static IPreTokenizer Create(JsonElement n, string where, TokJson json)
    {
        string type = json.Type(n, where);
        switch (type)
        {
            case "ByteLevel":
                return new ByteLevel(json.Bool(n, "add_prefix_space", where, true), json.Bool(n, "use_regex", where, true));
            case "Split":
                var pattern = Pattern.Load(n, where, json);
                var behavior = ParseBehavior(json.String(n, "behavior", where), where, json);
                bool invert = json.Bool(n, "invert", where, false);
                return new PatternSplit(pattern, behavior, invert);
            case "Metaspace":
                return Metaspace.Load(n, where, json);
            case "Sequence":
                var items = json.Array(n, "pretokenizers", where).EnumerateArray()
                    .Select((e, i) => Load(e, $"{where}.pretokenizers[{i}]", json)).ToArray();
                return new Sequence(items);
            case "Digits":
                bool individual = json.Bool(n, "individual_digits", where, false);
                return individual ? new RegexSplit(DigitRegex(), SplitBehavior.Isolated, false)
                    : new RegexSplit(DigitsRegex(), SplitBehavior.Isolated, false);
            case "Whitespace":
                return new RegexSplit(WhitespaceRegex(), SplitBehavior.Removed, invert: true);
            case "WhitespaceSplit":
                return new RegexSplit(WhitespaceSplitRegex(), SplitBehavior.Removed, invert: false);
            case "Punctuation":
                string? b = json.OptString(n, "behavior", where);
                return new RegexSplit(PunctuationRegex(), b == null ? SplitBehavior.Isolated : ParseBehavior(b, where, json), false);
            default:
                throw json.Unsupported(where, type);
        }
    }

    internal static SplitBehavior ParseBehavior(string value, string where, TokJson json) => value switch
    {
        "Removed" => SplitBehavior.Removed,
        "Isolated" => SplitBehavior.Isolated,
        "MergedWithPrevious" => SplitBehavior.MergedWithPrevious,
        "MergedWithNext" => SplitBehavior.MergedWithNext,
        "Contiguous" => SplitBehavior.Contiguous,
        _ => throw json.Error($"{where}.behavior '{value}' is not supported"),
    };

    /// <summary>Splits each piece; only a sub-piece at offset 0 of an at-start piece stays at-start.</summary>
    internal static List<Piece> SplitAll(List<Piece> pieces, Regex regex, SplitBehavior behavior, bool invert)
    {
        var result = new List<Piece>(pieces.Count * 2);
        foreach (var p in pieces)
            foreach (var (start, end) in RegexSplitter.Split(p.Text, regex, behavior, invert))
                result.Add(new Piece(p.Text[start..end], p.AtStart && start == 0));
        return result;
    }

    private sealed class RegexSplit(Regex regex, SplitBehavior behavior, bool invert) : IPreTokenizer
    {
        public List<Piece> PreTokenize(List<Piece> pieces, int maxLength) => SplitAll(pieces, regex, behavior, invert);
    }

    /// <summary>A Split with the file's pattern (which guards its regex's match timeout).</summary>
    private sealed class PatternSplit(Pattern pattern, SplitBehavior behavior, bool invert) : IPreTokenizer
    {
        public List<Piece> PreTokenize(List<Piece> pieces, int maxLength) => pattern.Split(pieces, behavior, invert);
    }

    /// <summary>Every item gets the same absolute limit: a chain of growing steps cannot multiply past it.</summary>
    private sealed class Sequence(IPreTokenizer[] items) : IPreTokenizer
    {
        public List<Piece> PreTokenize(List<Piece> pieces, int maxLength)
        {
            foreach (var item in items)
                pieces = item.PreTokenize(pieces, maxLength);
            return pieces;
        }
    }

    private sealed class Checked(IPreTokenizer inner, string what) : IPreTokenizer
    {
        public List<Piece> PreTokenize(List<Piece> pieces, int maxLength)
        {
            var result = inner.PreTokenize(pieces, maxLength);
            long total = 0;
            foreach (var p in result)
                total += p.Text.Length;
            return total <= maxLength ? result : throw TextGrowth.TooLong(what, maxLength);
        }
    }

    /// <summary>Optional leading space, GPT-2 regex split, then every byte shown as one character.</summary>
    private sealed class ByteLevel(bool addPrefixSpace, bool useRegex) : IPreTokenizer
    {
        public List<Piece> PreTokenize(List<Piece> pieces, int maxLength)
        {
            if (addPrefixSpace)
                pieces = pieces.Select(p => p.Text.StartsWith(' ') ? p : p with { Text = " " + p.Text }).ToList();
            if (useRegex)
                pieces = SplitAll(pieces, Gpt2Regex(), SplitBehavior.Isolated, false);
            return pieces.Select(p => p with { Text = ByteLevelMap.Encode(p.Text) }).ToList();
        }
    }

    /// <summary>Whitespace becomes the replacement ('▁'), optionally prepended, then split before each '▁'.</summary>
    private sealed class Metaspace(string replacement, string prependScheme, bool split) : IPreTokenizer
    {
        private readonly Regex _replacementRegex = new(Regex.Escape(replacement), RegexOptions.CultureInvariant);

        public static Metaspace Load(JsonElement n, string where, TokJson json)
        {
            string replacement = json.Char(n, "replacement", where, "\u2581");
            // Older files have add_prefix_space instead of prepend_scheme.
            string scheme = json.OptString(n, "prepend_scheme", where)
                ?? (json.Bool(n, "add_prefix_space", where, true) ? "always" : "never");
            if (scheme is not ("first" or "always" or "never"))
                throw json.Error($"{where}.prepend_scheme '{scheme}' is not supported");
            return new Metaspace(replacement, scheme, json.Bool(n, "split", where, true));
        }

        public List<Piece> PreTokenize(List<Piece> pieces, int maxLength)
        {
            var result = new List<Piece>(pieces.Count);
            foreach (var p in pieces)
            {
                string text = p.Text.Replace(" ", replacement, StringComparison.Ordinal);
                bool prepend = prependScheme == "always" || prependScheme == "first" && p.AtStart;
                if (prepend && !text.StartsWith(replacement, StringComparison.Ordinal))
                    text = replacement + text;
                result.Add(p with { Text = text });
            }
            return split ? SplitAll(result, _replacementRegex, SplitBehavior.MergedWithNext, false) : result;
        }
    }
}

/// <summary>Word-character test used by added tokens' single_word flag (regex \w semantics).</summary>
internal static class WordChars
{
    public static bool IsWordChar(Rune r)
    {
        var c = Rune.GetUnicodeCategory(r);
        return r.Value == '_' || c is UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter
            or UnicodeCategory.TitlecaseLetter or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter
            or UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark or UnicodeCategory.EnclosingMark
            or UnicodeCategory.DecimalDigitNumber or UnicodeCategory.ConnectorPunctuation;
    }
}
