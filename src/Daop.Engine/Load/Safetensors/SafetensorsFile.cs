using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using System.Text.Unicode;

namespace Daop.Engine.Load.Safetensors;

/// <summary>
/// One memory-mapped <c>.safetensors</c> file: an 8-byte little-endian header length, a JSON header
/// mapping tensor names to dtype, shape and [begin, end) offsets into the data section, then the data.
/// Everything in the header is validated on open; tensor bytes are never copied.
/// </summary>
public sealed unsafe class SafetensorsFile : IDisposable
{
    /// <summary>Largest header we accept (the reference implementation uses the same 100 MB cap).</summary>
    public const long MaxHeaderBytes = 100_000_000;

    readonly MappedFile _file;
    readonly long _dataStart;
    bool _disposed;

    /// <summary>Path the file was opened from.</summary>
    public string Path { get; }

    /// <summary>Tensors by name, in header order.</summary>
    public IReadOnlyDictionary<string, TensorEntry> Tensors { get; }

    /// <summary>The optional <c>__metadata__</c> string map.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    SafetensorsFile(string path, MappedFile file, long dataStart, Dictionary<string, TensorEntry> tensors,
        Dictionary<string, string> metadata)
    {
        Path = path; _file = file; _dataStart = dataStart;
        Tensors = tensors; Metadata = metadata;
    }

    /// <summary>Opens and validates <paramref name="path"/>; throws <see cref="ModelLoadException"/> naming the file on any defect.</summary>
    public static SafetensorsFile Open(string path) => ModelFiles.Open(path, OpenChecked);

    static SafetensorsFile OpenChecked(string path)
    {
        // The length of the opened file, not of a directory entry: hub snapshots are symbolic links into blobs/.
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        long fileLen = fs.Length;
        if (fileLen < 8)
            throw new ModelLoadException($"{path}: file is {fileLen} bytes, too short for the 8-byte safetensors header length");

        byte[] header;
        {
            Span<byte> lenBytes = stackalloc byte[8];
            fs.ReadExactly(lenBytes);
            ulong headerLen = BinaryPrimitives.ReadUInt64LittleEndian(lenBytes);
            if (headerLen > MaxHeaderBytes)
                throw new ModelLoadException($"{path}: header length {headerLen} exceeds the {MaxHeaderBytes}-byte limit");
            if (8 + (long)headerLen > fileLen)
                throw new ModelLoadException($"{path}: header length {headerLen} runs past the end of the {fileLen}-byte file");
            header = new byte[headerLen];
            fs.ReadExactly(header);
        }

        long dataStart = 8 + header.LongLength;
        long dataLen = fileLen - dataStart;
        var (tensors, metadata) = ParseHeader(path, header, dataLen);

        return new SafetensorsFile(path, MappedFile.Map(fs, fileLen), dataStart, tensors, metadata);
    }

    static (Dictionary<string, TensorEntry>, Dictionary<string, string>) ParseHeader(string path, byte[] header, long dataLen)
    {
        // JsonDocument does not validate UTF-8 inside strings; it only fails later, in GetString or
        // in the name of a property, with InvalidOperationException. Check up front instead.
        int bad = FirstInvalidUtf8(header);
        if (bad >= 0)
            throw new ModelLoadException($"{path}: header is not valid UTF-8 (byte 0x{header[bad]:X2} at header offset {bad})");

        JsonDocument doc;
        try { doc = JsonDocument.Parse(header, new JsonDocumentOptions { MaxDepth = MaxJsonDepth }); }
        catch (JsonException e) { throw new ModelLoadException($"{path}: header is not valid JSON ({e.Message})"); }

        using (doc)
        {
            long lone = FirstUndecodableString(header, MaxJsonDepth);
            if (lone >= 0)
                throw new ModelLoadException($"{path}: header string at offset {lone} escapes half a UTF-16 surrogate pair");
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new ModelLoadException($"{path}: header must be a JSON object, found {doc.RootElement.ValueKind}");
            var tensors = new Dictionary<string, TensorEntry>(StringComparer.Ordinal);
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            bool sawMetadata = false;
            // JsonDocument keeps duplicate properties (and TryGetProperty would pick one silently), so
            // every object we read is checked for repeated names.
            foreach (var prop in doc.RootElement.EnumerateObject())
            {
                if (prop.Name == "__metadata__")
                {
                    if (sawMetadata) throw new ModelLoadException($"{path}: __metadata__ appears twice in the header");
                    sawMetadata = true;
                    if (prop.Value.ValueKind != JsonValueKind.Object)
                        throw new ModelLoadException($"{path}: __metadata__ must be an object of strings, found {prop.Value.ValueKind}");
                    foreach (var m in prop.Value.EnumerateObject())
                    {
                        if (m.Value.ValueKind != JsonValueKind.String)
                            throw new ModelLoadException($"{path}: __metadata__.{m.Name} must be a string, found {m.Value.ValueKind}");
                        if (!metadata.TryAdd(m.Name, m.Value.GetString()!))
                            throw new ModelLoadException($"{path}: __metadata__ key '{m.Name}' appears twice");
                    }
                    continue;
                }
                if (tensors.ContainsKey(prop.Name))
                    throw new ModelLoadException($"{path}: tensor '{prop.Name}' appears twice in the header");
                tensors[prop.Name] = ParseEntry(path, prop.Name, prop.Value, dataLen);
            }
            CheckNoOverlap(path, tensors.Values);
            return (tensors, metadata);
        }
    }

    // A real header nests three deep; the limit only keeps hostile input cheap.
    const int MaxJsonDepth = 16;

    /// <summary>
    /// Offset of the first string or property name whose escapes do not decode (a "\uD800" without its
    /// pair), or -1. Valid UTF-8 can still hold such escapes, and JsonDocument only fails on them when
    /// the string is read, with InvalidOperationException; call this after a successful parse.
    /// </summary>
    internal static long FirstUndecodableString(ReadOnlySpan<byte> json, int maxDepth)
    {
        var r = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = maxDepth });
        while (r.Read())
        {
            // Unescaped strings are raw UTF-8, already validated; only escapes can go wrong.
            if (r.TokenType is not (JsonTokenType.String or JsonTokenType.PropertyName) || !r.ValueIsEscaped) continue;
            try { r.GetString(); }
            catch (InvalidOperationException) { return r.TokenStartIndex; }
        }
        return -1;
    }

    /// <summary>Index of the first byte that does not belong to well-formed UTF-8, or -1.</summary>
    internal static int FirstInvalidUtf8(ReadOnlySpan<byte> s)
    {
        if (Utf8.IsValid(s)) return -1; // vectorised fast path; the slow scan runs only on bad input
        for (int i = 0; i < s.Length;)
        {
            if (Rune.DecodeFromUtf8(s[i..], out _, out int n) != OperationStatus.Done) return i;
            i += n;
        }
        return -1;
    }

    static TensorEntry ParseEntry(string path, string name, JsonElement e, long dataLen)
    {
        string where = $"{path}: tensor '{name}'";
        if (e.ValueKind != JsonValueKind.Object) throw new ModelLoadException($"{where}: entry must be an object, found {e.ValueKind}");
        JsonElement? dtField = null, shField = null, offField = null;
        foreach (var f in e.EnumerateObject())
        {
            // Unknown fields are ignored (the format may grow), but a repeated known one is ambiguous.
            bool repeated = f.Name switch
            {
                "dtype" => Take(ref dtField, f.Value),
                "shape" => Take(ref shField, f.Value),
                "data_offsets" => Take(ref offField, f.Value),
                _ => false,
            };
            if (repeated) throw new ModelLoadException($"{where}: field '{f.Name}' appears twice");
        }

        if (dtField is not { } dt) throw new ModelLoadException($"{where}: missing string field 'dtype'");
        if (dt.ValueKind != JsonValueKind.String)
            throw new ModelLoadException($"{where}: field 'dtype' must be a string, found {dt.GetRawText()}");
        string dtypeName = dt.GetString()!;
        if (!TensorDTypes.TryParse(dtypeName, out var dtype))
            throw new ModelLoadException($"{where}: unknown dtype '{dtypeName}'");

        if (shField is not { } sh) throw new ModelLoadException($"{where}: missing array field 'shape'");
        if (sh.ValueKind != JsonValueKind.Array)
            throw new ModelLoadException($"{where}: field 'shape' must be an array, found {sh.GetRawText()}");
        var shape = new long[sh.GetArrayLength()];
        long numel = 1;
        int i = 0;
        foreach (var d in sh.EnumerateArray())
        {
            if (!TryGetCount(d, out long v))
                throw new ModelLoadException($"{where}: shape[{i}] must be a non-negative integer, found {d.GetRawText()}");
            shape[i++] = v;
            try { numel = checked(numel * v); }
            catch (OverflowException) { throw new ModelLoadException($"{where}: shape {sh.GetRawText()} overflows a 64-bit element count"); }
        }

        if (offField is not { } off) throw new ModelLoadException($"{where}: missing field 'data_offsets' (an array [begin, end])");
        if (off.ValueKind != JsonValueKind.Array || off.GetArrayLength() != 2)
            throw new ModelLoadException($"{where}: 'data_offsets' must be an array [begin, end], found {off.GetRawText()}");
        long begin = ReadOffset(where, off[0], "begin"), end = ReadOffset(where, off[1], "end");
        if (end < begin) throw new ModelLoadException($"{where}: data_offsets end {end} is before begin {begin}");
        long expected;
        try { expected = checked(numel * TensorDTypes.SizeOf(dtype)); }
        catch (OverflowException) { throw new ModelLoadException($"{where}: byte size of shape {sh.GetRawText()} of {dtypeName} overflows"); }
        if (end - begin != expected)
            throw new ModelLoadException(
                $"{where}: data_offsets [{begin}, {end}) hold {end - begin} bytes but shape [{string.Join(", ", shape)}] of {dtypeName} needs {expected}");
        if (end > dataLen)
            throw new ModelLoadException($"{where}: data_offsets end {end} is past the {dataLen}-byte data section");
        return new TensorEntry(name, dtype, shape, begin, end - begin);
    }

    /// <summary>Stores <paramref name="value"/> in an empty slot; true if the slot was already taken.</summary>
    static bool Take(ref JsonElement? slot, JsonElement value)
    {
        if (slot != null) return true;
        slot = value;
        return false;
    }

    static long ReadOffset(string where, JsonElement v, string which)
    {
        if (!TryGetCount(v, out long x))
            throw new ModelLoadException($"{where}: data_offsets {which} must be a non-negative integer, found {v.GetRawText()}");
        return x;
    }

    /// <summary>
    /// A JSON number written as plain decimal digits that fits a long. Like the reference reader
    /// (unsigned integers through serde), this rejects "-0", "3.0" and "1e3"; TryGetInt64 alone
    /// would take "-0" as 0, and the sign check after it would not see the minus.
    /// </summary>
    static bool TryGetCount(JsonElement v, out long x)
    {
        x = 0;
        if (v.ValueKind != JsonValueKind.Number) return false;
        foreach (char c in v.GetRawText())
            if (c is < '0' or > '9') return false;
        return v.TryGetInt64(out x);
    }

    static void CheckNoOverlap(string path, IEnumerable<TensorEntry> entries)
    {
        var sorted = entries.Where(t => t.ByteLength > 0).OrderBy(t => t.Offset).ToArray();
        for (int i = 1; i < sorted.Length; i++)
            if (sorted[i].Offset < sorted[i - 1].Offset + sorted[i - 1].ByteLength)
                throw new ModelLoadException(
                    $"{path}: tensors '{sorted[i - 1].Name}' and '{sorted[i].Name}' overlap in the data section");
    }

    /// <summary>Pointer to the first byte of <paramref name="t"/> (valid until this file is disposed).</summary>
    public byte* DataPointer(TensorEntry t)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return _file.Base + _dataStart + t.Offset;
    }

    /// <summary>The raw bytes of <paramref name="t"/>; for tensors under 2 GiB.</summary>
    public ReadOnlySpan<byte> Bytes(TensorEntry t) => MappedFile.Span(Path, t.Name, DataPointer(t), t.ByteLength);

    /// <inheritdoc />
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _file.Dispose();
    }
}
