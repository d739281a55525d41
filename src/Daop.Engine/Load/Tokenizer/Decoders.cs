using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Daop.Engine.Load.Tokenizer;

/// <summary>
/// A tokenizer.json decoder. Like the Rust decode_chain it maps a token list to a token list, because
/// some decoders act per token (Strip, Metaspace's first-token rule) and the next one sees the result.
/// </summary>
internal interface IDecoder
{
    /// <summary>The decoded tokens, at most <paramref name="maxLength"/> characters in all (see <see cref="TextGrowth"/>).</summary>
    /// <exception cref="ModelLoadException">The result would be longer, or a regex timed out.</exception>
    List<string> DecodeChain(List<string> tokens, int maxLength);
}

/// <summary>Builds decoders from their JSON description.</summary>
internal static class Decoders
{
    public static IDecoder? Load(JsonElement? node, TokJson json) => node is { } n ? Load(n, "decoder", json) : null;

    // Every component checks its result, so an error names the one that grew the text.
    private static IDecoder Load(JsonElement n, string where, TokJson json)
    {
        json.CountComponent(where);
        return new Checked(Create(n, where, json), $"{json.File}: {where}");
    }

    private static Chain Create(JsonElement n, string where, TokJson json)
    {
        string type = json.Type(n, where);
        switch (type)
        {
            case "ByteLevel":
                return new Chain((tokens, _) => ByteLevel(tokens));
            case "Replace":
                var pattern = Pattern.Load(n, where, json);
                string content = json.String(n, "content", where);
                return new Chain((tokens, max) => Replace(tokens, pattern, content, max));
            case "ByteFallback":
                return new Chain((tokens, _) => ByteFallback(tokens));
            case "Fuse":
                return new Chain((tokens, _) => [string.Concat(tokens)]);
            case "Strip":
                string strip = json.Char(n, "content", where, " ");
                int start = json.Int(n, "start", where, 0), stop = json.Int(n, "stop", where, 0);
                return new Chain((tokens, _) => tokens.Select(t => Strip(t, strip, start, stop)).ToList());
            case "Metaspace":
                string replacement = json.Char(n, "replacement", where, "\u2581");
                string scheme = json.OptString(n, "prepend_scheme", where)
                    ?? (json.Bool(n, "add_prefix_space", where, true) ? "always" : "never");
                // The Rust decoder drops every replacement char of the first token unless "never".
                return new Chain((tokens, _) => tokens.Select((t, i) =>
                    t.Replace(replacement, i == 0 && scheme != "never" ? "" : " ", StringComparison.Ordinal)).ToList());
            case "BPEDecoder":
                string suffix = json.OptString(n, "suffix", where) ?? "</w>";
                if (suffix.Length == 0)
                    throw json.Error($"{where}.suffix must not be empty");
                return new Chain((tokens, _) => tokens.Select((t, i) =>
                    t.Replace(suffix, i == tokens.Count - 1 ? "" : " ", StringComparison.Ordinal)).ToList());
            case "WordPiece":
                string prefix = json.OptString(n, "prefix", where) ?? "##";
                bool cleanup = json.Bool(n, "cleanup", where, true);
                return new Chain((tokens, _) => WordPiece(tokens, prefix, cleanup));
            case "Sequence":
                var items = json.Array(n, "decoders", where).EnumerateArray()
                    .Select((e, i) => Load(e, $"{where}.decoders[{i}]", json)).ToArray();
                // Every item gets the same absolute limit: a chain of growing steps cannot multiply past it.
                return new Chain((tokens, max) =>
                {
                    foreach (var item in items)
                        tokens = item.DecodeChain(tokens, max);
                    return tokens;
                });
            default:
                throw json.Unsupported(where, type);
        }
    }

    /// <summary>Decodes with the growth limit for <paramref name="tokens"/> as the whole input.</summary>
    public static List<string> DecodeChain(this IDecoder decoder, List<string> tokens)
        => decoder.DecodeChain(tokens, TextGrowth.Limit(TotalLength(tokens)));

    private static long TotalLength(List<string> tokens)
    {
        long total = 0;
        foreach (var t in tokens)
            total += t.Length;
        return total;
    }

    /// <summary>Replace on each token, within what is left of the limit after the tokens before it.</summary>
    private static List<string> Replace(List<string> tokens, Pattern pattern, string content, int maxLength)
    {
        var result = new List<string>(tokens.Count);
        long total = 0;
        foreach (var t in tokens)
        {
            string replaced = pattern.Replace(t, content, maxLength, used: total);
            total += replaced.Length;
            result.Add(replaced);
        }
        return result;
    }

    private static List<string> ByteLevel(List<string> tokens)
    {
        var bytes = new List<byte>();
        foreach (var t in tokens)
            ByteLevelMap.AppendBytes(t, bytes);
        // Invalid or cut sequences become U+FFFD, like Rust's String::from_utf8_lossy.
        return [Encoding.UTF8.GetString(bytes.ToArray())];
    }

    /// <summary>Joins runs of "&lt;0xAB&gt;" tokens into text; an invalid run gives one U+FFFD per byte.</summary>
    private static List<string> ByteFallback(List<string> tokens)
    {
        var result = new List<string>(tokens.Count);
        var pending = new List<byte>();
        foreach (var t in tokens)
        {
            if (t.Length == 6 && t.StartsWith("<0x", StringComparison.Ordinal) && t[5] == '>'
                && byte.TryParse(t.AsSpan(3, 2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out byte b))
            {
                pending.Add(b);
                continue;
            }
            Flush(pending, result);
            result.Add(t);
        }
        Flush(pending, result);
        return result;

        static void Flush(List<byte> pending, List<string> result)
        {
            if (pending.Count == 0)
                return;
            var strict = new UTF8Encoding(false, throwOnInvalidBytes: true);
            try
            {
                result.Add(strict.GetString(pending.ToArray()));
            }
            catch (DecoderFallbackException)
            {
                for (int i = 0; i < pending.Count; i++)
                    result.Add("\uFFFD");
            }
            pending.Clear();
        }
    }

    /// <summary>Removes up to start/stop copies of <paramref name="c"/> from each end of one token.</summary>
    private static string Strip(string token, string c, int start, int stop)
    {
        int from = 0, to = token.Length;
        for (int i = 0; i < start && from + c.Length <= to && token.AsSpan(from).StartsWith(c, StringComparison.Ordinal); i++)
            from += c.Length;
        for (int i = 0; i < stop && to - c.Length >= from && token.AsSpan(0, to).EndsWith(c, StringComparison.Ordinal); i++)
            to -= c.Length;
        return token[from..to];
    }

    private static List<string> WordPiece(List<string> tokens, string prefix, bool cleanup)
    {
        var result = new List<string>(tokens.Count);
        for (int i = 0; i < tokens.Count; i++)
        {
            string t = tokens[i];
            if (i != 0)
                t = t.StartsWith(prefix, StringComparison.Ordinal) ? t[prefix.Length..] : " " + t;
            if (cleanup)
            {
                t = t.Replace(" .", ".").Replace(" ?", "?").Replace(" !", "!").Replace(" ,", ",")
                    .Replace(" ' ", "'").Replace(" n't", "n't").Replace(" 'm", "'m").Replace(" do not", " don't")
                    .Replace(" 's", "'s").Replace(" 've", "'ve").Replace(" 're", "'re");
            }
            result.Add(t);
        }
        return result;
    }

    private sealed class Chain(Func<List<string>, int, List<string>> f) : IDecoder
    {
        public List<string> DecodeChain(List<string> tokens, int maxLength) => f(tokens, maxLength);
    }

    private sealed class Checked(IDecoder inner, string what) : IDecoder
    {
        public List<string> DecodeChain(List<string> tokens, int maxLength)
        {
            var result = inner.DecodeChain(tokens, maxLength);
            return TotalLength(result) <= maxLength ? result : throw TextGrowth.TooLong(what, maxLength);
        }
    }
}
