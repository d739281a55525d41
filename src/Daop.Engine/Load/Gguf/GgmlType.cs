using Daop.Kernels;

namespace Daop.Engine.Load.Gguf;

/// <summary>ggml's tensor element types, by the numbers a GGUF file stores (ggml.h; MXFP4 from ggml of August 2025).</summary>
public enum GgmlType : uint
{
#pragma warning disable CS1591 // the names are ggml's own
    F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
    Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
    IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22, IQ4_XS = 23,
    I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30, TQ1_0 = 34, TQ2_0 = 35, MXFP4 = 39,
#pragma warning restore CS1591
}

/// <summary>
/// Sizes of every <see cref="GgmlType"/> (so any file can be validated and sized, whatever Daop can compute with) and the
/// one mapping from a GGUF type to the <see cref="DType"/> Daop's kernels read. A new kernel format is one case in
/// <see cref="ToDType"/>: the bytes are read as they are, never converted.
/// </summary>
public static class GgmlTypes
{
    // (elements per block, bytes per block): ggml.c's type_traits, gguf-py's GGML_QUANT_SIZES.
    static readonly Dictionary<GgmlType, (int Block, int Bytes)> Sizes = new()
    {
        [GgmlType.F32] = (1, 4), [GgmlType.F16] = (1, 2), [GgmlType.BF16] = (1, 2), [GgmlType.F64] = (1, 8),
        [GgmlType.I8] = (1, 1), [GgmlType.I16] = (1, 2), [GgmlType.I32] = (1, 4), [GgmlType.I64] = (1, 8),
        [GgmlType.Q4_0] = (32, 18), [GgmlType.Q4_1] = (32, 20), [GgmlType.Q5_0] = (32, 22), [GgmlType.Q5_1] = (32, 24),
        [GgmlType.Q8_0] = (32, 34), [GgmlType.Q8_1] = (32, 36), [GgmlType.IQ4_NL] = (32, 18), [GgmlType.MXFP4] = (32, 17),
        [GgmlType.Q2_K] = (256, 84), [GgmlType.Q3_K] = (256, 110), [GgmlType.Q4_K] = (256, 144), [GgmlType.Q5_K] = (256, 176),
        [GgmlType.Q6_K] = (256, 210), [GgmlType.Q8_K] = (256, 292),
        [GgmlType.IQ2_XXS] = (256, 66), [GgmlType.IQ2_XS] = (256, 74), [GgmlType.IQ3_XXS] = (256, 98), [GgmlType.IQ1_S] = (256, 50),
        [GgmlType.IQ3_S] = (256, 110), [GgmlType.IQ2_S] = (256, 82), [GgmlType.IQ4_XS] = (256, 136), [GgmlType.IQ1_M] = (256, 56),
        [GgmlType.TQ1_0] = (256, 54), [GgmlType.TQ2_0] = (256, 66),
    };

    /// <summary>Whether <paramref name="t"/> is a type ggml defines (numbers of removed types are not).</summary>
    public static bool IsKnown(GgmlType t) => Sizes.ContainsKey(t);

    /// <summary>Elements per block (1 for the plain types).</summary>
    public static int BlockSize(this GgmlType t) => Sizes[t].Block;

    /// <summary>Bytes per block.</summary>
    public static int BlockBytes(this GgmlType t) => Sizes[t].Bytes;

    /// <summary>ggml's name of the type ("f32", "q8_0", "q4_K", ...); "type N" for a number ggml does not define.</summary>
    public static string Name(this GgmlType t)
    {
        if (!IsKnown(t)) return $"type {(uint)t}";
        string s = t.ToString().ToLowerInvariant();
        return s.EndsWith("_k", StringComparison.Ordinal) ? s[..^1] + "K" : s;
    }

    /// <summary>
    /// The Daop weight format that reads this type's bytes as they are, or null when Daop has no kernel for it yet
    /// (Q8_K, Q8_1, the I-quants but IQ4_NL: the loader then names the tensor and the type).
    /// </summary>
    public static DType? ToDType(this GgmlType t) => t switch
    {
        GgmlType.F32 => DType.F32,
        GgmlType.F16 => DType.F16,
        GgmlType.BF16 => DType.BF16,
        GgmlType.Q8_0 => DType.Q8_0,
        GgmlType.Q4_0 => DType.Q4_0,
        GgmlType.MXFP4 => DType.MXFP4,
        GgmlType.Q4_K => DType.Q4_K,
        GgmlType.Q5_K => DType.Q5_K,
        GgmlType.Q6_K => DType.Q6_K,
        GgmlType.Q3_K => DType.Q3_K,
        GgmlType.Q2_K => DType.Q2_K,
        GgmlType.Q4_1 => DType.Q4_1,
        GgmlType.Q5_0 => DType.Q5_0,
        GgmlType.Q5_1 => DType.Q5_1,
        GgmlType.IQ4_NL => DType.IQ4_NL,
        _ => null,
    };

    /// <summary>The plain float types a small vector (norm weight, bias) can be widened from.</summary>
    public static bool IsFloat(this GgmlType t) => t is GgmlType.F32 or GgmlType.F16 or GgmlType.BF16;
}
