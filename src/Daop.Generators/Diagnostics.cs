using System;
using Microsoft.CodeAnalysis;

namespace Daop.Generators;

/// <summary>
/// The generator's diagnostics. All are warnings: a broken or unsupported config only costs that model its
/// specialised kernel (the runtime falls back to the generic path), so it must not break the build. Each message
/// names the file and, where there is one, the field; the location points into the config.
/// </summary>
internal static class Diagnostics
{
    const string Category = "Daop.Generators";

    /// <summary>The file is not valid JSON, or its top level is not an object.</summary>
    public static readonly DiagnosticDescriptor InvalidJson = new DiagnosticDescriptor(
        "DAOP001", "Model config is not valid JSON", "{0}", Category, DiagnosticSeverity.Warning, isEnabledByDefault: true);

    /// <summary>A field the expert shape needs is absent.</summary>
    public static readonly DiagnosticDescriptor MissingField = new DiagnosticDescriptor(
        "DAOP002", "Model config lacks an expert-shape field", "{0}", Category, DiagnosticSeverity.Warning, isEnabledByDefault: true);

    /// <summary>A shape field is present but not a positive integer (or a string field is not a string).</summary>
    public static readonly DiagnosticDescriptor BadValue = new DiagnosticDescriptor(
        "DAOP003", "Model config field has an unusable value", "{0}", Category, DiagnosticSeverity.Warning, isEnabledByDefault: true);

    /// <summary>No weight dtype, or one the CPU kernels do not read.</summary>
    public static readonly DiagnosticDescriptor UnsupportedDType = new DiagnosticDescriptor(
        "DAOP004", "Model config weight dtype not supported", "{0}", Category, DiagnosticSeverity.Warning, isEnabledByDefault: true);

    /// <summary>The experts are not SwiGLU, which is the only expert the kernels implement.</summary>
    public static readonly DiagnosticDescriptor UnsupportedActivation = new DiagnosticDescriptor(
        "DAOP005", "Model config activation not supported", "{0}", Category, DiagnosticSeverity.Warning, isEnabledByDefault: true);

    /// <summary>The descriptor with id <paramref name="id"/>.</summary>
    public static DiagnosticDescriptor ById(string id)
    {
        switch (id)
        {
            case "DAOP001": return InvalidJson;
            case "DAOP002": return MissingField;
            case "DAOP003": return BadValue;
            case "DAOP004": return UnsupportedDType;
            case "DAOP005": return UnsupportedActivation;
            default: throw new ArgumentException("unknown diagnostic " + id, nameof(id));
        }
    }
}
