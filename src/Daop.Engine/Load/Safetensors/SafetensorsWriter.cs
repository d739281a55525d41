using System.Buffers.Binary;
using System.Text;
using System.Text.Json;

namespace Daop.Engine.Load.Safetensors;

/// <summary>One tensor to write: its header entry and a callback that writes exactly <see cref="ByteLength"/> bytes.</summary>
/// <param name="Name">Tensor name.</param>
/// <param name="DType">safetensors dtype.</param>
/// <param name="Shape">Shape; the product times the dtype's size must be <paramref name="ByteLength"/>.</param>
/// <param name="ByteLength">Bytes of data.</param>
/// <param name="WriteData">Writes the tensor's bytes to the stream.</param>
public sealed record SafetensorsTensor(string Name, TensorDType DType, long[] Shape, long ByteLength, Action<Stream> WriteData);

/// <summary>
/// Writes a <c>.safetensors</c> file as the format defines it (and as <see cref="SafetensorsFile"/> reads it): an 8-byte
/// little-endian header length, the JSON header padded with spaces to a multiple of 8 bytes, then every tensor's bytes
/// packed in header order. Tensors are placed largest element first, so each starts aligned to its element size.
/// </summary>
public static class SafetensorsWriter
{
    /// <summary>Writes <paramref name="tensors"/> to <paramref name="path"/> (through a temporary file renamed at the end).</summary>
    /// <exception cref="InvalidOperationException">A callback wrote a different number of bytes than its tensor declares.</exception>
    public static void Write(string path, IReadOnlyList<SafetensorsTensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        var ordered = tensors.Select((t, i) => (t, i)).OrderByDescending(x => TensorDTypes.SizeOf(x.t.DType)).ThenBy(x => x.i)
            .Select(x => x.t).ToArray();
        foreach (var t in ordered)
        {
            long elements = t.Shape.Aggregate(1L, (a, b) => checked(a * b));
            if (elements * TensorDTypes.SizeOf(t.DType) != t.ByteLength)
                throw new ArgumentException($"tensor '{t.Name}': shape [{string.Join(", ", t.Shape)}] of {t.DType} is not {t.ByteLength} bytes", nameof(tensors));
        }
        byte[] header = Header(ordered, metadata);
        string partial = path + ".partial";
        try
        {
            using (var fs = new FileStream(partial, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
            {
                Span<byte> length = stackalloc byte[8];
                BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)header.Length);
                fs.Write(length);
                fs.Write(header);
                foreach (var t in ordered)
                {
                    long start = fs.Position;
                    t.WriteData(fs);
                    if (fs.Position - start != t.ByteLength)
                        throw new InvalidOperationException($"tensor '{t.Name}' wrote {fs.Position - start} bytes, its header entry says {t.ByteLength}");
                }
            }
            File.Move(partial, path, overwrite: true);
        }
        catch
        {
            File.Delete(partial);
            throw;
        }
    }

    // {"__metadata__": {...}, "name": {"dtype", "shape", "data_offsets"}, ...} padded with spaces to a multiple of 8.
    static byte[] Header(IReadOnlyList<SafetensorsTensor> tensors, IReadOnlyDictionary<string, string>? metadata)
    {
        var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                w.WriteStartObject("__metadata__");
                foreach (var (k, v) in metadata) w.WriteString(k, v);
                w.WriteEndObject();
            }
            long offset = 0;
            foreach (var t in tensors)
            {
                w.WriteStartObject(t.Name);
                w.WriteString("dtype", t.DType.ToString());
                w.WriteStartArray("shape");
                foreach (long d in t.Shape) w.WriteNumberValue(d);
                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(offset);
                w.WriteNumberValue(offset + t.ByteLength);
                w.WriteEndArray();
                w.WriteEndObject();
                offset += t.ByteLength;
            }
            w.WriteEndObject();
        }
        int pad = (int)((8 - buffer.Length % 8) % 8);
        buffer.Write(Encoding.ASCII.GetBytes(new string(' ', pad)));
        return buffer.ToArray();
    }

    /// <summary>A callback writing <paramref name="bytes"/> bytes from native memory at <paramref name="data"/>, in pieces of at most 16 MiB.</summary>
    public static unsafe Action<Stream> FromMemory(byte* data, long bytes)
    {
        nint at = (nint)data;
        return s =>
        {
            for (long done = 0; done < bytes;)
            {
                int n = (int)Math.Min(16L << 20, bytes - done);
                s.Write(new ReadOnlySpan<byte>((byte*)at + done, n));
                done += n;
            }
        };
    }
}
