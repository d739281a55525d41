using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;

namespace Daop.Tests.Load.Safetensors;

/// <summary>A tensor to write: dtype as the header spells it, shape and raw little-endian bytes.</summary>
sealed record StTensor(string Name, string DType, long[] Shape, byte[] Data)
{
    public static StTensor F32(string name, long[] shape, params float[] v) =>
        new(name, "F32", shape, MemoryMarshal.AsBytes(v.AsSpan()).ToArray());

    public static StTensor Bf16(string name, long[] shape, params ushort[] bits) =>
        new(name, "BF16", shape, MemoryMarshal.AsBytes(bits.AsSpan()).ToArray());

    public static StTensor F16(string name, long[] shape, params ushort[] bits) =>
        new(name, "F16", shape, MemoryMarshal.AsBytes(bits.AsSpan()).ToArray());

    public static StTensor I64(string name, long[] shape, params long[] v) =>
        new(name, "I64", shape, MemoryMarshal.AsBytes(v.AsSpan()).ToArray());
}

/// <summary>
/// A temporary folder for synthetic checkpoints, deleted on dispose, with writers for well-formed
/// files and for hand-crafted broken ones (raw header text, raw length prefix, raw bytes).
/// </summary>
sealed class StTempDir : IDisposable
{
    /// <summary>The folder.</summary>
    public string Dir { get; }

    public StTempDir()
    {
        Dir = Path.Combine(Path.GetTempPath(), "daop-st-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Dir);
    }

    /// <summary>Full path of <paramref name="name"/> inside the folder.</summary>
    public string PathOf(string name) => Path.Combine(Dir, name);

    /// <summary>Writes a well-formed file: tensors packed in order, offsets computed.</summary>
    public string Write(string name, IEnumerable<StTensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var (header, data) = Build(tensors, metadata);
        return WriteRaw(name, header, data);
    }

    /// <summary>Writes an arbitrary header text (UTF-8) with the correct length prefix, then <paramref name="data"/>.</summary>
    public string WriteRaw(string name, string header, byte[]? data = null) =>
        WriteRaw(name, Encoding.UTF8.GetBytes(header), data);

    /// <summary>Writes arbitrary header bytes; the length prefix is their length unless <paramref name="lengthPrefix"/> overrides it.</summary>
    public string WriteRaw(string name, byte[] header, byte[]? data = null, ulong? lengthPrefix = null)
    {
        var bytes = new byte[8 + header.Length + (data?.Length ?? 0)];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, lengthPrefix ?? (ulong)header.Length);
        header.CopyTo(bytes, 8);
        data?.CopyTo(bytes, 8 + header.Length);
        return WriteBytes(name, bytes);
    }

    /// <summary>Writes <paramref name="bytes"/> verbatim.</summary>
    public string WriteBytes(string name, byte[] bytes)
    {
        string p = PathOf(name);
        File.WriteAllBytes(p, bytes);
        return p;
    }

    /// <summary>Writes a text file (index json and the like).</summary>
    public string WriteText(string name, string text)
    {
        string p = PathOf(name);
        File.WriteAllText(p, text);
        return p;
    }

    /// <summary>The header JSON and packed data section for <paramref name="tensors"/>.</summary>
    public static (string Header, byte[] Data) Build(IEnumerable<StTensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms))
        {
            w.WriteStartObject();
            if (metadata != null)
            {
                w.WriteStartObject("__metadata__");
                foreach (var (k, v) in metadata) w.WriteString(k, v);
                w.WriteEndObject();
            }
            long offset = 0;
            var data = new MemoryStream();
            foreach (var t in tensors)
            {
                w.WriteStartObject(t.Name);
                w.WriteString("dtype", t.DType);
                w.WriteStartArray("shape");
                foreach (long d in t.Shape) w.WriteNumberValue(d);
                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(offset);
                w.WriteNumberValue(offset + t.Data.Length);
                w.WriteEndArray();
                w.WriteEndObject();
                data.Write(t.Data);
                offset += t.Data.Length;
            }
            w.WriteEndObject();
            w.Flush();
            return (Encoding.UTF8.GetString(ms.ToArray()), data.ToArray());
        }
    }

    public void Dispose()
    {
        // Best effort: a test that failed while a file was still mapped must not also fail on cleanup.
        try { Directory.Delete(Dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
