namespace Daop.Engine.Load.Safetensors;

/// <summary>Element types the safetensors format names.</summary>
public enum TensorDType
{
    /// <summary>safetensors "BOOL".</summary>
    BOOL,
    /// <summary>safetensors "U8".</summary>
    U8,
    /// <summary>safetensors "I8".</summary>
    I8,
    /// <summary>safetensors "I16".</summary>
    I16,
    /// <summary>safetensors "U16".</summary>
    U16,
    /// <summary>safetensors "F16".</summary>
    F16,
    /// <summary>safetensors "BF16".</summary>
    BF16,
    /// <summary>safetensors "I32".</summary>
    I32,
    /// <summary>safetensors "U32".</summary>
    U32,
    /// <summary>safetensors "F32".</summary>
    F32,
    /// <summary>safetensors "F64".</summary>
    F64,
    /// <summary>safetensors "I64".</summary>
    I64,
    /// <summary>safetensors "U64".</summary>
    U64,
    /// <summary>safetensors "F8_E4M3".</summary>
    F8_E4M3,
    /// <summary>safetensors "F8_E5M2".</summary>
    F8_E5M2,
}

/// <summary>Parsing and sizes of <see cref="TensorDType"/>.</summary>
public static class TensorDTypes
{
    /// <summary>Parses the header's dtype string (case-sensitive, as the format defines it).</summary>
    public static bool TryParse(string s, out TensorDType t) => ByName.TryGetValue(s, out t);

    // An exact, ordinal name match: Enum.TryParse would also take " F32", "1,1" or "BOOL, U8" (read as
    // the flag combination U8), none of which the format allows.
    static readonly Dictionary<string, TensorDType> ByName =
        Enum.GetValues<TensorDType>().ToDictionary(v => v.ToString(), StringComparer.Ordinal);

    /// <summary>Bytes per element.</summary>
    public static int SizeOf(TensorDType t) => t switch
    {
        TensorDType.BOOL or TensorDType.U8 or TensorDType.I8 or TensorDType.F8_E4M3 or TensorDType.F8_E5M2 => 1,
        TensorDType.I16 or TensorDType.U16 or TensorDType.F16 or TensorDType.BF16 => 2,
        TensorDType.I32 or TensorDType.U32 or TensorDType.F32 => 4,
        _ => 8,
    };
}

/// <summary>One tensor's header entry: dtype, shape and its byte range relative to the data section.</summary>
public sealed record TensorEntry(string Name, TensorDType DType, long[] Shape, long Offset, long ByteLength)
{
    /// <summary>Number of elements (product of the shape).</summary>
    public long ElementCount => ByteLength / TensorDTypes.SizeOf(DType);

    /// <summary>The shape as "[a, b]".</summary>
    public string ShapeText => "[" + string.Join(", ", Shape) + "]";
}
