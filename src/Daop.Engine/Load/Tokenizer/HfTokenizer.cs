// Why not Microsoft.ML.Tokenizers (2.0.1; the tests reference it as an oracle)?
// Tested against tests/fixtures/tok-fixtures: its BpeTokenizer (ByteLevel = true, RegexPreTokenizer
// with the GPT-2/Qwen pattern) reproduced 33 of the 34 byte-level samples; the miss was the NFC
// sample, because it has no NFC normalizer and string.Normalize() is a no-op under Daop's
// InvariantGlobalization. It cannot express the rest of tokenizer.json: BPE byte_fallback (Llama/
// Mistral) and ignore_merges, Split behaviours other than "keep the matches", Metaspace, decoders,
// TemplateProcessing, and added tokens' lstrip/rstrip/single_word/normalized flags. Because the BPE
// merge loop must exist here anyway for byte_fallback, one port of the Rust pipeline serves every
// model instead of two paths that could disagree; ML.Tokenizers stays as an independent oracle in the
// tests (HfTokenizerMlOracleTests cross-checks our BPE against its BpeTokenizer on longer text).

using System.Text.Json;

namespace Daop.Engine.Load.Tokenizer;

/// <summary>
/// A Hugging Face tokenizer loaded from tokenizer.json: added tokens → normalizer → pre-tokenizer →
/// BPE model → post-processor to encode, and the decoder chain to decode, matching the Rust
/// tokenizers library for the component types it supports.
/// </summary>
public sealed class HfTokenizer
{
    private const string TokenizerFile = "tokenizer.json";

    private readonly BpeModel _model;
    private readonly AddedVocabulary _added;
    private readonly INormalizer? _normalizer;
    private readonly IPreTokenizer? _preTokenizer;
    private readonly IPostProcessor? _postProcessor;
    private readonly IDecoder? _decoder;
    private readonly Dictionary<string, int> _addedByContent = new(StringComparer.Ordinal);
    private readonly Dictionary<int, string> _addedById = new();
    private readonly HashSet<string> _specialContents = new(StringComparer.Ordinal);
    private readonly HashSet<int> _specialIds = new();
    private readonly string?[] _modelTokens; // id → model vocab token

    private HfTokenizer(JsonElement root, TokJson json)
    {
        if (root.ValueKind != JsonValueKind.Object)
            throw json.Error($"the top level must be an object, found {root.ValueKind}");
        var modelJson = json.OptObject(root, "model", "") ?? throw json.Error("model is missing");
        // The Rust loader accepts a model without "type" when it looks like BPE (has merges).
        string modelType = json.OptString(modelJson, "type", "model") ?? (modelJson.TryGetProperty("merges", out _) ? "BPE" : "");
        if (modelType != "BPE")
            throw json.Unsupported("model", modelType);
        _model = BpeModel.Load(modelJson, json);
        _normalizer = Normalizers.Load(json.OptObject(root, "normalizer", ""), json);
        _preTokenizer = PreTokenizers.Load(json.OptObject(root, "pre_tokenizer", ""), json);
        _postProcessor = PostProcessors.Load(json.OptObject(root, "post_processor", ""), json);
        _decoder = Decoders.Load(json.OptObject(root, "decoder", ""), json);
        _added = AddedVocabulary.Load(root, json, _normalizer);

        int max = -1;
        foreach (var id in _model.Vocab.Values)
            max = Math.Max(max, id);
        foreach (var t in _added.Tokens)
        {
            max = Math.Max(max, t.Id);
            _addedByContent[t.Content] = t.Id;
            _addedById[t.Id] = t.Content;
            if (t.Special)
            {
                _specialContents.Add(t.Content);
                _specialIds.Add(t.Id);
            }
        }
        VocabSize = max + 1;
        _modelTokens = new string?[VocabSize];
        foreach (var (token, id) in _model.Vocab)
            _modelTokens[id] = token;
    }

    /// <summary>Loads a tokenizer.json file.</summary>
    /// <exception cref="ModelLoadException">The file is missing, not JSON, or uses an unsupported component.</exception>
    public static HfTokenizer FromFile(string tokenizerJsonPath)
    {
        using var doc = TokJson.Parse(tokenizerJsonPath);
        return new HfTokenizer(doc.RootElement, new TokJson(Path.GetFileName(tokenizerJsonPath)));
    }

    /// <summary>
    /// Loads a tokenizer.json held in memory (a GGUF file's vocabulary, described as the pipeline that computes what
    /// llama.cpp computes), named <paramref name="name"/> in messages, with its bos/eos ids.
    /// </summary>
    internal static HfTokenizer FromJson(ReadOnlyMemory<byte> json, string name, int? bosTokenId, int? eosTokenId)
    {
        using var doc = TokJson.Parse(json, name);
        return new HfTokenizer(doc.RootElement, new TokJson(name)) { BosTokenId = bosTokenId, EosTokenId = eosTokenId };
    }

    /// <summary>
    /// Loads <c>modelDir/tokenizer.json</c>, plus bos/eos tokens from <c>tokenizer_config.json</c> when present.
    /// </summary>
    /// <exception cref="ModelLoadException">A file is missing or invalid, or names a bos/eos token the vocabulary lacks.</exception>
    public static HfTokenizer FromDirectory(string modelDir)
    {
        var tokenizer = FromFile(Path.Combine(modelDir, TokenizerFile));
        if (TokenizerConfig.FromDirectory(modelDir) is { } config)
        {
            tokenizer.BosTokenId = tokenizer.ConfigTokenId(config.BosToken, "bos_token");
            tokenizer.EosTokenId = tokenizer.ConfigTokenId(config.EosToken, "eos_token");
        }
        return tokenizer;
    }

    private int? ConfigTokenId(string? token, string field)
    {
        if (token == null)
            return null;
        return TokenToId(token) ?? throw new ModelLoadException(
            $"{TokenizerConfig.FileName}: {field} '{token}' is not in the vocabulary of {TokenizerFile}");
    }

    /// <summary>Largest id in the model vocabulary or the added tokens, plus one.</summary>
    public int VocabSize { get; }

    /// <summary>Id of tokenizer_config.json's bos_token; null when not given (or loaded with <see cref="FromFile"/>).</summary>
    public int? BosTokenId { get; private set; }

    /// <summary>Id of tokenizer_config.json's eos_token; null when not given (or loaded with <see cref="FromFile"/>).</summary>
    public int? EosTokenId { get; private set; }

    /// <summary>The id of a token string (added tokens first, then the model vocabulary).</summary>
    public int? TokenToId(string token)
        => _addedByContent.TryGetValue(token, out int id) ? id : _model.Vocab.TryGetValue(token, out id) ? id : null;

    /// <summary>The token string of an id, or null when no token has it.</summary>
    public string? IdToToken(int id)
        => _addedById.TryGetValue(id, out var t) ? t : (uint)id < (uint)_modelTokens.Length ? _modelTokens[id] : null;

    /// <summary>Whether the id is an added token marked "special" (skipped when decoding with skipSpecialTokens).</summary>
    public bool IsSpecial(int id) => _specialIds.Contains(id);

    /// <summary>Encodes text; <paramref name="addSpecialTokens"/> applies the post-processor (e.g. a leading &lt;s&gt;).</summary>
    /// <exception cref="ModelLoadException">
    /// A regex of tokenizer.json ran past its match timeout on this text, or a component made it more than 64 times longer.
    /// </exception>
    public int[] Encode(string text, bool addSpecialTokens = true)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>(text.Length / 3 + 4);
        foreach (var (rawId, rawStart, rawEnd) in _added.Split(text, normalizedTokens: false))
        {
            if (rawId is int id)
            {
                ids.Add(id);
                continue;
            }
            string raw = text[rawStart..rawEnd];
            int maxLength = TextGrowth.Limit(raw.Length); // for every step of this segment: chains cannot multiply past it
            string normalized = _normalizer?.Normalize(raw, maxLength) ?? raw;
            foreach (var (normId, start, end) in _added.Split(normalized, normalizedTokens: true))
            {
                if (normId is int id2)
                {
                    ids.Add(id2);
                    continue;
                }
                var pieces = new List<Piece> { new(normalized[start..end], rawStart == 0 && start == 0) };
                if (_preTokenizer != null)
                    pieces = _preTokenizer.PreTokenize(pieces, maxLength);
                foreach (var piece in pieces)
                    _model.Tokenize(piece.Text, ids);
            }
        }
        if (addSpecialTokens && _postProcessor != null)
            ids = _postProcessor.Process(ids);
        return ids.ToArray();
    }

    /// <summary>
    /// The pieces the normalizer and pre-tokenizer cut <paramref name="text"/> into, as <see cref="Encode"/> hands them to
    /// the model one at a time (added tokens are not looked for): for checking a pre-tokenizer's splits.
    /// </summary>
    internal List<string> PreTokenize(string text)
    {
        int maxLength = TextGrowth.Limit(text.Length);
        string normalized = _normalizer?.Normalize(text, maxLength) ?? text;
        var pieces = new List<Piece> { new(normalized, true) };
        if (_preTokenizer != null)
            pieces = _preTokenizer.PreTokenize(pieces, maxLength);
        return [.. pieces.Select(p => p.Text)];
    }

    /// <summary>Decodes ids to text; unknown ids are ignored, like the Rust library.</summary>
    /// <exception cref="ModelLoadException">A Replace decoder's regex ran past its match timeout, or a decoder made the text more than 64 times longer.</exception>
    public string Decode(ReadOnlySpan<int> ids, bool skipSpecialTokens = true) => Decode(ids, skipSpecialTokens, null);

    /// <summary>
    /// Like <see cref="Decode(ReadOnlySpan{int}, bool)"/> with special tokens skipped, except those whose text is in
    /// <paramref name="shownSpecialTokens"/> (e.g. a tool-call marker a parser looks for).
    /// </summary>
    /// <exception cref="ModelLoadException">As <see cref="Decode(ReadOnlySpan{int}, bool)"/>.</exception>
    public string Decode(ReadOnlySpan<int> ids, IReadOnlySet<string> shownSpecialTokens)
        => Decode(ids, true, shownSpecialTokens ?? throw new ArgumentNullException(nameof(shownSpecialTokens)));

    internal string Decode(ReadOnlySpan<int> ids, bool skipSpecialTokens, IReadOnlySet<string>? shown)
    {
        var tokens = new List<string>(ids.Length);
        foreach (int id in ids)
        {
            // Rust checks the token text, so a model token spelled like a special one is skipped too.
            if (IdToToken(id) is { } token && !(skipSpecialTokens && _specialContents.Contains(token) && shown?.Contains(token) != true))
                tokens.Add(token);
        }
        return _decoder == null ? string.Join(" ", tokens) : string.Concat(_decoder.DecodeChain(tokens));
    }

    /// <summary>Creates a streamer that turns ids into text incrementally (see <see cref="TextStreamer"/>).</summary>
    public TextStreamer CreateStreamer(bool skipSpecialTokens = true) => new(this, skipSpecialTokens, null);

    /// <summary>
    /// Creates a streamer that skips special tokens except those whose text is in <paramref name="shownSpecialTokens"/>
    /// (<see cref="Decode(ReadOnlySpan{int}, IReadOnlySet{string})"/>).
    /// </summary>
    public TextStreamer CreateStreamer(IReadOnlySet<string> shownSpecialTokens)
        => new(this, true, shownSpecialTokens ?? throw new ArgumentNullException(nameof(shownSpecialTokens)));
}
