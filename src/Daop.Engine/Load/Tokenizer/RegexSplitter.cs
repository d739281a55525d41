using System.Globalization;
using System.Text.RegularExpressions;

namespace Daop.Engine.Load.Tokenizer;

/// <summary>How a split keeps the delimiters it found (tokenizers' SplitDelimiterBehavior).</summary>
internal enum SplitBehavior
{
    Removed,
    Isolated,
    MergedWithPrevious,
    MergedWithNext,
    Contiguous,
}

/// <summary>
/// Splits text by regex matches exactly like the Rust NormalizedString::split, and makes .NET regexes
/// see code points instead of UTF-16 units (see <see cref="BuildProxy"/>).
/// </summary>
internal static class RegexSplitter
{
    /// <summary>Returns the [start, end) ranges of the non-empty pieces, in order.</summary>
    public static List<(int Start, int End)> Split(string text, Regex regex, SplitBehavior behavior, bool invert)
    {
        var pieces = new List<(int Start, int End)>();
        if (text.Length == 0)
            return pieces;

        // 1. Matches and the gaps between them, flagged (the Rust Pattern::find_matches).
        var (proxy, map) = BuildProxy(text);
        var spans = new List<(int Start, int End, bool IsMatch)>();
        int prev = 0;
        for (var m = regex.Match(proxy); m.Success; m = m.NextMatch())
        {
            int start = map?[m.Index] ?? m.Index, end = map?[m.Index + m.Length] ?? m.Index + m.Length;
            if (prev != start)
                spans.Add((prev, start, invert));
            spans.Add((start, end, !invert));
            prev = end;
        }
        if (prev != text.Length)
            spans.Add((prev, text.Length, invert));

        // 2. Apply the delimiter behaviour.
        bool previousMatch = false;
        switch (behavior)
        {
            case SplitBehavior.Isolated:
                foreach (var s in spans)
                    pieces.Add((s.Start, s.End));
                break;
            case SplitBehavior.Removed:
                foreach (var s in spans)
                    if (!s.IsMatch)
                        pieces.Add((s.Start, s.End));
                break;
            case SplitBehavior.Contiguous:
                foreach (var s in spans)
                {
                    if (s.IsMatch == previousMatch && pieces.Count > 0)
                        pieces[^1] = (pieces[^1].Start, s.End);
                    else
                        pieces.Add((s.Start, s.End));
                    previousMatch = s.IsMatch;
                }
                break;
            case SplitBehavior.MergedWithPrevious:
                foreach (var s in spans)
                {
                    if (s.IsMatch && !previousMatch && pieces.Count > 0)
                        pieces[^1] = (pieces[^1].Start, s.End);
                    else
                        pieces.Add((s.Start, s.End));
                    previousMatch = s.IsMatch;
                }
                break;
            case SplitBehavior.MergedWithNext:
                for (int i = spans.Count - 1; i >= 0; i--)
                {
                    var s = spans[i];
                    if (s.IsMatch && !previousMatch && pieces.Count > 0)
                        pieces[^1] = (s.Start, pieces[^1].End);
                    else
                        pieces.Add((s.Start, s.End));
                    previousMatch = s.IsMatch;
                }
                pieces.Reverse();
                break;
        }
        pieces.RemoveAll(p => p.End == p.Start);
        return pieces;
    }

    /// <summary>
    /// Rust regexes (and Oniguruma) match code points; .NET matches UTF-16 units, so an astral letter
    /// such as U+20000 is two surrogates that \p{L} does not match. When the text has surrogate pairs
    /// each pair is replaced by one BMP stand-in of the same general category, the regex runs on that
    /// proxy, and <c>map</c> turns proxy indices back into text indices. Null map: no pairs, no proxy.
    /// </summary>
    internal static (string Proxy, int[]? Map) BuildProxy(string text)
    {
        int firstPair = -1;
        for (int i = 0; i + 1 < text.Length; i++)
        {
            if (char.IsHighSurrogate(text[i]) && char.IsLowSurrogate(text[i + 1]))
            {
                firstPair = i;
                break;
            }
        }
        if (firstPair < 0)
            return (text, null);

        var proxy = new char[text.Length];
        var map = new int[text.Length + 1];
        int n = 0;
        for (int i = 0; i < text.Length; n++)
        {
            map[n] = i;
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                proxy[n] = StandIn(CharUnicodeInfo.GetUnicodeCategory(char.ConvertToUtf32(text[i], text[i + 1])));
                i += 2;
            }
            else
            {
                proxy[n] = text[i++];
            }
        }
        map[n] = text.Length;
        return (new string(proxy, 0, n), map);
    }

    // Non-ASCII representatives, so they never equal a literal in a pattern such as (?i:'s|'t).
    private static char StandIn(UnicodeCategory category) => category switch
    {
        UnicodeCategory.UppercaseLetter => '\u0391',
        UnicodeCategory.LowercaseLetter => '\u03B1',
        UnicodeCategory.TitlecaseLetter => '\u01C5',
        UnicodeCategory.ModifierLetter => '\u02B0',
        UnicodeCategory.OtherLetter => '\u4E00',
        UnicodeCategory.NonSpacingMark => '\u0301',
        UnicodeCategory.SpacingCombiningMark => '\u0903',
        UnicodeCategory.EnclosingMark => '\u20DD',
        UnicodeCategory.DecimalDigitNumber => '\u0660',
        UnicodeCategory.LetterNumber => '\u2160',
        UnicodeCategory.OtherNumber => '\u00B2',
        UnicodeCategory.Format => '\u00AD',
        UnicodeCategory.PrivateUse => '\uE000',
        UnicodeCategory.ConnectorPunctuation => '\u203F',
        UnicodeCategory.DashPunctuation => '\u2010',
        UnicodeCategory.OpenPunctuation => '\u2045',
        UnicodeCategory.ClosePunctuation => '\u2046',
        UnicodeCategory.InitialQuotePunctuation => '\u00AB',
        UnicodeCategory.FinalQuotePunctuation => '\u00BB',
        UnicodeCategory.OtherPunctuation => '\u00B6',
        UnicodeCategory.MathSymbol => '\u00AC',
        UnicodeCategory.CurrencySymbol => '\u00A2',
        UnicodeCategory.ModifierSymbol => '\u00B4',
        UnicodeCategory.OtherSymbol => '\u00A6',
        _ => '\uFFFF', // unassigned (Cn); no astral space, control or separator exists
    };
}
