using System.Buffers.Binary;
using System.Text;

namespace Daop.Engine.Load.Gguf;

/// <summary>
/// Parses and validates a GGUF header in place (from the mapped file): every count, length, type, dimension, offset
/// and the alignment is checked against the file and the limits of <see cref="GgufFile"/> before anything is allocated
/// from it. Little-endian only; version 1 (32-bit counts) and big-endian files are refused by name.
/// </summary>
unsafe ref struct GgufReader
{
    /// <summary>Magic, version, tensor count and key/value count.</summary>
    public const int MinimumBytes = 4 + 4 + 8 + 8;

    /// <summary>What the header says.</summary>
    public sealed record Header(uint Version, uint Alignment, long DataOffset, Dictionary<string, GgufValue> Metadata,
        List<string> Keys, List<GgufTensorInfo> Tensors);

    static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    readonly string _path;
    readonly byte* _p;
    readonly long _length;
    long _pos;

    GgufReader(string path, byte* p, long length)
    {
        _path = path; _p = p; _length = length;
    }

    /// <summary>Reads the header of the <paramref name="length"/>-byte file mapped at <paramref name="p"/>.</summary>
    public static Header Read(string path, byte* p, long length) => new GgufReader(path, p, length).ReadHeader();

    Header ReadHeader()
    {
        if (_p[0] != 'G' || _p[1] != 'G' || _p[2] != 'U' || _p[3] != 'F')
            throw Error($"not a GGUF file (magic bytes {_p[0]:X2} {_p[1]:X2} {_p[2]:X2} {_p[3]:X2}, expected 'GGUF')");
        _pos = 4;
        uint version = U32("version");
        if (version is not (2 or 3))
        {
            uint swapped = BinaryPrimitives.ReverseEndianness(version);
            throw Error(swapped is 2 or 3 ? $"a big-endian GGUF (version {swapped}); Daop reads little-endian files"
                : version == 1 ? "GGUF version 1 (32-bit counts) is not supported; convert the model again with a current llama.cpp"
                : $"GGUF version {version} is not supported (versions 2 and 3 are)");
        }
        long tensorCount = Count("tensor count", GgufFile.MaxTensors);
        long kvCount = Count("metadata key/value count", GgufFile.MaxKeyValues);

        var metadata = new Dictionary<string, GgufValue>(StringComparer.Ordinal);
        var keys = new List<string>();
        for (long i = 0; i < kvCount; i++)
        {
            string key = Name($"metadata key {i}");
            if (metadata.ContainsKey(key)) throw Error($"key '{key}' appears twice");
            metadata[key] = Value(key);
            keys.Add(key);
        }
        uint alignment = Alignment(metadata);

        var tensors = new List<GgufTensorInfo>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var offsets = new long[tensorCount];
        for (long i = 0; i < tensorCount; i++)
        {
            var (t, offset) = TensorInfo(i);
            if (!seen.Add(t.Name)) throw Error($"tensor '{t.Name}' appears twice");
            tensors.Add(t);
            offsets[i] = offset;
        }
        if (_pos > GgufFile.MaxHeaderBytes)
            throw Error($"the header is {_pos} bytes; the limit is {GgufFile.MaxHeaderBytes}");
        long dataOffset = (_pos + alignment - 1) / alignment * alignment;
        for (int i = 0; i < tensors.Count; i++)
            tensors[i] = Place(tensors[i], offsets[i], dataOffset, alignment);
        CheckNoOverlap(tensors);
        return new Header(version, alignment, dataOffset, metadata, keys, tensors);
    }

    uint Alignment(Dictionary<string, GgufValue> metadata)
    {
        if (!metadata.TryGetValue("general.alignment", out var v)) return GgufFile.DefaultAlignment;
        if (v.IsArray || !GgufValue.IsInteger(v.Type))
            throw Error($"key 'general.alignment' must be an unsigned integer, found {v.TypeName} {v}");
        long a = v.AsInteger() ?? -1;
        if (a <= 0 || a > GgufFile.MaxAlignment || (a & (a - 1)) != 0)
            throw Error($"key 'general.alignment' must be a power of two from 1 to {GgufFile.MaxAlignment}, found {v}");
        return (uint)a;
    }

    (GgufTensorInfo, long) TensorInfo(long index)
    {
        string name = Name($"tensor info {index}");
        string where = $"tensor '{name}'";
        uint nDims = U32($"{where}: dimension count");
        if (nDims > GgufFile.MaxDims) throw Error($"{where}: {nDims} dimensions; at most {GgufFile.MaxDims} are allowed");
        var dims = new long[nDims];
        long elements = 1;
        for (int d = 0; d < nDims; d++)
        {
            ulong n = U64($"{where}: dimension {d}");
            if (n > long.MaxValue) throw Error($"{where}: dimension {d} is {n}, which is negative as ggml's int64");
            dims[d] = (long)n;
            try { elements = checked(elements * dims[d]); }
            catch (OverflowException) { throw Error($"{where}: dimensions [{string.Join(", ", dims[..(d + 1)])}] overflow a 64-bit element count"); }
        }
        uint typeNumber = U32($"{where}: type");
        var type = (GgmlType)typeNumber;
        if (!GgmlTypes.IsKnown(type))
            throw Error($"{where}: ggml type {typeNumber} is not a type ggml defines (or one it removed, such as the repacked Q4_0_4_4)");
        int block = type.BlockSize();
        long rowWidth = nDims == 0 ? 1 : dims[0];
        if (rowWidth % block != 0)
            throw Error($"{where}: rows of {rowWidth} elements are not a whole number of {type.Name()} blocks of {block}");
        long bytes;
        try { bytes = checked(elements / block * type.BlockBytes()); }
        catch (OverflowException) { throw Error($"{where}: the byte size of {elements} {type.Name()} elements overflows"); }
        ulong offset = U64($"{where}: offset");
        if (offset > long.MaxValue) throw Error($"{where}: offset {offset} is past any file");
        return (new GgufTensorInfo(name, type, dims, 0, bytes), (long)offset);
    }

    GgufTensorInfo Place(GgufTensorInfo t, long offset, long dataOffset, uint alignment)
    {
        string where = $"tensor '{t.Name}'";
        if (offset % alignment != 0) throw Error($"{where}: offset {offset} is not a multiple of the alignment {alignment}");
        long dataBytes = _length - dataOffset;
        if (offset > dataBytes || t.ByteLength > dataBytes - offset)
            throw Error($"{where}: bytes [{offset}, {offset + (decimal)t.ByteLength}) of the data section run past its end " +
                $"({Math.Max(0, dataBytes)} bytes from offset {dataOffset} of the {_length}-byte file)");
        return t with { Offset = dataOffset + offset };
    }

    void CheckNoOverlap(List<GgufTensorInfo> tensors)
    {
        var sorted = tensors.Where(t => t.ByteLength > 0).OrderBy(t => t.Offset).ToArray();
        for (int i = 1; i < sorted.Length; i++)
            if (sorted[i].Offset < sorted[i - 1].Offset + sorted[i - 1].ByteLength)
                throw Error($"tensors '{sorted[i - 1].Name}' and '{sorted[i].Name}' overlap in the data section");
    }

    GgufValue Value(string key)
    {
        string where = $"key '{key}'";
        uint t = U32($"{where}: type");
        var type = (GgufValueType)t;
        if (type == GgufValueType.Array)
        {
            uint e = U32($"{where}: array element type");
            var elementType = (GgufValueType)e;
            if (elementType == GgufValueType.Array) throw Error($"{where}: arrays of arrays are not supported");
            if (e > (uint)GgufValueType.Float64) throw Error($"{where}: array element type {e} is not a GGUF type");
            long n = Count($"{where}: array length", GgufFile.MaxArrayLength);
            return new GgufValue(GgufValueType.Array, elementType, ReadArray(elementType, n, where));
        }
        if (t > (uint)GgufValueType.Float64) throw Error($"{where}: value type {t} is not a GGUF type");
        return new GgufValue(type, type, Scalar(type, where));
    }

    object Scalar(GgufValueType type, string where) => type switch
    {
        GgufValueType.UInt8 => Take(1, where)[0],
        GgufValueType.Int8 => (sbyte)Take(1, where)[0],
        GgufValueType.UInt16 => BinaryPrimitives.ReadUInt16LittleEndian(Take(2, where)),
        GgufValueType.Int16 => BinaryPrimitives.ReadInt16LittleEndian(Take(2, where)),
        GgufValueType.UInt32 => BinaryPrimitives.ReadUInt32LittleEndian(Take(4, where)),
        GgufValueType.Int32 => BinaryPrimitives.ReadInt32LittleEndian(Take(4, where)),
        GgufValueType.Float32 => BinaryPrimitives.ReadSingleLittleEndian(Take(4, where)),
        GgufValueType.Bool => Bool(where),
        GgufValueType.String => String(where),
        GgufValueType.UInt64 => BinaryPrimitives.ReadUInt64LittleEndian(Take(8, where)),
        GgufValueType.Int64 => BinaryPrimitives.ReadInt64LittleEndian(Take(8, where)),
        GgufValueType.Float64 => BinaryPrimitives.ReadDoubleLittleEndian(Take(8, where)),
        _ => throw Error($"{where}: value type {(uint)type} is not a GGUF type"),
    };

    Array ReadArray(GgufValueType type, long n, string where)
    {
        int size = GgufValue.FixedSize(type);
        // Every element takes at least its fixed size (strings at least their 8-byte length), so a claimed length the
        // rest of the file cannot hold fails here, before anything of that length is allocated.
        long minimum = n * (type == GgufValueType.String ? 8 : size);
        if (minimum > _length - _pos)
            throw Error($"{where}: an array of {n} {GgufValue.Name(type)} values needs at least {minimum} bytes, past the end of the file");
        int count = (int)n;
        if (type == GgufValueType.String)
        {
            var strings = new string[count];
            for (int i = 0; i < count; i++) strings[i] = String($"{where}[{i}]");
            return strings;
        }
        if (type == GgufValueType.Bool)
        {
            var bools = new bool[count];
            for (int i = 0; i < count; i++) bools[i] = Bool($"{where}[{i}]");
            return bools;
        }
        var span = Take(checked(count * size), where);
        return type switch
        {
            GgufValueType.UInt8 => span.ToArray(),
            GgufValueType.Int8 => Cast<sbyte>(span),
            GgufValueType.UInt16 => Cast<ushort>(span),
            GgufValueType.Int16 => Cast<short>(span),
            GgufValueType.UInt32 => Cast<uint>(span),
            GgufValueType.Int32 => Cast<int>(span),
            GgufValueType.Float32 => Cast<float>(span),
            GgufValueType.UInt64 => Cast<ulong>(span),
            GgufValueType.Int64 => Cast<long>(span),
            GgufValueType.Float64 => Cast<double>(span),
            _ => throw Error($"{where}: array element type {(uint)type} is not a GGUF type"),
        };
    }

    // The file is little-endian and so is every machine .NET runs Daop on (checked once, below).
    static T[] Cast<T>(ReadOnlySpan<byte> bytes) where T : unmanaged =>
        BitConverter.IsLittleEndian ? System.Runtime.InteropServices.MemoryMarshal.Cast<byte, T>(bytes).ToArray()
            : throw new PlatformNotSupportedException("GGUF files are read on little-endian machines only");

    bool Bool(string where)
    {
        byte b = Take(1, where)[0];
        return b switch
        {
            0 => false,
            1 => true,
            _ => throw Error($"{where}: a bool must be 0 or 1, found {b}"),
        };
    }

    string Name(string what)
    {
        ulong n = U64($"{what}: length");
        if (n > GgufFile.MaxNameBytes) throw Error($"{what}: a name of {n} bytes; the limit is {GgufFile.MaxNameBytes}");
        if (n == 0) throw Error($"{what}: an empty name");
        return Decode((int)n, what);
    }

    string String(string where)
    {
        ulong n = U64($"{where}: string length");
        if (n > GgufFile.MaxStringBytes) throw Error($"{where}: a string of {n} bytes; the limit is {GgufFile.MaxStringBytes}");
        return Decode((int)n, where);
    }

    string Decode(int n, string where)
    {
        var bytes = Take(n, where);
        try { return StrictUtf8.GetString(bytes); }
        catch (DecoderFallbackException) { throw Error($"{where}: not valid UTF-8"); }
    }

    long Count(string what, long max)
    {
        ulong n = U64(what);
        if (n > (ulong)max) throw Error($"{what} is {n}; the limit is {max}");
        return (long)n;
    }

    uint U32(string what) => BinaryPrimitives.ReadUInt32LittleEndian(Take(4, what));

    ulong U64(string what) => BinaryPrimitives.ReadUInt64LittleEndian(Take(8, what));

    ReadOnlySpan<byte> Take(int n, string what)
    {
        if (n > _length - _pos)
            throw Error($"{what} runs past the end of the {_length}-byte file (at byte {_pos}, {n} bytes needed)");
        var span = new ReadOnlySpan<byte>(_p + _pos, n);
        _pos += n;
        return span;
    }

    ModelLoadException Error(string what) => new($"{_path}: {what}");
}
