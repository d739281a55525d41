using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using System.IO.Compression;
using System.Text;
using System.Text.RegularExpressions;

namespace Daop.Kernels.Gpu;

/// <summary>
/// The kernels of a build compiled to PTX, as read from a pack: the PTX target they were compiled for and each kernel's
/// <see cref="PtxImage"/> by catalog key.
/// </summary>
/// <param name="Target">The PTX target, e.g. <c>sm_80 ptx7.8</c> (what <see cref="PtxPack.Write"/> was given).</param>
/// <param name="BuildId">Identifies the build that wrote the pack (the writer's choice; kept for diagnostics).</param>
/// <param name="Images">Every kernel's image by key (ordinal).</param>
public sealed record PtxPackContents(string Target, string BuildId, IReadOnlyDictionary<string, PtxImage> Images);

/// <summary>
/// A compact binary file of precompiled kernels (<see cref="PtxImage"/>s), Brotli-compressed. Layout (little-endian,
/// strings as a 7-bit-encoded byte length and UTF-8): magic <c>DAOPPTX\0</c>, format version (int32), the body's
/// uncompressed length (int64), then the body Brotli-compressed: target, build id, image count (int32), and per image its
/// key, entry name, parameter count (int32), each parameter size (int32), and its PTX. Reading checks every count and
/// length and that the compressed stream ends exactly where the file does, so a truncated or corrupt pack fails with
/// <see cref="InvalidDataException"/> instead of producing a half-read kernel.
/// </summary>
public static partial class PtxPack
{
    /// <summary>The 8 bytes every pack starts with.</summary>
    static ReadOnlySpan<byte> Magic => "DAOPPTX\0"u8;

    /// <summary>The format version this code writes and reads.</summary>
    public const int FormatVersion = 1;

    const int HeaderBytes = 20;
    // Bounds well above any real pack, so a corrupt count fails here instead of allocating gigabytes.
    const int MaxImages = 100_000, MaxParameters = 4096, MaxStringBytes = 64 << 20, MaxBodyBytes = 1 << 30;

    /// <summary>
    /// Writes <paramref name="images"/> compiled for <paramref name="target"/> to <paramref name="output"/>;
    /// <paramref name="buildId"/> identifies the build (empty when the writer has none). Keys must be distinct.
    /// </summary>
    public static void Write(Stream output, string target, IReadOnlyList<PtxImage> images, string buildId = "")
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(buildId);
        var keys = new HashSet<string>(StringComparer.Ordinal);
        foreach (var image in images)
        {
            ArgumentNullException.ThrowIfNull(image);
            if (!keys.Add(image.Key)) throw new ArgumentException($"PTX pack: kernel key '{image.Key}' appears twice.", nameof(images));
            if (image.ParameterSizes.Any(s => s <= 0)) throw new ArgumentException($"PTX pack: kernel '{image.Key}' has a parameter size <= 0.", nameof(images));
        }

        var body = new MemoryStream();
        using (var w = new BinaryWriter(body, new UTF8Encoding(false), leaveOpen: true))
        {
            w.Write(target);
            w.Write(buildId);
            w.Write(images.Count);
            foreach (var image in images)
            {
                w.Write(image.Key);
                w.Write(image.EntryName);
                w.Write(image.ParameterSizes.Length);
                foreach (int size in image.ParameterSizes) w.Write(size);
                w.Write(image.Ptx);
            }
        }
        if (body.Length > MaxBodyBytes) throw new ArgumentException($"PTX pack: {body.Length} bytes of kernels, more than a pack holds ({MaxBodyBytes}).", nameof(images));

        Span<byte> header = stackalloc byte[HeaderBytes];
        Magic.CopyTo(header);
        BinaryPrimitives.WriteInt32LittleEndian(header[8..], FormatVersion);
        BinaryPrimitives.WriteInt64LittleEndian(header[12..], body.Length);
        output.Write(header);
        // Quality 6: 5.5 MB of PTX to about 850 KB in under a second; 11 saves 300 KB more for 15 s of build.
        var compressed = new byte[BrotliEncoder.GetMaxCompressedLength((int)body.Length)];
        if (!BrotliEncoder.TryCompress(body.GetBuffer().AsSpan(0, (int)body.Length), compressed, out int written, quality: 6, window: 22))
            throw new InvalidOperationException("PTX pack: Brotli compression failed.");
        output.Write(compressed, 0, written);
    }

    /// <summary>
    /// Reads a pack that <see cref="Write"/> wrote. Throws <see cref="InvalidDataException"/> naming what is wrong
    /// when <paramref name="input"/> is not a pack, has another format version, or is truncated or corrupt.
    /// </summary>
    public static PtxPackContents Read(Stream input)
    {
        ArgumentNullException.ThrowIfNull(input);
        Span<byte> header = stackalloc byte[HeaderBytes];
        int got = input.ReadAtLeast(header, header.Length, throwOnEndOfStream: false);
        if (got >= 8 && !header[..8].SequenceEqual(Magic) || got < 8 && !header[..got].SequenceEqual(Magic[..got]))
            throw new InvalidDataException("PTX pack: not a PTX pack (the magic bytes are not 'DAOPPTX').");
        if (got < header.Length) throw new InvalidDataException($"PTX pack: truncated ({got} bytes, shorter than its {HeaderBytes}-byte header).");
        int version = BinaryPrimitives.ReadInt32LittleEndian(header[8..]);
        if (version != FormatVersion) throw new InvalidDataException($"PTX pack: format version {version}, this build reads version {FormatVersion}.");
        long length = BinaryPrimitives.ReadInt64LittleEndian(header[12..]);
        if (length < 0 || length > MaxBodyBytes) throw new InvalidDataException($"PTX pack: body length {length} (corrupt pack).");

        var source = new MemoryStream();
        input.CopyTo(source);
        var body = new byte[length];
        using (var decoder = new BrotliDecoder())
        {
            var status = decoder.Decompress(source.GetBuffer().AsSpan(0, (int)source.Length), body, out int consumed, out int written);
            // Done only once the compressed stream's last block is read: a cut file ends in NeedMoreData.
            if (status == OperationStatus.NeedMoreData) throw new InvalidDataException("PTX pack: truncated (the compressed data ends early).");
            if (status == OperationStatus.DestinationTooSmall) throw new InvalidDataException($"PTX pack: corrupt (the data is longer than the {length} bytes its header states).");
            if (status != OperationStatus.Done) throw new InvalidDataException("PTX pack: corrupt compressed data.");
            if (written != length) throw new InvalidDataException($"PTX pack: corrupt ({written} bytes of data, its header states {length}).");
            if (consumed != source.Length) throw new InvalidDataException($"PTX pack: {source.Length - consumed} bytes after the compressed data.");
        }

        try
        {
            using var r = new BinaryReader(new MemoryStream(body, writable: false));
            string target = ReadString(r, "target");
            string buildId = ReadString(r, "build id");
            int count = ReadCount(r, "image count", MaxImages);
            var images = new Dictionary<string, PtxImage>(count, StringComparer.Ordinal);
            for (int i = 0; i < count; i++)
            {
                string key = ReadString(r, $"key of image {i}");
                string entry = ReadString(r, $"entry name of '{key}'");
                int parameters = ReadCount(r, $"parameter count of '{key}'", MaxParameters);
                var sizes = new int[parameters];
                for (int p = 0; p < parameters; p++)
                {
                    sizes[p] = r.ReadInt32();
                    if (sizes[p] <= 0 || sizes[p] > MaxStringBytes) throw new InvalidDataException($"PTX pack: kernel '{key}' parameter {p} has size {sizes[p]}.");
                }
                string ptx = ReadString(r, $"PTX of '{key}'");
                if (!images.TryAdd(key, new PtxImage(key, entry, sizes, ptx))) throw new InvalidDataException($"PTX pack: kernel key '{key}' appears twice.");
            }
            // Anything after the last image means the pack is not what its counts say.
            if (r.BaseStream.Position != length) throw new InvalidDataException("PTX pack: data after the last kernel image.");
            return new PtxPackContents(target, buildId, images);
        }
        catch (EndOfStreamException e) { throw new InvalidDataException("PTX pack: truncated (it ends inside its data).", e); }
        catch (FormatException e) { throw new InvalidDataException($"PTX pack: corrupt string length ({e.Message}).", e); }
    }

    static int ReadCount(BinaryReader r, string what, int max)
    {
        int n = r.ReadInt32();
        if (n < 0 || n > max) throw new InvalidDataException($"PTX pack: {what} is {n} (corrupt pack; at most {max}).");
        return n;
    }

    static string ReadString(BinaryReader r, string what)
    {
        // BinaryReader.ReadString with the length checked first: a corrupt length must not allocate a huge buffer.
        int length = r.Read7BitEncodedInt();
        if (length < 0 || length > MaxStringBytes) throw new InvalidDataException($"PTX pack: {what} has length {length} (corrupt pack).");
        var bytes = r.ReadBytes(length);
        if (bytes.Length < length) throw new InvalidDataException($"PTX pack: truncated inside the {what}.");
        try { return new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes); }
        catch (DecoderFallbackException e) { throw new InvalidDataException($"PTX pack: the {what} is not valid UTF-8 (corrupt pack).", e); }
    }

    /// <summary>
    /// The entry name and each parameter's size in bytes of the one <c>.entry</c> in <paramref name="ptx"/> (as ILGPU
    /// emits it: <c>.param .u64 x</c>, <c>.param .align 8 .b8 x[16]</c>, ...). Throws <see cref="FormatException"/>
    /// when there is not exactly one entry or a parameter is not understood.
    /// </summary>
    public static (string EntryName, int[] ParameterSizes) ParseEntry(string ptx)
    {
        ArgumentNullException.ThrowIfNull(ptx);
        var entries = EntryRegex().Matches(ptx);
        if (entries.Count != 1)
            throw new FormatException($"PTX: expected exactly one .entry declaration, found {entries.Count}" +
                (entries.Count > 1 ? $" ({string.Join(", ", entries.Select(m => m.Groups[1].Value))})." : "."));
        var entry = entries[0];
        string name = entry.Groups[1].Value;
        // The parameter list runs to the first ')' after the entry's '(' (parameter declarations contain none).
        int open = entry.Index + entry.Length, close = ptx.IndexOf(')', open);
        if (close < 0) throw new FormatException($"PTX: the parameter list of .entry {name} has no closing ')'.");
        var sizes = new List<int>();
        string list = StripComments(ptx[open..close]);
        if (list.Trim().Length > 0)
            foreach (var decl in list.Split(','))
            {
                if (decl.Trim().Length == 0) throw new FormatException($"PTX: empty parameter declaration in .entry {name}.");
                sizes.Add(ParameterSize(decl.Trim(), name));
            }
        return (name, sizes.ToArray());
    }

    static string StripComments(string s)
    {
        var sb = new StringBuilder();
        foreach (var line in s.Split('\n'))
        {
            int c = line.IndexOf("//", StringComparison.Ordinal);
            sb.Append(c >= 0 ? line[..c] : line).Append(' ');
        }
        return sb.ToString();
    }

    static int ParameterSize(string decl, string entry)
    {
        var m = ParamRegex().Match(decl);
        if (!m.Success) throw new FormatException($"PTX: parameter '{decl}' of .entry {entry} is not '.param [.align N] .type name[count]'.");
        int bits = int.Parse(m.Groups["bits"].Value, CultureInfo.InvariantCulture);
        if (bits % 8 != 0) throw new FormatException($"PTX: parameter '{decl}' of .entry {entry} has a type of {bits} bits.");
        long count = 1;
        if (m.Groups["count"].Success && !long.TryParse(m.Groups["count"].Value, NumberStyles.None, CultureInfo.InvariantCulture, out count) || count <= 0)
            throw new FormatException($"PTX: parameter '{decl}' of .entry {entry} has an array size that is not a positive number.");
        long bytes = bits / 8 * count;
        if (bytes > int.MaxValue) throw new FormatException($"PTX: parameter '{decl}' of .entry {entry} is {bytes} bytes.");
        return (int)bytes;
    }

    [GeneratedRegex(@"\.entry\s+([A-Za-z_$%][\w$]*)\s*\(")]
    private static partial Regex EntryRegex();

    // `.param [.align N] .TYPE name[count]`, and the kernel-pointer form `.param .u64 .ptr [.space] [.align N] name`.
    [GeneratedRegex(@"^\.param\s+(?:\.align\s+\d+\s+)?\.(?<kind>[a-z]+)(?<bits>\d+)\s+(?:\.ptr(?:\s+\.(?:global|const|local|shared))?(?:\s+\.align\s+\d+)?\s+)?[A-Za-z_$%][\w$]*\s*(?:\[\s*(?<count>\d*)\s*\])?$")]
    private static partial Regex ParamRegex();
}
