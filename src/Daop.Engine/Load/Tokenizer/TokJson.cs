using System.Text.Json;

namespace Daop.Engine.Load.Tokenizer;

/// <summary>
/// Typed access to tokenizer.json fields. Every failure becomes a <see cref="ModelLoadException"/>
/// whose message names the file and the JSON path of the field, so a broken tokenizer is easy to fix.
/// </summary>
/// <remarks>
/// The file is untrusted input, so what it can make Daop allocate or repeat is bounded: the file size, the number of
/// vocabulary entries, merges and added tokens (<see cref="MaxEntries"/>), and the number of components
/// (<see cref="MaxComponents"/>: a Sequence of thousands of regexes would be compiled once and run on every Encode).
/// </remarks>
internal readonly struct TokJson(string file)
{
    /// <summary>Largest tokenizer.json / tokenizer_config.json read (the biggest real ones are ~35 MB).</summary>
    public const long MaxFileBytes = 256L << 20;

    /// <summary>Most vocabulary entries, merges or added tokens (real vocabularies have at most ~260k).</summary>
    public const int MaxEntries = 1 << 22;

    /// <summary>Most normalizers, pre-tokenizers, decoders and post-processors in one file, Sequence items included.</summary>
    public const int MaxComponents = 256;

    private readonly Counter _components = new();

    /// <summary>File name used in error messages (not the full path: messages stay readable).</summary>
    public string File { get; } = file;

    public ModelLoadException Error(string message) => new($"{File}: {message}");

    /// <summary>Counts one more component at <paramref name="where"/>.</summary>
    public void CountComponent(string where)
    {
        if (++_components.Value > MaxComponents)
            throw Error($"{where}: more than {MaxComponents} normalizers, pre-tokenizers, decoders and post-processors in all");
    }

    /// <summary>Checks an entry count against <see cref="MaxEntries"/>.</summary>
    public void CheckEntries(int count, string where)
    {
        if (count > MaxEntries)
            throw Error($"{where} has more than {MaxEntries} entries");
    }

    public static JsonDocument Parse(string path)
    {
        string name = Path.GetFileName(path);
        if (!System.IO.File.Exists(path))
            throw new ModelLoadException($"{name}: file not found at '{path}'");
        // Read through the opened handle (hub snapshots are links), refusing files over the limit.
        return Parse(JsonText.SkipBom(ModelFiles.ReadAll(path, MaxFileBytes)), name);
    }

    /// <summary>Parses tokenizer JSON already in memory, named <paramref name="name"/> in messages.</summary>
    public static JsonDocument Parse(ReadOnlyMemory<byte> bytes, string name)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(bytes, new JsonDocumentOptions { AllowTrailingCommas = true });
        }
        catch (JsonException e)
        {
            throw new ModelLoadException($"{name}: invalid JSON ({e.Message})", e);
        }
        try
        {
            JsonText.CheckStrings(name, bytes.Span, doc.RootElement);
        }
        catch
        {
            doc.Dispose();
            throw;
        }
        return doc;
    }

    /// <summary>Largest token id accepted: far above any real vocabulary, low enough that id-indexed tables stay small.</summary>
    public const int MaxId = (1 << 24) - 1;

    private void RequireObject(JsonElement obj, string where)
    {
        if (obj.ValueKind != JsonValueKind.Object)
            throw Error($"{(where.Length == 0 ? "the top level" : where)} must be an object, found {obj.ValueKind}");
    }

    /// <summary>The object at <paramref name="name"/>, or null when absent or JSON null.</summary>
    public JsonElement? OptObject(JsonElement obj, string name, string where)
    {
        RequireObject(obj, where);
        if (!obj.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null)
            return null;
        if (v.ValueKind != JsonValueKind.Object)
            throw Error($"{Join(where, name)} must be an object, found {v.ValueKind}");
        return v;
    }

    public JsonElement Array(JsonElement obj, string name, string where)
    {
        RequireObject(obj, where);
        if (!obj.TryGetProperty(name, out var v) || v.ValueKind != JsonValueKind.Array)
            throw Error($"{Join(where, name)} must be an array");
        return v;
    }

    public string String(JsonElement obj, string name, string where)
        => OptString(obj, name, where) ?? throw Error($"{Join(where, name)} is missing");

    public string? OptString(JsonElement obj, string name, string where)
    {
        RequireObject(obj, where);
        if (!obj.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null)
            return null;
        if (v.ValueKind != JsonValueKind.String)
            throw Error($"{Join(where, name)} must be a string, found {v.ValueKind}");
        return v.GetString()!;
    }

    public bool Bool(JsonElement obj, string name, string where, bool defaultValue)
    {
        RequireObject(obj, where);
        if (!obj.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null)
            return defaultValue;
        return v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw Error($"{Join(where, name)} must be a boolean, found {v.ValueKind}"),
        };
    }

    public int Int(JsonElement obj, string name, string where, int defaultValue)
    {
        RequireObject(obj, where);
        if (!obj.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null)
            return defaultValue;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out int i))
            throw Error($"{Join(where, name)} must be an integer, found {v}");
        return i;
    }

    public int Id(JsonElement v, string where)
    {
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out int id) || id < 0)
            throw Error($"{where} must be a non-negative integer id, found {v}");
        if (id > MaxId)
            throw Error($"{where} is {id}: token ids above {MaxId} are not supported");
        return id;
    }

    /// <summary>The "type" discriminator of a component such as a normalizer or decoder.</summary>
    public string Type(JsonElement obj, string where)
    {
        if (obj.ValueKind != JsonValueKind.Object)
            throw Error($"{where} must be an object, found {obj.ValueKind}");
        return String(obj, "type", where);
    }

    /// <summary>Single-character setting such as Metaspace's "replacement".</summary>
    public string Char(JsonElement obj, string name, string where, string defaultValue)
    {
        string s = OptString(obj, name, where) ?? defaultValue;
        if (s.EnumerateRunes().Count() != 1)
            throw Error($"{Join(where, name)} must be a single character, found '{s}'");
        return s;
    }

    public ModelLoadException Unsupported(string kind, string type)
        => Error($"{kind} type '{type}' is not supported");

    // A class, so the copies of this struct that the loaders pass around share one count.
    private sealed class Counter
    {
        public int Value;
    }

    private static string Join(string where, string name) => where.Length == 0 ? name : $"{where}.{name}";
}
