using System.Reflection;
using Daop.Kernels.Generated;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;

namespace Daop.Tests.Generators;

/// <summary>
/// The generator's output for shapes no repository config names (column tails, partial 16-byte chunks, every dtype),
/// compiled with Roslyn against Daop.Kernels and ILGPU and loaded, so their GPU kernels can run like the built-in ones.
/// </summary>
internal static class OddShapeAssembly
{
    /// <summary>(hidden, inter, torch_dtype) of the extra shapes.</summary>
    public static readonly (int Hidden, int Inter, string DType)[] Shapes =
        [(80, 136, "bfloat16"), (33, 17, "float16"), (36, 20, "float32"), (64, 128, "float32")];

    static readonly Lazy<Assembly> s_assembly = new(Build);

    /// <summary>The generated GPU expert for one of <see cref="Shapes"/>.</summary>
    public static GeneratedGpuExpert Gpu(int hidden, int inter, string suffix)
    {
        var type = s_assembly.Value.GetType($"Daop.Kernels.Generated.IlgpuExpert_H{hidden}_I{inter}_{suffix}", throwOnError: true)!;
        return (GeneratedGpuExpert)type.GetProperty("Expert")!.GetValue(null)!;
    }

    static Assembly Build()
    {
        var texts = Shapes.Select((s, i) => (AdditionalText)new InMemoryText($"{GeneratorHarness.ConfigDir}odd{i}.json",
            $"{{\"hidden_size\": {s.Hidden}, \"intermediate_size\": {s.Inter}, \"torch_dtype\": \"{s.DType}\"}}")).ToArray();
        var run = GeneratorHarness.Run(texts);
        // Only the per-shape files: the table would redefine GeneratedExpertKernels.All/Find next to the copy in Daop.Kernels.
        var trees = run.Results.Single().GeneratedSources
            .Where(s => s.HintName.StartsWith("ExpertShape_", StringComparison.Ordinal))
            .Select(s => CSharpSyntaxTree.ParseText(s.SourceText, GeneratorHarness.Parse));
        var compilation = CSharpCompilation.Create("Daop.Tests.OddShapes", trees, GeneratorHarness.References,
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, optimizationLevel: OptimizationLevel.Release));
        using var pe = new MemoryStream();
        var emit = compilation.Emit(pe);
        if (!emit.Success)
            throw new InvalidOperationException(string.Join("\n", emit.Diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error)));
        return Assembly.Load(pe.ToArray());
    }
}
