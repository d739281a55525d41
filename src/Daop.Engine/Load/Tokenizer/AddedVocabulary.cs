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
            int i = 0;
            foreach (var t in arr.EnumerateArray())
            {
                string w = $"added_tokens[{i++}]";
                if (t.ValueKind != JsonValueKind.Object || !t.TryGetProperty("id", out var idJson))
                    throw json.Error($"{w}.id is missing");
                string content = json.String(t, "content", w);
                if (content.Length == 0)
                    throw json.Error($"{w}.content is empty");
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

    /// <summary>Leftmost-longest literal matcher: candidates grouped by first char, longest first.</summary>
    private sealed class Matcher
    {
        private readonly Dictionary<char, (string Pattern, AddedToken Token)[]> _byFirst;

        public Matcher(IEnumerable<(string Pattern, AddedToken Token)> patterns)
        {
            _byFirst = patterns.Where(p => p.Pattern.Length > 0).GroupBy(p => p.Pattern[0])
                .ToDictionary(g => g.Key, g => g.OrderByDescending(p => p.Pattern.Length).ToArray());
        }

        public (int Start, int Length, AddedToken Token)? FindNext(string text, int from)
        {
            if (_byFirst.Count == 0)
                return null;
            for (int i = from; i < text.Length; i++)
            {
                if (!_byFirst.TryGetValue(text[i], out var candidates))
                    continue;
                foreach (var (pattern, token) in candidates)
                    if (text.AsSpan(i).StartsWith(pattern, StringComparison.Ordinal))
                        return (i, pattern.Length, token);
            }
            return null;
        }
    }
}
