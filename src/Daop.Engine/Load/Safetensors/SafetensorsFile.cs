using System.IO.MemoryMappedFiles;
using System.Text.Json;

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

    readonly MemoryMappedFile _map;
    readonly MemoryMappedViewAccessor _view;
    readonly byte* _base;
    readonly long _dataStart;
    bool _disposed;

    /// <summary>Path the file was opened from.</summary>
    public string Path { get; }

    /// <summary>Tensors by name, in header order.</summary>
    public IReadOnlyDictionary<string, TensorEntry> Tensors { get; }

    /// <summary>The optional <c>__metadata__</c> string map.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    SafetensorsFile(string path, MemoryMappedFile map, MemoryMappedViewAccessor view, byte* basePtr,
        long dataStart, Dictionary<string, TensorEntry> tensors, Dictionary<string, string> metadata)
    {
        Path = path; _map = map; _view = view; _base = basePtr; _dataStart = dataStart;
        Tensors = tensors; Metadata = metadata;
    }

    /// <summary>Opens and validates <paramref name="path"/>; throws <see cref="ModelLoadException"/> naming the file on any defect.</summary>
    public static SafetensorsFile Open(string path)
    {
        if (!File.Exists(path)) throw new ModelLoadException($"{path}: file not found");
        long fileLen = new FileInfo(path).Length;
        if (fileLen < 8)
            throw new ModelLoadException($"{path}: file is {fileLen} bytes, too short for the 8-byte safetensors header length");

        byte[] header;
        using (var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read))
        {
            Span<byte> lenBytes = stackalloc byte[8];
            fs.ReadExactly(lenBytes);
            ulong headerLen = BitConverter.ToUInt64(lenBytes);
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

        var map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        var view = map.CreateViewAccessor(0, fileLen, MemoryMappedFileAccess.Read);
        byte* p = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
        p += view.PointerOffset;
        return new SafetensorsFile(path, map, view, p, dataStart, tensors, metadata);
    }

    static (Dictionary<string, TensorEntry>, Dictionary<string, string>) ParseHeader(string path, byte[] header, long dataLen)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(header, new JsonDocumentOptions { MaxDepth = 16 }); }
        catch (JsonException e) { throw new ModelLoadException($"{path}: header is not valid JSON ({e.Message})"); }

        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new ModelLoadException($"{path}: header must be a JSON object, found {doc.RootElement.ValueKind}");
            var tensors = new Dictionary<string, TensorEntry>(StringComparer.Ordinal);
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var prop in doc.RootElement.EnumerateObject())
            {
                if (prop.Name == "__metadata__")
                {
                    if (prop.Value.ValueKind != JsonValueKind.Object)
                        throw new ModelLoadException($"{path}: __metadata__ must be an object of strings");
                    foreach (var m in prop.Value.EnumerateObject())
                    {
                        if (m.Value.ValueKind != JsonValueKind.String)
                            throw new ModelLoadException($"{path}: __metadata__.{m.Name} must be a string");
                        metadata[m.Name] = m.Value.GetString()!;
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

    static TensorEntry ParseEntry(string path, string name, JsonElement e, long dataLen)
    {
        string where = $"{path}: tensor '{name}'";
        if (e.ValueKind != JsonValueKind.Object) throw new ModelLoadException($"{where}: entry must be an object");
        if (!e.TryGetProperty("dtype", out var dt) || dt.ValueKind != JsonValueKind.String)
            throw new ModelLoadException($"{where}: missing string field 'dtype'");
        string dtypeName = dt.GetString()!;
        if (!TensorDTypes.TryParse(dtypeName, out var dtype))
            throw new ModelLoadException($"{where}: unknown dtype '{dtypeName}'");
        if (!e.TryGetProperty("shape", out var sh) || sh.ValueKind != JsonValueKind.Array)
            throw new ModelLoadException($"{where}: missing array field 'shape'");
        var shape = new long[sh.GetArrayLength()];
        long numel = 1;
        int i = 0;
        foreach (var d in sh.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out long v) || v < 0)
                throw new ModelLoadException($"{where}: shape[{i}] must be a non-negative integer, found {d.GetRawText()}");
            shape[i++] = v;
            try { numel = checked(numel * v); }
            catch (OverflowException) { throw new ModelLoadException($"{where}: shape [{string.Join(", ", shape)}] overflows"); }
        }
        if (!e.TryGetProperty("data_offsets", out var off) || off.ValueKind != JsonValueKind.Array || off.GetArrayLength() != 2)
            throw new ModelLoadException($"{where}: 'data_offsets' must be an array [begin, end]");
        long begin = ReadOffset(where, off[0], "begin"), end = ReadOffset(where, off[1], "end");
        if (end < begin) throw new ModelLoadException($"{where}: data_offsets end {end} is before begin {begin}");
        long expected;
        try { expected = checked(numel * TensorDTypes.SizeOf(dtype)); }
        catch (OverflowException) { throw new ModelLoadException($"{where}: byte size of shape overflows"); }
        if (end - begin != expected)
            throw new ModelLoadException(
                $"{where}: data_offsets [{begin}, {end}) hold {end - begin} bytes but shape [{string.Join(", ", shape)}] of {dtypeName} needs {expected}");
        if (end > dataLen)
            throw new ModelLoadException($"{where}: data_offsets end {end} is past the {dataLen}-byte data section");
        return new TensorEntry(name, dtype, shape, begin, end - begin);
    }

    static long ReadOffset(string where, JsonElement v, string which)
    {
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt64(out long x) || x < 0)
            throw new ModelLoadException($"{where}: data_offsets {which} must be a non-negative integer, found {v.GetRawText()}");
        return x;
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
        return _base + _dataStart + t.Offset;
    }

    /// <summary>The raw bytes of <paramref name="t"/>; for tensors under 2 GiB.</summary>
    public ReadOnlySpan<byte> Bytes(TensorEntry t)
    {
        if (t.ByteLength > int.MaxValue)
            throw new ModelLoadException($"{Path}: tensor '{t.Name}' is {t.ByteLength} bytes, too large for a span view");
        return new ReadOnlySpan<byte>(DataPointer(t), (int)t.ByteLength);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _map.Dispose();
    }
}
