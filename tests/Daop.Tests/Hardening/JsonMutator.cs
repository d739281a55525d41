using System.Text;
using System.Text.Json;

namespace Daop.Tests.Hardening;

/// <summary>
/// Seeded mutations of a JSON document, edited as UTF-8 text so large files (tokenizers) mutate in microseconds.
/// Structure-aware edits (replace a value with an edge case of another type, delete or add a key, duplicate an array
/// item, nudge a number) get past the parser to the loader's own checks; raw edits (flip a byte, truncate, splice)
/// exercise the parser's error path. Targets are picked by first choosing a nesting depth, so the few top-level fields
/// are hit as often as the thousands of vocabulary entries.
/// </summary>
sealed class JsonMutator(Random rng, IReadOnlyList<string> extraKeys)
{
    static readonly string[] EdgeValues =
    [
        "-1", "0", "1", "2", "3", "7", "-0", "0.5", "3.0", "1e3", "1e9", "1e308", "-1e308", "2147483647", "2147483648", "-2147483648",
        "4294967296", "9223372036854775807", "1e400", "\"\"", "\"8\"", "\"silu\"", "\"gelu\"", "\"BPE\"", "\"default\"", "\"yarn\"", "\"longrope\"",
        "\"llama3\"", "\"linear\"", "\"Sequence\"", "\"ByteLevel\"", "\"Metaspace\"", "\"Split\"", "\"NFC\"", "\"\\u0000\"", "\"\\ud800\"",
        "\"a\\udc00b\"", "true", "false", "null", "[]", "{}", "[1, 2]", "[\"a\"]", "[[\"a\", \"b\"]]", "[-1]", "[0, 0]", "{\"type\": \"BPE\"}",
        "{\"rope_type\": \"yarn\"}", "{\"type\": \"Sequence\"}", "[\"a b\", \"c\"]", "[{}]", "[null]", "\"(?<\"", "{\"Regex\": \"(\"}",
    ];

    const string RawAlphabet = "{}[]\":,0123456789-+.eE \\tnulfrs";

    /// <summary>A value in the document: [Start, End) bytes; for an object member, NameStart is its key's opening quote.</summary>
    readonly record struct Token(int Start, int End, int NameStart, int Depth, JsonTokenType Type, string Key);

    /// <summary>A mutant of <paramref name="json"/> (1–3 edits) and a short description of the edits.</summary>
    public (byte[] Bytes, string What) Mutate(byte[] json)
    {
        int n = 1 + rng.Next(3);
        var what = new List<string>();
        byte[] bytes = json;
        for (int i = 0; i < n; i++)
        {
            List<Token> tokens = rng.Next(8) == 0 ? [] : Tokenize(bytes);
            string w;
            bytes = tokens.Count == 0 ? MutateRaw(bytes, out w) : MutateTree(bytes, tokens, out w);
            what.Add(w);
        }
        return (bytes, string.Join("; ", what));
    }

    // Every value token of the document, up to the first syntax error (a broken mutant still has a usable prefix).
    static List<Token> Tokenize(byte[] bytes)
    {
        var tokens = new List<Token>();
        var open = new Stack<(int Start, int NameStart, int Depth, JsonTokenType Type, string Key)>();
        var reader = new Utf8JsonReader(bytes, new JsonReaderOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
        int nameStart = -1;
        string key = "";
        try
        {
            while (reader.Read())
            {
                int start = (int)reader.TokenStartIndex;
                switch (reader.TokenType)
                {
                    case JsonTokenType.PropertyName:
                        nameStart = start;
                        key = Encoding.UTF8.GetString(reader.ValueSpan);
                        continue;
                    case JsonTokenType.StartObject or JsonTokenType.StartArray:
                        open.Push((start, nameStart, reader.CurrentDepth, reader.TokenType, key));
                        break;
                    case JsonTokenType.EndObject or JsonTokenType.EndArray:
                        var o = open.Pop();
                        tokens.Add(new Token(o.Start, start + 1, o.NameStart, o.Depth, o.Type, o.Key));
                        break;
                    case JsonTokenType.String:
                        tokens.Add(new Token(start, start + reader.ValueSpan.Length + 2, nameStart, reader.CurrentDepth, reader.TokenType, key));
                        break;
                    default:
                        tokens.Add(new Token(start, start + reader.ValueSpan.Length, nameStart, reader.CurrentDepth, reader.TokenType, key));
                        break;
                }
                nameStart = -1;
                key = "";
            }
        }
        catch (JsonException)
        {
        }
        return tokens;
    }

    byte[] MutateTree(byte[] b, List<Token> tokens, out string what)
    {
        int maxDepth = tokens.Max(t => t.Depth);
        int depth = rng.Next(maxDepth + 1);
        var atDepth = tokens.Where(t => t.Depth == depth).ToList();
        if (atDepth.Count == 0) atDepth = tokens;
        var t = atDepth[rng.Next(atDepth.Count)];
        string where = $"'{t.Key}'@{t.Start}";
        switch (rng.Next(6))
        {
            case 0 or 1:
            {
                string v = EdgeValues[rng.Next(EdgeValues.Length)];
                what = $"{where} = {v}";
                return Splice(b, t.Start, t.End, v);
            }
            case 2 when t.NameStart >= 0:
            {
                what = $"delete {where}";
                int from = t.NameStart, to = t.End;
                int next = SkipSpace(b, to);
                if (next < b.Length && b[next] == ',') to = next + 1;
                else
                {
                    int prev = from - 1;
                    while (prev >= 0 && IsSpace(b[prev])) prev--;
                    if (prev >= 0 && b[prev] == ',') from = prev;
                }
                return Splice(b, from, to, "");
            }
            case 3 when t.Type == JsonTokenType.Number && double.TryParse(Encoding.UTF8.GetString(b, t.Start, t.End - t.Start),
                System.Globalization.CultureInfo.InvariantCulture, out double d):
            {
                double[] factors = [2, 0.5, -1, 1000, 1e-3];
                double x = rng.Next(2) == 0 ? Math.Round(d * factors[rng.Next(factors.Length)]) : d + (rng.Next(2) == 0 ? 1 : -1);
                if (!double.IsFinite(x)) x = -d;
                string v = x.ToString("R", System.Globalization.CultureInfo.InvariantCulture);
                what = $"{where} {d} -> {v}";
                return Splice(b, t.Start, t.End, v);
            }
            case 4 when t.NameStart < 0 && t.Depth > 0:
            {
                // An array item: duplicate it.
                string item = Encoding.UTF8.GetString(b, t.Start, t.End - t.Start);
                what = $"duplicate {where}";
                return Splice(b, t.Start, t.Start, item + ",");
            }
            default:
            {
                var objects = tokens.Where(x => x.Type == JsonTokenType.StartObject && x.Depth <= Math.Max(depth, 1)).ToList();
                if (objects.Count == 0) objects = tokens.Where(x => x.Type == JsonTokenType.StartObject).ToList();
                if (objects.Count == 0)
                {
                    string v0 = EdgeValues[rng.Next(EdgeValues.Length)];
                    what = $"{where} = {v0}";
                    return Splice(b, t.Start, t.End, v0);
                }
                var o = objects[rng.Next(objects.Count)];
                string key = extraKeys.Count > 0 && rng.Next(3) > 0 ? extraKeys[rng.Next(extraKeys.Count)] : "k" + rng.Next(100);
                string v = EdgeValues[rng.Next(EdgeValues.Length)];
                bool empty = b[SkipSpace(b, o.Start + 1)] == '}';
                what = $"'{o.Key}'@{o.Start}.{key} = {v}";
                return Splice(b, o.Start + 1, o.Start + 1, $"\"{key}\": {v}{(empty ? "" : ",")}");
            }
        }
    }

    static bool IsSpace(byte c) => c is (byte)' ' or (byte)'\n' or (byte)'\r' or (byte)'\t';

    static int SkipSpace(byte[] b, int i)
    {
        while (i < b.Length && IsSpace(b[i])) i++;
        return i;
    }

    static byte[] Splice(byte[] b, int from, int to, string insert)
    {
        var ins = Encoding.UTF8.GetBytes(insert);
        var r = new byte[b.Length - (to - from) + ins.Length];
        b.AsSpan(0, from).CopyTo(r);
        ins.CopyTo(r, from);
        b.AsSpan(to).CopyTo(r.AsSpan(from + ins.Length));
        return r;
    }

    byte[] MutateRaw(byte[] b, out string what)
    {
        if (b.Length == 0)
        {
            what = "raw: empty";
            return b;
        }
        int at = rng.Next(b.Length);
        switch (rng.Next(4))
        {
            case 0:
                what = $"raw: truncate at {at}";
                return b[..at];
            case 1:
            {
                what = $"raw: byte {at} = random";
                var r = (byte[])b.Clone();
                r[at] = (byte)rng.Next(256);
                return r;
            }
            case 2:
            {
                int len = 1 + rng.Next(4);
                var ins = new char[len];
                for (int i = 0; i < len; i++) ins[i] = RawAlphabet[rng.Next(RawAlphabet.Length)];
                what = $"raw: insert '{new string(ins)}' at {at}";
                return Splice(b, at, at, new string(ins));
            }
            default:
            {
                int len = Math.Min(b.Length - at, 1 + rng.Next(16));
                what = $"raw: delete {len} at {at}";
                return Splice(b, at, at + len, "");
            }
        }
    }
}
