namespace Daop.Generators.Model;

/// <summary>A distinct expert shape to generate kernels for, with every config that named it.</summary>
/// <param name="Hidden">Model width.</param>
/// <param name="Inter">Expert intermediate width.</param>
/// <param name="Type">Stored weight dtype.</param>
/// <param name="UsedBy">"model (role)" entries, sorted, one per config that named the shape.</param>
internal sealed record ExpertShape(int Hidden, int Inter, WeightType Type, EquatableArray<string> UsedBy)
{
    /// <summary>Identifier suffix shared by everything emitted for the shape, e.g. <c>H4096_I14336_Bf16</c>.</summary>
    public string Id => "H" + Hidden + "_I" + Inter + "_" + TypeSuffix;

    /// <summary><c>Bf16</c>, <c>F16</c> or <c>F32</c>.</summary>
    public string TypeSuffix => Type == WeightType.BF16 ? "Bf16" : Type == WeightType.F16 ? "F16" : "F32";

    /// <summary>Lower-case dtype for display names: bf16, f16, f32.</summary>
    public string TypeName => TypeSuffix.ToLowerInvariant();

    /// <summary>Bytes per stored weight.</summary>
    public int ElementSize => Type == WeightType.F32 ? 4 : 2;
}
