using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;

namespace Daop.Engine.Load.Tokenizer;

/// <summary>
/// The "BPE" model of tokenizer.json, a port of the Rust tokenizers merge loop: a word starts as one
/// symbol per character (or per byte with byte_fallback), then the lowest-ranked adjacent pair is
/// merged repeatedly, picked from a priority queue (rank, then position) so a word costs O(n log n).
/// </summary>
internal sealed class BpeModel
{
    // The Rust library caches words up to 256 bytes in a 10k-entry cache; same limits here.
    private const int MaxCachedWordLength = 256;
    private const int CacheCapacity = 10_000;

    private readonly Dictionary<string, int> _vocab;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _vocabBySpan;
    private readonly Dictionary<long, (int Rank, int NewId)> _merges;
    private readonly int[] _byteFallbackIds; // "<0xAB>" ids, -1 when the vocab lacks one
    private readonly int? _unkId;
    private readonly bool _fuseUnk, _byteFallback, _ignoreMerges;
    private readonly string? _prefix, _suffix;
    private readonly ConcurrentDictionary<string, int[]> _cache = new();

    /// <summary>Model vocabulary (token → id).</summary>
    public IReadOnlyDictionary<string, int> Vocab => _vocab;

    private BpeModel(Dictionary<string, int> vocab, Dictionary<long, (int, int)> merges, int? unkId,
        bool fuseUnk, bool byteFallback, bool ignoreMerges, string? prefix, string? suffix)
    {
        _vocab = vocab;
        _vocabBySpan = vocab.GetAlternateLookup<ReadOnlySpan<char>>();
        _merges = merges;
        _unkId = unkId;
        _fuseUnk = fuseUnk;
        _byteFallback = byteFallback;
        _ignoreMerges = ignoreMerges;
        _prefix = prefix;
        _suffix = suffix;
        _byteFallbackIds = new int[256];
        for (int b = 0; b < 256; b++)
            _byteFallbackIds[b] = vocab.TryGetValue($"<0x{b:X2}>", out int id) ? id : -1;
    }

    /// <summary>Longest continuing_subword_prefix / end_of_word_suffix ("##", "&lt;/w&gt;"): one is built per character.</summary>
    public const int MaxAffixLength = 64;

    public static BpeModel Load(JsonElement model, TokJson json)
    {
        const string where = "model";
        var vocabJson = json.OptObject(model, "vocab", where) ?? throw json.Error("model.vocab is missing");
        json.CheckEntries(vocabJson.GetPropertyCount(), "model.vocab");
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var p in vocabJson.EnumerateObject())
            vocab[p.Name] = json.Id(p.Value, $"model.vocab['{p.Name}']");

        string? prefix = Affix(model, "continuing_subword_prefix", json);
        string? suffix = Affix(model, "end_of_word_suffix", json);
        var merges = new Dictionary<long, (int, int)>();
        if (model.TryGetProperty("merges", out var mergesJson) && mergesJson.ValueKind != JsonValueKind.Null)
        {
            if (mergesJson.ValueKind != JsonValueKind.Array)
                throw json.Error("model.merges must be an array");
            json.CheckEntries(mergesJson.GetArrayLength(), "model.merges");
            int rank = 0;
            foreach (var m in mergesJson.EnumerateArray())
            {
                var (a, b) = ParseMerge(m, rank, json);
                string where2 = $"model.merges[{rank}]";
                if (!vocab.TryGetValue(a, out int idA) || !vocab.TryGetValue(b, out int idB))
                    throw json.Error($"{where2} '{a} {b}' uses a token that is not in model.vocab");
                // With a continuing-subword prefix the right part carries it, the merged token not.
                string merged = prefix != null && b.StartsWith(prefix, StringComparison.Ordinal) ? a + b[prefix.Length..] : a + b;
                if (!vocab.TryGetValue(merged, out int newId))
                    throw json.Error($"{where2} produces '{merged}', which is not in model.vocab");
                merges.TryAdd(Key(idA, idB), (rank, newId));
                rank++;
            }
        }

        int? unkId = null;
        if (json.OptString(model, "unk_token", where) is { } unk)
            unkId = vocab.TryGetValue(unk, out int u) ? u : throw json.Error($"model.unk_token '{unk}' is not in model.vocab");
        // dropout only matters for training; inference tokenizers leave it null and we ignore it.
        return new BpeModel(vocab, merges, unkId,
            json.Bool(model, "fuse_unk", where, false), json.Bool(model, "byte_fallback", where, false),
            json.Bool(model, "ignore_merges", where, false), prefix, suffix);
    }

    private static string? Affix(JsonElement model, string name, TokJson json)
    {
        string? affix = json.OptString(model, name, "model");
        if (affix?.Length > MaxAffixLength)
            throw json.Error($"model.{name} has {affix.Length} characters; the limit is {MaxAffixLength}");
        return affix;
    }

    private static (string, string) ParseMerge(JsonElement m, int index, TokJson json)
    {
        if (m.ValueKind == JsonValueKind.String)
        {
            var parts = m.GetString()!.Split(' ');
            if (parts.Length == 2)
                return (parts[0], parts[1]);
        }
        else if (m.ValueKind == JsonValueKind.Array && m.GetArrayLength() == 2
            && m[0].ValueKind == JsonValueKind.String && m[1].ValueKind == JsonValueKind.String)
        {
            return (m[0].GetString()!, m[1].GetString()!);
        }
        throw json.Error($"model.merges[{index}] must be \"a b\" or [\"a\", \"b\"], found {m}");
    }

    private static long Key(int a, int b) => ((long)a << 32) | (uint)b;

    /// <summary>Appends the ids of one pre-tokenized word.</summary>
    public void Tokenize(string word, List<int> output)
    {
        if (word.Length == 0)
            return;
        if (_ignoreMerges && _vocab.TryGetValue(word, out int whole))
        {
            output.Add(whole);
            return;
        }
        if (_cache.TryGetValue(word, out var cached))
        {
            output.AddRange(cached);
            return;
        }
        var ids = MergeWord(word);
        if (word.Length <= MaxCachedWordLength && _cache.Count < CacheCapacity)
            _cache.TryAdd(word, ids);
        output.AddRange(ids);
    }

    private int[] MergeWord(string word)
    {
        var symbols = new List<int>(word.Length);
        int? pendingUnk = null; // unknown characters are held back so fuse_unk can join a run of them
        for (int i = 0; i < word.Length;)
        {
            int len = char.IsHighSurrogate(word[i]) && i + 1 < word.Length && char.IsLowSurrogate(word[i + 1]) ? 2 : 1;
            bool first = i == 0, last = i + len == word.Length;
            if (LookupSymbol(word.AsSpan(i, len), first, last) is int id)
            {
                if (pendingUnk is int u)
                    symbols.Add(u);
                pendingUnk = null;
                symbols.Add(id);
            }
            else if (!(_byteFallback && TryAddBytes(word.AsSpan(i, len), first, last, symbols)) && _unkId is int unk)
            {
                // Rust quirk kept on purpose: a byte-fallback success does not flush a pending unk.
                if (pendingUnk is int u && !_fuseUnk)
                    symbols.Add(u);
                pendingUnk = unk;
            }
            i += len;
        }
        if (pendingUnk is int p)
            symbols.Add(p);
        return MergeAll(symbols);
    }

    private int? LookupSymbol(ReadOnlySpan<char> ch, bool first, bool last)
    {
        if ((first || _prefix == null) && (!last || _suffix == null))
            return _vocabBySpan.TryGetValue(ch, out int id) ? id : null;
        string s = Decorate(ch, first, last);
        return _vocab.TryGetValue(s, out int id2) ? id2 : null;
    }

    private string Decorate(ReadOnlySpan<char> ch, bool first, bool last)
        => (!first ? _prefix : null) + ch.ToString() + (last ? _suffix : null);

    private bool TryAddBytes(ReadOnlySpan<char> ch, bool first, bool last, List<int> symbols)
    {
        // The Rust code byte-encodes the decorated symbol (prefix/suffix included).
        byte[] bytes = Encoding.UTF8.GetBytes(Decorate(ch, first, last));
        foreach (byte b in bytes)
            if (_byteFallbackIds[b] < 0)
                return false;
        foreach (byte b in bytes)
            symbols.Add(_byteFallbackIds[b]);
        return true;
    }

    private int[] MergeAll(List<int> ids)
    {
        int n = ids.Count;
        if (n < 2)
            return ids.ToArray();
        var sym = ids.ToArray();
        var prev = new int[n];
        var next = new int[n];
        var alive = new bool[n];
        for (int i = 0; i < n; i++)
        {
            prev[i] = i - 1;
            next[i] = i + 1 < n ? i + 1 : -1;
            alive[i] = true;
        }
        // Priority: rank first, then leftmost position, as in the Rust BinaryHeap ordering.
        var queue = new PriorityQueue<(int Pos, int NewId), long>(n);
        for (int i = 0; i + 1 < n; i++)
            Enqueue(queue, i, sym[i], sym[i + 1]);

        while (queue.TryDequeue(out var top, out _))
        {
            int pos = top.Pos;
            if (!alive[pos] || next[pos] < 0)
                continue;
            int right = next[pos];
            // Skip stale entries: the pair at pos changed since this entry was queued.
            if (!_merges.TryGetValue(Key(sym[pos], sym[right]), out var m) || m.NewId != top.NewId)
                continue;
            sym[pos] = m.NewId;
            alive[right] = false;
            next[pos] = next[right];
            if (next[pos] >= 0)
                prev[next[pos]] = pos;
            if (prev[pos] >= 0)
                Enqueue(queue, prev[pos], sym[prev[pos]], sym[pos]);
            if (next[pos] >= 0)
                Enqueue(queue, pos, sym[pos], sym[next[pos]]);
        }

        var result = new List<int>(n);
        for (int i = 0; i >= 0; i = next[i])
            result.Add(sym[i]);
        return result.ToArray();
    }

    private void Enqueue(PriorityQueue<(int, int), long> queue, int pos, int a, int b)
    {
        if (_merges.TryGetValue(Key(a, b), out var m))
            queue.Enqueue((pos, m.NewId), ((long)m.Rank << 32) | (uint)pos);
    }
}
