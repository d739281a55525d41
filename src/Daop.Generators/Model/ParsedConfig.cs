namespace Daop.Generators.Model;

/// <summary>The result of reading one config file: the expert shapes it names and the problems found.</summary>
internal sealed record ParsedConfig(string Path, EquatableArray<ExpertShapeUse> Shapes, EquatableArray<DiagnosticInfo> Diagnostics);
