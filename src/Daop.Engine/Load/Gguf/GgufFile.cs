namespace Daop.Engine.Load.Gguf;

/// <summary>
/// One memory-mapped GGUF file (llama.cpp's format, versions 2 and 3): the magic "GGUF", a version, tensor and metadata
/// counts, the metadata key/value pairs, one info record per tensor (name, dimensions, ggml type, offset), then the
/// tensor data from an aligned start. Everything in the header is validated on open (see <see cref="GgufReader"/>);
/// tensor bytes are never copied.
/// </summary>
public sealed unsafe class GgufFile : IDisposable
{
    /// <summary>Most tensors a file may declare (real ones hold at most a few thousand).</summary>
    public const long MaxTensors = 1 << 20;
    /// <summary>Most metadata pairs a file may declare (real ones hold a few dozen).</summary>
    public const long MaxKeyValues = 1 << 20;
    /// <summary>Longest key or tensor name, in bytes (ggml itself allows 63-byte tensor names).</summary>
    public const int MaxNameBytes = 1024;
    /// <summary>Longest string value, in bytes (chat templates and embedded tokenizer.json files are the long ones).</summary>
    public const long MaxStringBytes = 256L << 20;
    /// <summary>Most elements in one metadata array (vocabularies hold up to ~260k tokens).</summary>
    public const long MaxArrayLength = 1 << 24;
    /// <summary>Largest header (magic to the end of the tensor infos).</summary>
    public const long MaxHeaderBytes = 1L << 30;
    /// <summary>Largest <c>general.alignment</c>.</summary>
    public const uint MaxAlignment = 1 << 20;
    /// <summary>The alignment of tensor data when the file does not set <c>general.alignment</c>.</summary>
    public const uint DefaultAlignment = 32;
    /// <summary>Most dimensions of a tensor (GGML_MAX_DIMS).</summary>
    public const int MaxDims = 4;

    readonly MappedFile _file;
    bool _disposed;

    GgufFile(string path, MappedFile file, long length, GgufReader.Header h)
    {
        Path = path; _file = file; Length = length;
        Version = h.Version; Alignment = h.Alignment; DataOffset = h.DataOffset;
        Metadata = h.Metadata; Keys = h.Keys; TensorList = h.Tensors;
        Tensors = h.Tensors.ToDictionary(t => t.Name, StringComparer.Ordinal);
    }

    /// <summary>Path the file was opened from.</summary>
    public string Path { get; }
    /// <summary>Bytes of the file.</summary>
    public long Length { get; }
    /// <summary>Format version (2 or 3).</summary>
    public uint Version { get; }
    /// <summary>Alignment of the data section and of every tensor's offset in it.</summary>
    public uint Alignment { get; }
    /// <summary>First byte of the data section.</summary>
    public long DataOffset { get; }
    /// <summary>Metadata by key.</summary>
    public IReadOnlyDictionary<string, GgufValue> Metadata { get; }
    /// <summary>Metadata keys in file order.</summary>
    public IReadOnlyList<string> Keys { get; }
    /// <summary>Tensors in file order.</summary>
    public IReadOnlyList<GgufTensorInfo> TensorList { get; }
    /// <summary>Tensors by name.</summary>
    public IReadOnlyDictionary<string, GgufTensorInfo> Tensors { get; }

    /// <summary>Opens and validates <paramref name="path"/>; throws <see cref="ModelLoadException"/> naming the file (and key or tensor) on any defect.</summary>
    public static GgufFile Open(string path) => ModelFiles.Open(path, OpenChecked);

    static GgufFile OpenChecked(string path)
    {
        // The length of the opened file, not of a directory entry: hub snapshots are symbolic links into blobs/.
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        long length = fs.Length;
        if (length < GgufReader.MinimumBytes)
            throw new ModelLoadException($"{path}: file is {length} bytes, too short for a GGUF header ({GgufReader.MinimumBytes} bytes)");
        var file = MappedFile.Map(fs, length);
        try { return new GgufFile(path, file, length, GgufReader.Read(path, file.Base, length)); }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>Pointer to the first byte of <paramref name="t"/> (valid until this file is disposed).</summary>
    public byte* DataPointer(GgufTensorInfo t)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return _file.Base + t.Offset;
    }

    /// <summary>The raw bytes of <paramref name="t"/>; for tensors under 2 GiB.</summary>
    public ReadOnlySpan<byte> Bytes(GgufTensorInfo t) => MappedFile.Span(Path, t.Name, DataPointer(t), t.ByteLength);

    /// <inheritdoc />
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _file.Dispose();
    }
}
