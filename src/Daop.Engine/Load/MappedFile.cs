using System.IO.MemoryMappedFiles;

namespace Daop.Engine.Load;

/// <summary>
/// A whole weights file mapped read-only, with its view's pointer held until disposed: what <see cref="Gguf.GgufFile"/>
/// and <see cref="Safetensors.SafetensorsFile"/> share (they differ only in the header they parse from it).
/// </summary>
internal sealed unsafe class MappedFile : IDisposable
{
    readonly MemoryMappedFile _map;
    readonly MemoryMappedViewAccessor _view;
    bool _disposed;

    MappedFile(MemoryMappedFile map, MemoryMappedViewAccessor view, byte* basePtr)
    {
        _map = map; _view = view; Base = basePtr;
    }

    /// <summary>The file's first byte (valid until disposed).</summary>
    public byte* Base { get; }

    /// <summary>Maps the first <paramref name="length"/> bytes of <paramref name="fs"/> (left open: the caller owns it).</summary>
    public static MappedFile Map(FileStream fs, long length)
    {
        var map = MemoryMappedFile.CreateFromFile(fs, null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: true);
        MemoryMappedViewAccessor? view = null;
        bool acquired = false;
        try
        {
            view = map.CreateViewAccessor(0, length, MemoryMappedFileAccess.Read);
            byte* p = null;
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
            acquired = true;
            return new MappedFile(map, view, p + view.PointerOffset);
        }
        catch
        {
            if (acquired) view!.SafeMemoryMappedViewHandle.ReleasePointer();
            view?.Dispose();
            map.Dispose();
            throw;
        }
    }

    /// <summary>
    /// <paramref name="byteLength"/> bytes at <paramref name="p"/> as a span; throws <see cref="ModelLoadException"/> naming
    /// the file and tensor when they are 2 GiB or more (a span's limit).
    /// </summary>
    public static ReadOnlySpan<byte> Span(string path, string tensor, byte* p, long byteLength)
    {
        if (byteLength > int.MaxValue)
            throw new ModelLoadException($"{path}: tensor '{tensor}' is {byteLength} bytes, too large for a span view");
        return new ReadOnlySpan<byte>(p, (int)byteLength);
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
