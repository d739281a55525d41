using Daop.Kernels.Generated;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;

namespace Daop.Tests.Generators;

/// <summary>
/// The emitted ILGPU kernel sources are valid C# against the real ILGPU API. Daop.Kernels does not reference ILGPU,
/// so the check compiles them against the ILGPU assembly in the local NuGet cache and passes vacuously without it.
/// </summary>
public class IlgpuSourceTests
{
    static string? FindIlgpu()
    {
        var roots = new[]
        {
            Environment.GetEnvironmentVariable("NUGET_PACKAGES"),
            Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages"),
        };
        foreach (var root in roots.Where(r => !string.IsNullOrEmpty(r)))
        {
            var dir = Path.Combine(root!, "ilgpu");
            if (!Directory.Exists(dir)) continue;
            var dll = Directory.GetFiles(dir, "ILGPU.dll", SearchOption.AllDirectories)
                .Where(p => Path.GetFileName(Path.GetDirectoryName(p)) is { } tfm && tfm.StartsWith("net", StringComparison.Ordinal) &&
                            tfm.Contains('.', StringComparison.Ordinal) && !tfm.StartsWith("netstandard", StringComparison.Ordinal))
                .OrderByDescending(p => p, StringComparer.Ordinal).FirstOrDefault(); // the newest .NET (Core) build
            if (dll != null) return dll;
        }
        return null;
    }

    [Fact]
    public void EveryDTypeAndTailVariantCompiles()
    {
        var ilgpu = FindIlgpu();
        if (ilgpu == null) return; // no ILGPU package on this machine: nothing to compile against
        // Shapes covering each dtype's widening and both the exact and the partial-last-chunk dot products.
        var texts = new[]
        {
            ("80", "136", "bfloat16"), ("33", "17", "float16"), ("64", "128", "float32"), ("4096", "14336", "bfloat16"),
        }.Select((s, i) => (AdditionalText)new InMemoryText($"{GeneratorHarness.ConfigDir}c{i}.json",
            $"{{\"hidden_size\": {s.Item1}, \"intermediate_size\": {s.Item2}, \"torch_dtype\": \"{s.Item3}\"}}")).ToArray();
        var run = GeneratorHarness.Run(texts);
        var sources = new List<string>();
        foreach (var file in run.Results.Single().GeneratedSources.Where(s => s.HintName.StartsWith("ExpertShape_", StringComparison.Ordinal)))
        {
            // Pull the verbatim string back out of the generated constant by compiling the file and reading it.
            var tree = CSharpSyntaxTree.ParseText(file.SourceText, GeneratorHarness.Parse);
            var literal = tree.GetRoot().DescendantNodes().OfType<Microsoft.CodeAnalysis.CSharp.Syntax.LiteralExpressionSyntax>()
                .Single(l => l.Token.ValueText.Contains("using ILGPU;", StringComparison.Ordinal));
            sources.Add(literal.Token.ValueText);
        }
        Assert.Equal(4, sources.Count);
        // Bound checks only where a row ends in a partial chunk: 33 f16 columns do (33 % 8 = 1), 4096 bf16 do not.
        Assert.Contains("if (c + 7 < Hidden)", sources.Single(s => s.Contains("class IlgpuExpert_H33_I17_F16", StringComparison.Ordinal)));
        Assert.DoesNotContain("< Hidden)", sources.Single(s => s.Contains("class IlgpuExpert_H4096_I14336_Bf16", StringComparison.Ordinal)));
        CompileAll(sources, ilgpu);
    }

    [Fact]
    public void BuiltInSourcesCompile()
    {
        var ilgpu = FindIlgpu();
        if (ilgpu == null) return;
        var sources = typeof(GeneratedIlgpuKernels).GetFields(System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Static)
            .Where(f => f.IsLiteral).Select(f => (string)f.GetRawConstantValue()!).ToList();
        Assert.Equal(ExpertKernelRegistry.Generated.Count, sources.Count);
        CompileAll(sources, ilgpu);
    }

    static void CompileAll(IEnumerable<string> sources, string ilgpu)
    {
        var compilation = CSharpCompilation.Create("IlgpuKernels",
            sources.Select(s => CSharpSyntaxTree.ParseText(s, GeneratorHarness.Parse)),
            GeneratorHarness.References.Add(MetadataReference.CreateFromFile(ilgpu)),
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary));
        var errors = compilation.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error).ToList();
        Assert.True(errors.Count == 0, string.Join("\n", errors.Take(20)));
    }
}
