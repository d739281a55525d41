namespace Daop.Kernels;

/// <summary>Element type of a weight tensor as stored in a checkpoint. Activations are always fp32.</summary>
public enum DType : byte
{
    /// <summary>IEEE binary32.</summary>
    F32,
    /// <summary>IEEE binary16.</summary>
    F16,
    /// <summary>bfloat16: the top 16 bits of a binary32.</summary>
    BF16,
}

/// <summary>Sizes and names of <see cref="DType"/> values.</summary>
public static class DTypes
{
    /// <summary>Bytes per element.</summary>
    public static int SizeOf(this DType t) => t == DType.F32 ? 4 : 2;
}
