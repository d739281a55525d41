using System.Text;
using System.Text.Json;

namespace Daop.Engine.Load.Tokenizer;

/// <summary>One entry of tokenizer.json "added_tokens".</summary>
internal sealed record AddedToken(int Id, string Content, bool Special, bool LStrip, bool RStrip, bool SingleWord, bool Normalized);

/// <summary>
/// Added tokens (special or not) are cut out of the text before normalization and pre-tokenization,
/// so "&lt;|im_start|&gt;" is always one id and never split by BPE. Mirrors the Rust AddedVocabulary:
/// tokens with normalized=false are matched in the raw text, tokens with normalized=true in the
/// normalized text (against their own normalized content), leftmost-longest, honouring
/// single_word/lstrip/rstrip.
/// </summary>
internal sealed class AddedVocabulary
{
    /// <summary>
    /// Longest added token, in characters (real ones, such as "&lt;|reserved_special_token_250|&gt;", are under 50).
    /// Matching costs up to this many steps per character of input.
    /// </summary>
    public const int MaxTokenLength = 256;

    private readonly Matcher _raw, _normalized;

    public IReadOnlyList<AddedToken> Tokens { get; }

    private AddedVocabulary(List<AddedToken> tokens, INormalizer? normalizer)
    {
        Tokens = tokens;
        _raw = new Matcher(tokens.Where(t => !t.Normalized).Select(t => (t.Content, t)));
        _normalized = new Matcher(tokens.Where(t => t.Normalized)
            .Select(t => (normalizer?.Normalize(t.Content) ?? t.Content, t)));
    }

    public static AddedVocabulary Load(JsonElement root, TokJson json, INormalizer? normalizer)
    {
        var tokens = new List<AddedToken>();
        if (root.TryGetProperty("added_tokens", out var arr) && arr.ValueKind != JsonValueKind.Null)
        {
            if (arr.ValueKind != JsonValueKind.Array)
                throw json.Error("added_tokens must be an array");
            json.CheckEntries(arr.GetArrayLength(), "added_tokens");
            int i = 0;
            foreach (var t in arr.EnumerateArray())
            {
                string w = $"added_tokens[{i++}]";
                if (t.ValueKind != JsonValueKind.Object || !t.TryGetProperty("id", out var idJson))
                    throw json.Error($"{w}.id is missing");
                string content = json.String(t, "content", w);
                if (content.Length == 0)
                    throw json.Error($"{w}.content is empty");
                if (content.Length > MaxTokenLength)
                    throw json.Error($"{w}.content has {content.Length} characters; the limit is {MaxTokenLength}");
                bool special = json.Bool(t, "special", w, false);
                tokens.Add(new AddedToken(json.Id(idJson, $"{w}.id"), content, special,
                    json.Bool(t, "lstrip", w, false), json.Bool(t, "rstrip", w, false),
                    json.Bool(t, "single_word", w, false), json.Bool(t, "normalized", w, !special)));
            }
        }
        return new AddedVocabulary(tokens, normalizer);
    }

    /// <summary>Splits text into added-token matches (Id set) and the text between them (Id null).</summary>
    public List<(int? Id, int Start, int End)> Split(string text, bool normalizedTokens)
    {
        var matcher = normalizedTokens ? _normalized : _raw;
        var result = new List<(int? Id, int Start, int End)>();
        int offset = 0; // end of the previous split
        int pos = 0;
        while (matcher.FindNext(text, pos) is var (mStart, length, token))
        {
            int start = mStart, stop = mStart + length;
            pos = stop; // the Rust iterator resumes after a match even when it is discarded
            if (token.SingleWord && !IsSingleWord(text, start, stop))
                continue;
            if (token.LStrip)
            {
                while (start > offset && char.IsWhiteSpace(text[start - 1]))
                    start--;
            }
            if (token.RStrip)
            {
                while (stop < text.Length && char.IsWhiteSpace(text[stop]))
                    stop++;
            }
            if (offset < start)
                result.Add((null, offset, start));
            result.Add((token.Id, start, stop));
            offset = pos = stop;
        }
        if (offset < text.Length)
            result.Add((null, offset, text.Length));
        return result;
    }

    private static bool IsSingleWord(string text, int start, int stop)
    {
        bool wordBefore = start > 0 && TryRuneBefore(text, start, out var b) && WordChars.IsWordChar(b);
        bool wordAfter = stop < text.Length && Rune.TryGetRuneAt(text, stop, out var a) && WordChars.IsWordChar(a);
        return !wordBefore && !wordAfter;
    }

    private static bool TryRuneBefore(string text, int index, out Rune rune)
        => Rune.DecodeLastFromUtf16(text.AsSpan(0, index), out rune, out _) == System.Buffers.OperationStatus.Done;

    /// <summary>
    /// Leftmost-longest literal matcher over the patterns in ordinal order. From each text position it narrows the
    /// range of patterns that start with the text read so far, one binary search per character, so a position costs
    /// the length of the longest prefix found there, not the number of patterns: a file with 100,000 added tokens
    /// that share a first character would otherwise make every occurrence of that character compare all of them.
    /// </summary>
    private sealed class Matcher
    {
        private readonly (string Pattern, AddedToken Token)[] _sorted; // equal patterns keep file order: the first wins
        private readonly Dictionary<char, (int Start, int End)> _byFirst = [];

        public Matcher(IEnumerable<(string Pattern, AddedToken Token)> patterns)
        {
            _sorted = patterns.Where(p => p.Pattern.Length > 0).OrderBy(p => p.Pattern, StringComparer.Ordinal).ToArray();
            for (int i = 0; i < _sorted.Length; i++)
            {
                char c = _sorted[i].Pattern[0];
                _byFirst[c] = _byFirst.TryGetValue(c, out var range) ? (range.Start, i + 1) : (i, i + 1);
            }
        }

        public (int Start, int Length, AddedToken Token)? FindNext(string text, int from)
        {
            if (_byFirst.Count == 0)
                return null;
            for (int i = from; i < text.Length; i++)
                if (_byFirst.TryGetValue(text[i], out var range) && Longest(text, i, range.Start, range.End) is { } match)
                    return (i, match.Pattern.Length, match.Token);
            return null;
        }

        /// <summary>The longest pattern at text[at..] among _sorted[lo..hi), which all start with text[at].</summary>
        private (string Pattern, AddedToken Token)? Longest(string text, int at, int lo, int hi)
        {
            (string, AddedToken)? best = _sorted[lo].Pattern.Length == 1 ? _sorted[lo] : null;
            for (int k = 1; at + k < text.Length && lo < hi; k++)
            {
                // In [lo, hi) all patterns share text[at..at+k); the one of length exactly k sorts first.
                char c = text[at + k];
                lo = Bound(lo, hi, k, c, upper: false);
                hi = Bound(lo, hi, k, c, upper: true);
                if (lo < hi && _sorted[lo].Pattern.Length == k + 1)
                    best = _sorted[lo];
            }
            return best;
        }

        /// <summary>First index in [lo, hi) whose character k is at least (upper: above) c; a pattern too short counts as -1.</summary>
        private int Bound(int lo, int hi, int k, char c, bool upper)
        {
            while (lo < hi)
            {
                int mid = (lo + hi) >>> 1;
                string p = _sorted[mid].Pattern;
                int key = p.Length > k ? p[k] : -1;
                if (upper ? key <= c : key < c)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            return lo;
        }
    }
}
