using System.Text.Json.Nodes;
using Daop.Engine.Load.Gguf;

namespace Daop.Tests.Load.Gguf;

// Vocabularies: a fixture's tokenizer.json (or a synthetic byte-level one) into a model file, and vocabulary-only files.
static partial class HfToGguf
{
    // tokenizer.json → gpt2 vocabulary as _set_vocab_gpt2 writes it, or a synthetic byte-level one.
    static void Vocabulary(GgufWriter w, string dir, int vocabSize, int? bos, int? eos)
    {
        string tj = Path.Combine(dir, "tokenizer.json");
        var tokens = new string[vocabSize];
        var types = new int[vocabSize];
        List<string> merges = [];
        if (File.Exists(tj))
        {
            var doc = JsonNode.Parse(File.ReadAllText(tj))!.AsObject();
            var added = doc["added_tokens"]!.AsArray().ToDictionary(t => (string)t!["content"]!, t => (bool)t!["special"]!);
            var vocab = doc["model"]!["vocab"]!.AsObject().ToDictionary(p => (int)p.Value!, p => p.Key);
            foreach (var t in doc["added_tokens"]!.AsArray()) vocab[(int)t!["id"]!] = (string)t["content"]!;
            for (int i = 0; i < vocabSize; i++)
            {
                if (!vocab.TryGetValue(i, out var s)) { tokens[i] = $"[PAD{i}]"; types[i] = (int)GgufTokenizer.TokenType.Unused; continue; }
                tokens[i] = s;
                types[i] = added.TryGetValue(s, out bool special) ? (int)(special ? GgufTokenizer.TokenType.Control : GgufTokenizer.TokenType.UserDefined)
                    : (int)GgufTokenizer.TokenType.Normal;
            }
            merges = doc["model"]!["merges"]!.AsArray().Select(m => m is JsonArray a ? $"{a[0]} {a[1]}" : (string)m!).ToList();
            var tc = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "tokenizer_config.json")))!.AsObject();
            int? Id(string key) => tc[key] is JsonNode n ? Array.IndexOf(tokens, n is JsonValue ? (string)n! : (string)n["content"]!) : null;
            bos = Id("bos_token"); eos = Id("eos_token");
            if (Id("pad_token") is { } pad) w.Add("tokenizer.ggml.padding_token_id", (uint)pad);
            string jinja = Path.Combine(dir, "chat_template.jinja");
            if (File.Exists(jinja)) w.Add("tokenizer.chat_template", File.ReadAllText(jinja));
        }
        else
        {
            var bytes = Bytes();
            for (int i = 0; i < vocabSize; i++)
            {
                if (i < 256) tokens[i] = bytes[i];
                else
                {
                    int k = i - 256;
                    string a = bytes['a' + k % 26], b = bytes['a' + k / 26 % 26];
                    tokens[i] = a + b + (k >= 676 ? $"{k / 676}" : "");
                    if (k < 676) merges.Add($"{a} {b}");
                }
                types[i] = (int)GgufTokenizer.TokenType.Normal;
            }
        }
        w.Add("tokenizer.ggml.model", "gpt2");
        w.Add("tokenizer.ggml.pre", "gpt-2");
        w.Add("tokenizer.ggml.tokens", tokens);
        w.Add("tokenizer.ggml.token_type", types);
        w.Add("tokenizer.ggml.merges", merges.ToArray());
        if (bos is { } bb && bb < vocabSize) w.Add("tokenizer.ggml.bos_token_id", (uint)bb);
        if (eos is { } ee && ee < vocabSize) w.Add("tokenizer.ggml.eos_token_id", (uint)ee);
        w.Add("tokenizer.ggml.add_bos_token", false);
        w.Add("tokenizer.ggml.add_eos_token", false);
    }

    /// <summary>
    /// A vocabulary-only GGUF (general.architecture llama, no tensors: what llama-tokenize loads) from a tokenizer.json.
    /// Byte-level BPE becomes a gpt2 vocabulary with pre-tokenizer <paramref name="pre"/>; a SentencePiece-style BPE with
    /// byte fallback becomes a llama vocabulary whose scores order the merges as its merge list does (the piece a merge
    /// makes scores −rank, other pieces −1e9; types UNKNOWN, CONTROL, BYTE and NORMAL as the converter assigns them).
    /// </summary>
    public static GgufWriter TokenizerOnly(string tokenizerJson, string pre)
    {
        var doc = JsonNode.Parse(File.ReadAllText(tokenizerJson))!.AsObject();
        var model = doc["model"]!.AsObject();
        var vocab = model["vocab"]!.AsObject().ToDictionary(p => (int)p.Value!, p => p.Key);
        var added = doc["added_tokens"]!.AsArray().ToDictionary(t => (int)t!["id"]!, t => ((string)t!["content"]!, (bool)t["special"]!));
        foreach (var (id, (content, _)) in added) vocab[id] = content;
        int n = vocab.Keys.Max() + 1;
        var tokens = Enumerable.Range(0, n).Select(i => vocab.TryGetValue(i, out var t) ? t : $"[PAD{i}]").ToArray();
        var merges = model["merges"]!.AsArray().Select(m => m is JsonArray a ? ((string)a[0]!, (string)a[1]!) : Split((string)m!)).ToList();
        bool spm = (bool?)model["byte_fallback"] == true;
        var types = new int[n];
        var w = new GgufWriter();
        w.Add("general.architecture", "llama");
        w.Add("general.name", Path.GetFileName(tokenizerJson));
        for (int i = 0; i < n; i++)
            types[i] = (int)(added.TryGetValue(i, out var a) ? a.Item2 ? (tokens[i] == (string?)model["unk_token"] ? GgufTokenizer.TokenType.Unknown : GgufTokenizer.TokenType.Control) : GgufTokenizer.TokenType.UserDefined
                : !vocab.ContainsKey(i) ? GgufTokenizer.TokenType.Unused
                : spm && tokens[i].Length == 6 && tokens[i].StartsWith("<0x", StringComparison.Ordinal) ? GgufTokenizer.TokenType.Byte
                : GgufTokenizer.TokenType.Normal);
        int Find(string t) => Array.IndexOf(tokens, t);
        if (spm)
        {
            var scores = Enumerable.Repeat(-1e9f, n).ToArray();
            for (int r = merges.Count - 1; r >= 0; r--) if (Find(merges[r].Item1 + merges[r].Item2) is var id and >= 0) scores[id] = -r;
            w.Add("tokenizer.ggml.model", "llama");
            w.Add("tokenizer.ggml.pre", "default");
            w.Add("tokenizer.ggml.tokens", tokens);
            w.Add("tokenizer.ggml.scores", scores);
            w.Add("tokenizer.ggml.token_type", types);
            w.Add("tokenizer.ggml.unknown_token_id", (uint)Find((string)model["unk_token"]!));
            w.Add("tokenizer.ggml.bos_token_id", (uint)Find("<s>"));
            w.Add("tokenizer.ggml.eos_token_id", (uint)Find("</s>"));
            w.Add("tokenizer.ggml.add_bos_token", true);
        }
        else
        {
            w.Add("tokenizer.ggml.model", "gpt2");
            w.Add("tokenizer.ggml.pre", pre);
            w.Add("tokenizer.ggml.tokens", tokens);
            w.Add("tokenizer.ggml.token_type", types);
            w.Add("tokenizer.ggml.merges", merges.Select(m => $"{m.Item1} {m.Item2}").ToArray());
            w.Add("tokenizer.ggml.add_bos_token", false);
        }
        return w;
    }

    static (string, string) Split(string merge)
    {
        int space = merge.IndexOf(' ', 1);
        return (merge[..space], merge[(space + 1)..]);
    }

    /// <summary>GPT-2's byte → character map, by byte.</summary>
    public static string[] Bytes()
    {
        var bs = Enumerable.Range('!', '~' - '!' + 1).Concat(Enumerable.Range('¡', '¬' - '¡' + 1)).Concat(Enumerable.Range('®', 'ÿ' - '®' + 1)).ToList();
        var cs = bs.ToList();
        int n = 0;
        for (int b = 0; b < 256; b++)
            if (!bs.Contains(b)) { bs.Add(b); cs.Add(256 + n++); }
        var map = new string[256];
        for (int i = 0; i < bs.Count; i++) map[bs[i]] = ((char)cs[i]).ToString();
        return map;
    }
}
