using System.Collections.Generic;
using System.Collections.Immutable;
using System.Linq;
using Daop.Generators.Config;
using Daop.Generators.Emit;
using Daop.Generators.Model;
using Microsoft.CodeAnalysis;

namespace Daop.Generators;

/// <summary>
/// Reads the model configs passed as AdditionalFiles and emits, per distinct expert shape (hidden, inter, weight
/// dtype), a shape struct, a JIT-specialised CPU kernel entry and ILGPU kernels with the shape inlined, plus lookup
/// tables.
/// </summary>
/// <remarks>
/// Incremental: each config is parsed by its own <c>Select</c> into value-equatable records, so an unchanged file
/// (and any edit to the C# sources) reuses the cached parse; shapes are merged after <c>Collect</c> and emitted one
/// file per shape, so a new config that only adds a model to an existing shape touches nothing else.
/// </remarks>
[Generator(LanguageNames.CSharp)]
public sealed class ExpertKernelGenerator : IIncrementalGenerator
{
    /// <summary>Tracking name of the per-file parse step.</summary>
    public const string ParseStep = "DaopParseConfig";
    /// <summary>Tracking name of the merged, sorted shape list.</summary>
    public const string ShapesStep = "DaopExpertShapes";
    /// <summary>Tracking name of the per-shape step feeding one generated file each.</summary>
    public const string ShapeStep = "DaopExpertShape";

    /// <inheritdoc/>
    public void Initialize(IncrementalGeneratorInitializationContext context)
    {
        var parsed = context.AdditionalTextsProvider
            .Where(static t => ConfigFiles.IsModelConfig(t.Path))
            .Select(static (t, ct) => ConfigReader.Read(t.Path, t.GetText(ct)))
            .WithTrackingName(ParseStep);

        context.RegisterSourceOutput(parsed.Select(static (p, _) => p.Diagnostics), static (spc, diagnostics) =>
        {
            foreach (var d in diagnostics) spc.ReportDiagnostic(d.ToDiagnostic());
        });

        var shapes = parsed
            .Select(static (p, _) => p.Shapes)
            .Collect()
            .Select(static (all, _) => Merge(all))
            .WithTrackingName(ShapesStep);

        var each = shapes.SelectMany(static (list, _) => list).WithTrackingName(ShapeStep);
        context.RegisterSourceOutput(each, static (spc, s) => spc.AddSource(ShapeEmitter.HintName(s), ShapeEmitter.Emit(s)));
        context.RegisterSourceOutput(shapes, static (spc, list) => spc.AddSource(TableEmitter.HintName, TableEmitter.Emit(list)));
    }

    /// <summary>One <see cref="ExpertShape"/> per distinct (hidden, inter, dtype), sorted, with the sorted list of users.</summary>
    static EquatableArray<ExpertShape> Merge(ImmutableArray<EquatableArray<ExpertShapeUse>> all)
    {
        var users = new Dictionary<(int, int, WeightType), SortedSet<string>>();
        foreach (var uses in all)
            foreach (var u in uses)
            {
                var key = (u.Hidden, u.Inter, u.Type);
                if (!users.TryGetValue(key, out var set)) users[key] = set = new SortedSet<string>(System.StringComparer.Ordinal);
                set.Add(u.Model + " (" + u.Role + ")");
            }
        var shapes = users
            .OrderBy(kv => kv.Key.Item1).ThenBy(kv => kv.Key.Item2).ThenBy(kv => kv.Key.Item3)
            .Select(kv => new ExpertShape(kv.Key.Item1, kv.Key.Item2, kv.Key.Item3, new EquatableArray<string>(kv.Value.ToArray())))
            .ToArray();
        return new EquatableArray<ExpertShape>(shapes);
    }
}
