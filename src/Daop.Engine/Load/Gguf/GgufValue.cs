using System.Globalization;

namespace Daop.Engine.Load.Gguf;

/// <summary>The value types of GGUF metadata (gguf.h's gguf_type).</summary>
public enum GgufValueType : uint
{
#pragma warning disable CS1591 // the names are the format's own
    UInt8 = 0, Int8 = 1, UInt16 = 2, Int16 = 3, UInt32 = 4, Int32 = 5, Float32 = 6, Bool = 7, String = 8, Array = 9,
    UInt64 = 10, Int64 = 11, Float64 = 12,
#pragma warning restore CS1591
}

/// <summary>
/// One metadata value: a scalar (boxed as the CLR type of its GGUF type: byte, sbyte, ushort, short, uint, int, float, bool,
/// string, ulong, long, double) or an array of one element type (a CLR array of that type). Arrays of arrays are refused
/// by the reader, as ggml does.
/// </summary>
public sealed class GgufValue
{
    internal GgufValue(GgufValueType type, GgufValueType elementType, object data)
    {
        Type = type; ElementType = elementType; Data = data;
    }

    /// <summary>The value's type (<see cref="GgufValueType.Array"/> for arrays).</summary>
    public GgufValueType Type { get; }
    /// <summary>An array's element type (the scalar's own type otherwise).</summary>
    public GgufValueType ElementType { get; }
    /// <summary>The value: a boxed scalar or a typed array.</summary>
    public object Data { get; }

    /// <summary>Whether this is an array.</summary>
    public bool IsArray => Type == GgufValueType.Array;

    /// <summary>Elements of an array (1 for a scalar).</summary>
    public int Count => Data is Array a ? a.Length : 1;

    /// <summary>Whether the (scalar) type is an integer type.</summary>
    public static bool IsInteger(GgufValueType t) => t is GgufValueType.UInt8 or GgufValueType.Int8 or GgufValueType.UInt16
        or GgufValueType.Int16 or GgufValueType.UInt32 or GgufValueType.Int32 or GgufValueType.UInt64 or GgufValueType.Int64;

    /// <summary>Bytes of one stored element of a fixed-size type (0 for strings and arrays).</summary>
    public static int FixedSize(GgufValueType t) => t switch
    {
        GgufValueType.UInt8 or GgufValueType.Int8 or GgufValueType.Bool => 1,
        GgufValueType.UInt16 or GgufValueType.Int16 => 2,
        GgufValueType.UInt32 or GgufValueType.Int32 or GgufValueType.Float32 => 4,
        GgufValueType.UInt64 or GgufValueType.Int64 or GgufValueType.Float64 => 8,
        _ => 0,
    };

    /// <summary>A scalar integer as a long, or null when it is not an integer or does not fit (a uint64 above 2^63 − 1).</summary>
    public long? AsInteger() => Data switch
    {
        byte v => v, sbyte v => v, ushort v => v, short v => v, uint v => v, int v => v, long v => v,
        ulong v => v <= long.MaxValue ? (long)v : null,
        _ => null,
    };

    /// <summary>A scalar number (integer or float) as a double, or null.</summary>
    public double? AsNumber() => Data switch
    {
        float f => f,
        double d => d,
        _ => AsInteger() is { } i ? i : null,
    };

    /// <summary>Element <paramref name="i"/> of an integer array as a long (null when not an integer or out of range).</summary>
    /// <remarks>Dispatched on the element type, not on the array's type: the runtime lets an int[] pass as a uint[].</remarks>
    public long? IntegerAt(int i) => (ElementType, Data) switch
    {
        (GgufValueType.UInt8, byte[] a) => a[i],
        (GgufValueType.Int8, sbyte[] a) => a[i],
        (GgufValueType.UInt16, ushort[] a) => a[i],
        (GgufValueType.Int16, short[] a) => a[i],
        (GgufValueType.UInt32, uint[] a) => a[i],
        (GgufValueType.Int32, int[] a) => a[i],
        (GgufValueType.Int64, long[] a) => a[i],
        (GgufValueType.UInt64, ulong[] a) => a[i] <= long.MaxValue ? (long)a[i] : null,
        _ => null,
    };

    /// <summary>Element <paramref name="i"/> of a numeric array as a double (null when not numeric).</summary>
    public double? NumberAt(int i) => (ElementType, Data) switch
    {
        (GgufValueType.Float32, float[] a) => a[i],
        (GgufValueType.Float64, double[] a) => a[i],
        _ => IntegerAt(i) is { } v ? v : null,
    };

    /// <summary>The name of the type, as messages print it ("uint32", "array of string").</summary>
    public string TypeName => IsArray ? $"array of {Name(ElementType)}" : Name(Type);

    /// <summary>The format's name of a value type.</summary>
    public static string Name(GgufValueType t) => t switch
    {
        GgufValueType.Float32 => "float32",
        GgufValueType.Float64 => "float64",
        _ => t.ToString().ToLowerInvariant(),
    };

    /// <summary>A short rendering for messages and <c>inspect</c>: a scalar's value, or an array's element type and length.</summary>
    public override string ToString() => Data switch
    {
        string s => s.Length <= 80 ? $"'{s}'" : $"'{s[..77]}...' ({s.Length} characters)",
        Array a => $"[{a.Length} x {Name(ElementType)}]",
        bool b => b ? "true" : "false",
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => Data.ToString() ?? "",
    };
}
