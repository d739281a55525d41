namespace Daop.Generators.Model;

/// <summary>One expert FFN shape named by one config: the key of a generated kernel plus where it came from.</summary>
/// <param name="Hidden">Model width (rows of down, columns of gate/up).</param>
/// <param name="Inter">Expert intermediate width (rows of gate/up, columns of down).</param>
/// <param name="Type">Stored weight dtype.</param>
/// <param name="Model">Model name derived from the config's path.</param>
/// <param name="Role">"routed experts" or "shared expert".</param>
internal sealed record ExpertShapeUse(int Hidden, int Inter, WeightType Type, string Model, string Role);
