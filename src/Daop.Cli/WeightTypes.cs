using Daop.Kernels;

namespace Daop.Cli;

/// <summary>The values of <c>--expert-dtype</c> and <c>--dense-dtype</c>.</summary>
static class WeightTypes
{
    /// <summary>The stored types a matrix can be converted to, block formats first.</summary>
    public static readonly string[] Names = ["q4_0", "q8_0", "mxfp4", "bf16", "f16", "f32"];

    /// <summary>Why the K-quants and GGUF's older blocks are not among <see cref="Names"/>: Daop computes with them but has no quantizer for them.</summary>
    public const string NotWritten = "q2_K, q3_K, q4_K, q5_K, q6_K, q4_1, q5_0, q5_1 and iq4_nl are read from GGUF files as they are; Daop does not produce them";

    /// <summary>Other spellings <see cref="DTypes.TryParse"/> reads.</summary>
    public static readonly string[] Aliases = ["q4", "q8", "bfloat16", "fp16", "fp32"];

    /// <summary>The type an option names (already checked by its rule), or null when the option is absent.</summary>
    public static DType? Parse(string? name) =>
        name == null ? null : DTypes.TryParse(name, out var t) ? t : throw new ArgumentException($"'{name}' is not a weight type ({string.Join(", ", Names)})");
}
