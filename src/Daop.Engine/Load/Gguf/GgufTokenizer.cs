using System.Text.Json;
using Daop.Engine.Load.Tokenizer;

namespace Daop.Engine.Load.Gguf;

/// <summary>
/// The tokenizer a GGUF file describes (<c>tokenizer.ggml.*</c>), built as the tokenizer.json pipeline that computes
/// what llama.cpp computes for that file and loaded through the same <see cref="HfTokenizer"/> (so its validation and
/// limits apply):
/// <list type="bullet">
/// <item><c>gpt2</c>: byte-level BPE; <c>tokens</c> and <c>merges</c> as they are; the pre-tokenizer is the Split regexes
/// llama.cpp uses for <c>tokenizer.ggml.pre</c> (<see cref="GgufPreTokenizers"/>), then ByteLevel.</item>
/// <item><c>llama</c>: SentencePiece BPE with byte fallback. llama.cpp merges the adjacent pair whose concatenation has the
/// highest <c>scores</c> entry; the same order as BPE merges is every split of a vocabulary piece into two pieces, ranked
/// by the piece's score (how transformers converts SentencePiece models). Spaces become ▁, with one prepended to each
/// text segment when <c>add_space_prefix</c> (llama.cpp's default for SentencePiece).</item>
/// </list>
/// Token types CONTROL, USER_DEFINED and UNKNOWN are added tokens, cut out of the text before BPE (CONTROL and UNKNOWN
/// count as special: skipped when decoding); BOS/EOS are added per <c>add_bos_token</c> / <c>add_eos_token</c>.
/// </summary>
public static partial class GgufTokenizer
{
    /// <summary>GGUF token types (llama_token_type).</summary>
    public enum TokenType
    {
        /// <summary>A regular vocabulary piece.</summary>
        Normal = 1,
        /// <summary>The unknown token.</summary>
        Unknown = 2,
        /// <summary>A special token (BOS, EOS, chat markers).</summary>
        Control = 3,
        /// <summary>A token added by the model's authors, matched in raw text.</summary>
        UserDefined = 4,
        /// <summary>A placeholder.</summary>
        Unused = 5,
        /// <summary>A byte-fallback piece &lt;0xAB&gt;.</summary>
        Byte = 6,
    }

    /// <summary>Builds the tokenizer of <paramref name="m"/>; errors name the file and key.</summary>
    public static HfTokenizer Load(GgufMetadata m)
    {
        var v = Vocabulary.Read(m);
        string model = m.StringOrNull("tokenizer.ggml.model") ?? throw m.Error("tokenizer.ggml.model", "is missing (the file has no tokenizer)");
        byte[] json = model switch
        {
            "gpt2" => Gpt2(m, v),
            "llama" => SentencePiece(m, v),
            _ => throw m.Error("tokenizer.ggml.model", $"'{model}' is not supported (Daop reads 'gpt2' byte-level BPE and 'llama' SentencePiece vocabularies)"),
        };
        return HfTokenizer.FromJson(json, $"{m.Path} (tokenizer.ggml.*)", v.Bos, v.Eos);
    }

    /// <summary>The tokens, types, scores and special ids of a GGUF vocabulary, validated.</summary>
    sealed record Vocabulary(string[] Tokens, TokenType[] Types, float[]? Scores, int? Bos, int? Eos, int? Unk, bool AddBos, bool AddEos)
    {
        public static Vocabulary Read(GgufMetadata m)
        {
            var tokens = m.StringsOrNull("tokenizer.ggml.tokens") ?? throw m.Error("tokenizer.ggml.tokens", "is missing (the file has no tokenizer)");
            if (tokens.Length == 0) throw m.Error("tokenizer.ggml.tokens", "is empty");
            if (tokens.Length > TokJson.MaxId + 1) throw m.Error("tokenizer.ggml.tokens", $"has {tokens.Length} tokens; the limit is {TokJson.MaxId + 1}");
            tokens = (string[])tokens.Clone();
            var ids = new Dictionary<string, int>(tokens.Length, StringComparer.Ordinal);
            for (int i = 0; i < tokens.Length; i++)
            {
                if (tokens[i].Length == 0) tokens[i] = $"[EMPTY_{i}]"; // as llama.cpp names them
                if (!ids.TryAdd(tokens[i], i))
                    throw m.Error($"tokenizer.ggml.tokens[{i}]", $"'{tokens[i]}' repeats token {ids[tokens[i]]}");
            }
            var types = m.IntsOrNull("tokenizer.ggml.token_type") is { } t
                ? t.Length == tokens.Length ? t.Select((x, i) => x is >= 1 and <= 6 ? (TokenType)x
                    : throw m.Error($"tokenizer.ggml.token_type[{i}]", $"is {x}, not a token type (1-6)")).ToArray()
                    : throw m.Error("tokenizer.ggml.token_type", $"has {t.Length} entries for {tokens.Length} tokens")
                : Enumerable.Repeat(TokenType.Normal, tokens.Length).ToArray();
            var scores = m.FloatsOrNull("tokenizer.ggml.scores");
            if (scores != null && scores.Length != tokens.Length)
                throw m.Error("tokenizer.ggml.scores", $"has {scores.Length} entries for {tokens.Length} tokens");
            for (int i = 0; i < tokens.Length; i++)
                if (types[i] is TokenType.Control or TokenType.UserDefined or TokenType.Unknown && tokens[i].Length > AddedVocabulary.MaxTokenLength)
                    throw m.Error($"tokenizer.ggml.tokens[{i}]", $"is a {types[i]} token of {tokens[i].Length} characters; the limit is {AddedVocabulary.MaxTokenLength}");
            bool spm = m.StringOrNull("tokenizer.ggml.model") == "llama";
            return new Vocabulary(tokens, types, scores, Id(m, "bos", tokens.Length), Id(m, "eos", tokens.Length),
                Id(m, "unknown", tokens.Length), m.BoolOr("tokenizer.ggml.add_bos_token", spm), m.BoolOr("tokenizer.ggml.add_eos_token", false));
        }

        static int? Id(GgufMetadata m, string name, int count)
        {
            string key = $"tokenizer.ggml.{name}_token_id";
            return m.IntOrNull(key) is not { } id ? null
                : id >= 0 && id < count ? id : throw m.Error(key, $"is {id}, not one of the {count} tokens");
        }

        public bool IsAdded(int i) => Types[i] is TokenType.Control or TokenType.UserDefined or TokenType.Unknown;
    }

    static byte[] Gpt2(GgufMetadata m, Vocabulary v)
    {
        string? preName = m.StringOrNull("tokenizer.ggml.pre");
        var pre = GgufPreTokenizers.Find(preName) ?? throw m.Error("tokenizer.ggml.pre",
            $"'{preName}' is not a pre-tokenizer llama.cpp knows (known: {string.Join(", ", GgufPreTokenizers.Names.Order(StringComparer.Ordinal))})");
        var merges = m.StringsOrNull("tokenizer.ggml.merges") ?? throw m.Error("tokenizer.ggml.merges", "is missing (a gpt2 vocabulary needs its merges)");
        var ids = v.Tokens.Select((t, i) => (t, i)).ToDictionary(x => x.t, x => x.i, StringComparer.Ordinal);
        var pairs = new List<(string, string)>(merges.Length);
        for (int i = 0; i < merges.Length; i++)
        {
            // llama.cpp splits at the first space after the first character.
            int space = merges[i].Length > 1 ? merges[i].IndexOf(' ', 1) : -1;
            if (space < 0) throw m.Error($"tokenizer.ggml.merges[{i}]", $"'{merges[i]}' is not two tokens separated by a space");
            string a = merges[i][..space], b = merges[i][(space + 1)..];
            // A merge of tokens outside the vocabulary, or into one, can never produce a token: llama.cpp keeps it
            // to no effect, and tokenizer.json cannot state it.
            if (ids.ContainsKey(a) && ids.ContainsKey(b) && ids.ContainsKey(a + b)) pairs.Add((a, b));
        }
        return Write(w =>
        {
            AddedTokens(w, v);
            w.WriteNull("normalizer");
            w.WriteStartObject("pre_tokenizer");
            w.WriteString("type", "Sequence");
            w.WriteStartArray("pretokenizers");
            foreach (string regex in pre.Regexes)
            {
                w.WriteStartObject();
                w.WriteString("type", "Split");
                w.WriteStartObject("pattern");
                w.WriteString("Regex", regex);
                w.WriteEndObject();
                w.WriteString("behavior", "Isolated");
                w.WriteBoolean("invert", false);
                w.WriteEndObject();
            }
            ByteLevel(w, null);
            w.WriteEndArray();
            w.WriteEndObject();
            PostProcessor(w, v);
            ByteLevel(w, "decoder");
            Model(w, v, pairs, pre.IgnoreMerges, byteFallback: false);
        });
    }

    static byte[] SentencePiece(GgufMetadata m, Vocabulary v)
    {
        if (v.Scores == null) throw m.Error("tokenizer.ggml.scores", "is missing (a SentencePiece vocabulary merges by score)");
        bool prefix = m.BoolOr("tokenizer.ggml.add_space_prefix", true);
        var merges = ScoreMerges(v);
        return Write(w =>
        {
            AddedTokens(w, v);
            w.WriteStartObject("normalizer");
            w.WriteString("type", "Sequence");
            w.WriteStartArray("normalizers");
            if (prefix)
            {
                w.WriteStartObject();
                w.WriteString("type", "Prepend");
                w.WriteString("prepend", "\u2581");
                w.WriteEndObject();
            }
            Replace(w, " ", "\u2581");
            w.WriteEndArray();
            w.WriteEndObject();
            w.WriteNull("pre_tokenizer");
            PostProcessor(w, v);
            w.WriteStartObject("decoder");
            w.WriteString("type", "Sequence");
            w.WriteStartArray("decoders");
            Replace(w, "\u2581", " ");
            Simple(w, "ByteFallback");
            Simple(w, "Fuse");
            if (prefix)
            {
                w.WriteStartObject();
                w.WriteString("type", "Strip");
                w.WriteString("content", " ");
                w.WriteNumber("start", 1);
                w.WriteNumber("stop", 0);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
            Model(w, v, merges, ignoreMerges: false, byteFallback: true);
        });
    }

    /// <summary>
    /// Every split of a scored piece into two pieces of the vocabulary, best score first (ties by id, then by the split's
    /// pieces): the BPE merges that reproduce llama.cpp's score-ordered SentencePiece merging.
    /// </summary>
    static List<(string, string)> ScoreMerges(Vocabulary v)
    {
        var ids = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < v.Tokens.Length; i++)
            if (v.Types[i] is TokenType.Normal or TokenType.Unused) ids[v.Tokens[i]] = i;
        var found = new List<(float Score, int Id, int Left, int Right, string A, string B)>();
        var lookup = ids.GetAlternateLookup<ReadOnlySpan<char>>();
        foreach (var (piece, id) in ids)
        {
            for (int k = 1; k < piece.Length; k++)
            {
                if (char.IsLowSurrogate(piece[k])) continue; // split between code points only
                if (lookup.TryGetValue(piece.AsSpan(0, k), out int left) && lookup.TryGetValue(piece.AsSpan(k), out int right))
                    found.Add((v.Scores![id], id, left, right, piece[..k], piece[k..]));
            }
        }
        found.Sort((x, y) => y.Score.CompareTo(x.Score) is var c and not 0 ? c
            : x.Id.CompareTo(y.Id) is var d and not 0 ? d : x.Left.CompareTo(y.Left) is var e and not 0 ? e : x.Right.CompareTo(y.Right));
        return found.Select(f => (f.A, f.B)).ToList();
    }
}
