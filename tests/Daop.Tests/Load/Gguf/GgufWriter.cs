using System.Buffers.Binary;
using System.Text;
using Daop.Engine.Load.Gguf;

namespace Daop.Tests.Load.Gguf;

/// <summary>
/// Writes GGUF files the way llama.cpp's gguf-py GGUFWriter lays them out: header, key/value pairs, tensor infos, padding to
/// the alignment, then each tensor's bytes padded to the alignment, in the order added. Values are typed as gguf-py types
/// them (int → int32, uint → uint32, float → float32, ...); <see cref="AddRaw"/> writes any type.
/// </summary>
sealed class GgufWriter
{
    readonly List<(string Key, GgufValueType Type, GgufValueType Element, object Value)> _kv = [];
    readonly List<(string Name, GgmlType Type, long[] Dims, byte[] Data)> _tensors = [];

    /// <summary>Data alignment (general.alignment is written when it is not 32).</summary>
    public uint Alignment { get; init; } = 32;
    /// <summary>Format version written.</summary>
    public uint Version { get; init; } = 3;

    /// <summary>Adds a key with its value typed by its CLR type.</summary>
    public GgufWriter Add(string key, object value)
    {
        var (type, element) = TypeOf(value);
        _kv.Add((key, type, element, value));
        return this;
    }

    /// <summary>Adds a key written with exactly <paramref name="type"/> (and <paramref name="element"/> for arrays).</summary>
    public GgufWriter AddRaw(string key, GgufValueType type, object value, GgufValueType element = GgufValueType.UInt8)
    {
        _kv.Add((key, type, element, value));
        return this;
    }

    /// <summary>Adds a tensor: ggml dims (row width first) and its bytes.</summary>
    public GgufWriter Tensor(string name, GgmlType type, long[] dims, byte[] data)
    {
        _tensors.Add((name, type, dims, data));
        return this;
    }

    /// <summary>Drops the key or tensor <paramref name="name"/> (for files with something missing); throws if there is none.</summary>
    public GgufWriter Without(string name)
    {
        int removed = _kv.RemoveAll(k => k.Key == name) + _tensors.RemoveAll(t => t.Name == name);
        return removed > 0 ? this : throw new ArgumentException($"no key or tensor '{name}'");
    }

    /// <summary>Sets key <paramref name="key"/> to <paramref name="value"/>, in place if present.</summary>
    public GgufWriter Set(string key, object value)
    {
        var (type, element) = TypeOf(value);
        int i = _kv.FindIndex(k => k.Key == key);
        if (i < 0) _kv.Add((key, type, element, value));
        else _kv[i] = (key, type, element, value);
        return this;
    }

    /// <summary>Adds an f32 tensor.</summary>
    public GgufWriter F32(string name, long[] dims, float[] values) =>
        Tensor(name, GgmlType.F32, dims, System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).ToArray());

    public IReadOnlyList<(string Name, GgmlType Type, long[] Dims, byte[] Data)> Tensors => _tensors;

    static (GgufValueType, GgufValueType) TypeOf(object v) => v switch
    {
        byte => (GgufValueType.UInt8, GgufValueType.UInt8),
        sbyte => (GgufValueType.Int8, GgufValueType.Int8),
        ushort => (GgufValueType.UInt16, GgufValueType.UInt16),
        short => (GgufValueType.Int16, GgufValueType.Int16),
        uint => (GgufValueType.UInt32, GgufValueType.UInt32),
        int => (GgufValueType.Int32, GgufValueType.Int32),
        float => (GgufValueType.Float32, GgufValueType.Float32),
        bool => (GgufValueType.Bool, GgufValueType.Bool),
        string => (GgufValueType.String, GgufValueType.String),
        ulong => (GgufValueType.UInt64, GgufValueType.UInt64),
        long => (GgufValueType.Int64, GgufValueType.Int64),
        double => (GgufValueType.Float64, GgufValueType.Float64),
        Array a => (GgufValueType.Array, ElementType(a.GetType().GetElementType()!)),
        _ => throw new ArgumentException($"no GGUF type for {v.GetType()}"),
    };

    static GgufValueType ElementType(Type t) =>
        t == typeof(string) ? GgufValueType.String : t == typeof(int) ? GgufValueType.Int32 : t == typeof(uint) ? GgufValueType.UInt32
        : t == typeof(float) ? GgufValueType.Float32 : t == typeof(bool) ? GgufValueType.Bool : t == typeof(long) ? GgufValueType.Int64
        : t == typeof(byte) ? GgufValueType.UInt8 : t == typeof(double) ? GgufValueType.Float64
        : throw new ArgumentException($"no GGUF array of {t}");

    /// <summary>The file's bytes.</summary>
    public byte[] ToBytes()
    {
        var kv = _kv.ToList();
        if (Alignment != 32 && !kv.Any(k => k.Key == "general.alignment"))
            kv.Insert(0, ("general.alignment", GgufValueType.UInt32, GgufValueType.UInt32, Alignment));
        using var ms = new MemoryStream();
        var w = new BinaryWriter(ms);
        w.Write("GGUF"u8);
        w.Write(Version);
        w.Write((ulong)_tensors.Count);
        w.Write((ulong)kv.Count);
        foreach (var (key, type, element, value) in kv)
        {
            Str(w, key);
            w.Write((uint)type);
            if (type == GgufValueType.Array)
            {
                var a = (Array)value;
                w.Write((uint)element);
                w.Write((ulong)a.Length);
                foreach (var x in a) Scalar(w, element, x!);
            }
            else Scalar(w, type, value);
        }
        long offset = 0;
        var offsets = new List<long>();
        foreach (var (name, type, dims, data) in _tensors)
        {
            Str(w, name);
            w.Write((uint)dims.Length);
            foreach (long d in dims) w.Write((ulong)d);
            w.Write((uint)type);
            w.Write((ulong)offset);
            offsets.Add(offset);
            offset += Pad(data.Length);
        }
        w.Flush();
        Align(ms);
        foreach (var (_, _, _, data) in _tensors)
        {
            ms.Write(data);
            Align(ms);
        }
        return ms.ToArray();
    }

    /// <summary>Writes the file.</summary>
    public string Write(string path)
    {
        File.WriteAllBytes(path, ToBytes());
        return path;
    }

    long Pad(long n) => (n + Alignment - 1) / Alignment * Alignment;

    void Align(MemoryStream ms)
    {
        long pad = Pad(ms.Length) - ms.Length;
        for (long i = 0; i < pad; i++) ms.WriteByte(0);
    }

    static void Str(BinaryWriter w, string s)
    {
        var b = Encoding.UTF8.GetBytes(s);
        w.Write((ulong)b.Length);
        w.Write(b);
    }

    static void Scalar(BinaryWriter w, GgufValueType type, object v)
    {
        switch (type)
        {
            case GgufValueType.UInt8: w.Write(Convert.ToByte(v)); break;
            case GgufValueType.Int8: w.Write(Convert.ToSByte(v)); break;
            case GgufValueType.UInt16: w.Write(Convert.ToUInt16(v)); break;
            case GgufValueType.Int16: w.Write(Convert.ToInt16(v)); break;
            case GgufValueType.UInt32: w.Write(Convert.ToUInt32(v)); break;
            case GgufValueType.Int32: w.Write(Convert.ToInt32(v)); break;
            case GgufValueType.Float32: w.Write(Convert.ToSingle(v)); break;
            case GgufValueType.Bool: w.Write((byte)(Convert.ToBoolean(v) ? 1 : 0)); break;
            case GgufValueType.String: Str(w, (string)v); break;
            case GgufValueType.UInt64: w.Write(Convert.ToUInt64(v)); break;
            case GgufValueType.Int64: w.Write(Convert.ToInt64(v)); break;
            case GgufValueType.Float64: w.Write(Convert.ToDouble(v)); break;
            default: throw new ArgumentException($"cannot write a {type} scalar");
        }
    }
}
