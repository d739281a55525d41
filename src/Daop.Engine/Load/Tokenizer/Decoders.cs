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
    List<string> DecodeChain(List<string> tokens);
}

/// <summary>Builds decoders from their JSON description.</summary>
internal static class Decoders
{
    public static IDecoder? Load(JsonElement? node, TokJson json) => node is { } n ? Load(n, "decoder", json) : null;

    private static IDecoder Load(JsonElement n, string where, TokJson json)
    {
        string type = json.Type(n, where);
        switch (type)
        {
            case "ByteLevel":
                return new Chain(ByteLevel);
            case "Replace":
                var pattern = Pattern.Load(n, where, json);
                string content = json.String(n, "content", where);
                return new Chain(tokens => tokens.Select(t => pattern.Replace(t, content)).ToList());
            case "ByteFallback":
                return new Chain(ByteFallback);
            case "Fuse":
                return new Chain(tokens => [string.Concat(tokens)]);
            case "Strip":
                string strip = json.Char(n, "content", where, " ");
                int start = json.Int(n, "start", where, 0), stop = json.Int(n, "stop", where, 0);
                return new Chain(tokens => tokens.Select(t => Strip(t, strip, start, stop)).ToList());
            case "Metaspace":
                string replacement = json.Char(n, "replacement", where, "\u2581");
                string scheme = json.OptString(n, "prepend_scheme", where)
                    ?? (json.Bool(n, "add_prefix_space", where, true) ? "always" : "never");
                // The Rust decoder drops every replacement char of the first token unless "never".
                return new Chain(tokens => tokens.Select((t, i) =>
                    t.Replace(replacement, i == 0 && scheme != "never" ? "" : " ", StringComparison.Ordinal)).ToList());
            case "BPEDecoder":
                string suffix = json.OptString(n, "suffix", where) ?? "</w>";
                return new Chain(tokens => tokens.Select((t, i) =>
                    t.Replace(suffix, i == tokens.Count - 1 ? "" : " ", StringComparison.Ordinal)).ToList());
            case "WordPiece":
                string prefix = json.OptString(n, "prefix", where) ?? "##";
                bool cleanup = json.Bool(n, "cleanup", where, true);
                return new Chain(tokens => WordPiece(tokens, prefix, cleanup));
            case "Sequence":
                var items = json.Array(n, "decoders", where).EnumerateArray()
                    .Select((e, i) => Load(e, $"{where}.decoders[{i}]", json)).ToArray();
                return new Chain(tokens =>
                {
                    foreach (var item in items)
                        tokens = item.DecodeChain(tokens);
                    return tokens;
                });
            default:
                throw json.Unsupported(where, type);
        }
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

    private sealed class Chain(Func<List<string>, List<string>> f) : IDecoder
    {
        public List<string> DecodeChain(List<string> tokens) => f(tokens);
    }
}
