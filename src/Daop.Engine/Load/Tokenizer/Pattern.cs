using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Daop.Engine.Load.Tokenizer;

/// <summary>The {"String": ...} / {"Regex": ...} pattern object shared by Split, Replace and the Replace decoder.</summary>
/// <remarks>
/// A regex from the file may backtrack exponentially (<c>(a+)+$</c> takes 26 s on a 30-character prompt), so it runs
/// with a match timeout, and a timeout becomes a <see cref="ModelLoadException"/> naming the file and the pattern.
/// The NonBacktracking engine would run such a pattern in linear time, but in .NET 10 it silently drops matches of
/// patterns with an optional element next to where a match starts (dotnet/runtime#130176): <c>[^\r\n\p{L}\p{N}]?\p{L}+</c>,
/// a branch of the Qwen and Llama 3 split patterns, misses "a" in ",1a b". Tokenizer patterns have that shape
/// everywhere, and a wrong split is worse than a clear error, so every file pattern uses the backtracking engine.
/// </remarks>
internal sealed class Pattern
{
    /// <summary>Longest pattern accepted; real split patterns are at most a few hundred characters.</summary>
    public const int MaxLength = 10_000;

    /// <summary>Time one match may take; real patterns need microseconds.</summary>
    public static readonly TimeSpan MatchTimeout = TimeSpan.FromSeconds(1);

    private readonly string? _literal;
    private readonly string _description; // file, JSON path and pattern, for errors

    /// <summary>The regex (a literal pattern is escaped into one so splitting has a single code path).</summary>
    private readonly Regex _regex;

    private Pattern(string? literal, Regex regex, string description)
    {
        _literal = literal;
        _regex = regex;
        _description = description;
    }

    public static Pattern Load(JsonElement node, string where, TokJson json)
    {
        var p = json.OptObject(node, "pattern", where) ?? throw json.Error($"{where}.pattern is missing");
        if (json.OptString(p, "String", $"{where}.pattern") is { } literal)
        {
            CheckLength(literal, $"{where}.pattern.String", json);
            return new Pattern(literal, new Regex(Regex.Escape(literal), RegexOptions.CultureInvariant, MatchTimeout),
                $"{json.File}: {where}.pattern.String '{literal}'");
        }
        if (json.OptString(p, "Regex", $"{where}.pattern") is { } regex)
        {
            CheckLength(regex, $"{where}.pattern.Regex", json);
            try
            {
                return new Pattern(null, new Regex(regex, RegexOptions.CultureInvariant | RegexOptions.Compiled, MatchTimeout),
                    $"{json.File}: {where}.pattern.Regex '{regex}'");
            }
            catch (ArgumentException e)
            {
                throw json.Error($"{where}.pattern.Regex '{regex}' is not a valid regex ({e.Message})");
            }
        }
        throw json.Error($"{where}.pattern must have a \"String\" or \"Regex\" field");
    }

    private static void CheckLength(string pattern, string where, TokJson json)
    {
        if (pattern.Length > MaxLength)
            throw json.Error($"{where} has {pattern.Length} characters; the limit is {MaxLength}");
    }

    /// <summary>Splits each piece by the matches (see <see cref="RegexSplitter.Split"/>).</summary>
    /// <exception cref="ModelLoadException">The regex ran past <see cref="MatchTimeout"/>.</exception>
    public List<Piece> Split(List<Piece> pieces, SplitBehavior behavior, bool invert)
    {
        try
        {
            return PreTokenizers.SplitAll(pieces, _regex, behavior, invert);
        }
        catch (RegexMatchTimeoutException e)
        {
            throw TimedOut(e);
        }
    }

    /// <summary>
    /// Replaces every match with <paramref name="content"/> (literally: "$1" is not a group reference), failing as soon
    /// as <paramref name="used"/> plus the result's length would pass <paramref name="maxLength"/> (a long content, or a
    /// pattern matching the empty string).
    /// </summary>
    /// <exception cref="ModelLoadException">The result would be too long, or the regex ran past <see cref="MatchTimeout"/>.</exception>
    public string Replace(string s, string content, int maxLength, long used = 0)
    {
        if (_literal != null)
            return ReplaceLiteral(s, _literal, content, maxLength - used, maxLength);
        try
        {
            var sb = new StringBuilder();
            int last = 0;
            for (var m = _regex.Match(s); m.Success; m = m.NextMatch())
            {
                sb.Append(s, last, m.Index - last).Append(content);
                last = m.Index + m.Length;
                if (used + sb.Length + (s.Length - last) > maxLength)
                    throw TextGrowth.TooLong(_description, maxLength);
            }
            return sb.Length == 0 && last == 0 ? s : sb.Append(s, last, s.Length - last).ToString();
        }
        catch (RegexMatchTimeoutException e)
        {
            throw TimedOut(e);
        }
    }

    private string ReplaceLiteral(string s, string literal, string content, long room, int maxLength)
    {
        if (literal.Length == 0)
            return s;
        if (content.Length > literal.Length && s.Length + (long)s.AsSpan().Count(literal) * (content.Length - literal.Length) > room)
            throw TextGrowth.TooLong(_description, maxLength);
        return s.Replace(literal, content, StringComparison.Ordinal);
    }

    private ModelLoadException TimedOut(RegexMatchTimeoutException e) => new(
        $"{_description} ran past its {MatchTimeout.TotalSeconds:0.#} s match timeout on a {e.Input.Length}-character text " +
        "(catastrophic backtracking); this tokenizer cannot be used until the pattern is fixed", e);
}
