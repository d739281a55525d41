using System.Collections.Immutable;
using Daop.Generators;
using Daop.Kernels;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.Text;

namespace Daop.Tests.Generators;

/// <summary>An additional file held in memory, as the compiler would pass a config to the generator.</summary>
internal sealed class InMemoryText(string path, string text) : AdditionalText
{
    readonly SourceText _text = SourceText.From(text);

    public override string Path { get; } = path;

    public override SourceText GetText(CancellationToken cancellationToken = default) => _text;
}

/// <summary>Runs <see cref="ExpertKernelGenerator"/> under <see cref="CSharpGeneratorDriver"/> and compiles its output.</summary>
internal static class GeneratorHarness
{
    /// <summary>A root that the generator's path filter accepts, for configs that live elsewhere in the repo.</summary>
    public const string ConfigDir = "/repo/models/configs/";

    public static readonly CSharpParseOptions Parse = new(LanguageVersion.Latest);

    /// <summary>
    /// The framework assemblies of this test run plus Daop.Kernels and ILGPU, so generated code binds to the real glue
    /// types and the real ILGPU API.
    /// </summary>
    public static ImmutableArray<MetadataReference> References { get; } = LoadReferences();

    static ImmutableArray<MetadataReference> LoadReferences()
    {
        var tpa = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator);
        return tpa.Where(p => Path.GetFileName(p).StartsWith("System.", StringComparison.Ordinal) ||
                              Path.GetFileName(p) is "mscorlib.dll" or "netstandard.dll")
            .Select(p => (MetadataReference)MetadataReference.CreateFromFile(p))
            .Append(MetadataReference.CreateFromFile(typeof(DType).Assembly.Location))
            .Append(MetadataReference.CreateFromFile(typeof(ILGPU.ArrayView<>).Assembly.Location))
            .ToImmutableArray();
    }

    /// <summary>A compilation with one trivial source file, standing in for the project being built.</summary>
    public static CSharpCompilation Compilation(string assemblyName = "GeneratorTestAssembly") =>
        CSharpCompilation.Create(assemblyName,
            [CSharpSyntaxTree.ParseText("namespace Consumer { internal static class Anchor { } }", Parse)],
            References, new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, allowUnsafe: true));

    /// <summary>A driver over <paramref name="texts"/> that records the incremental steps.</summary>
    public static GeneratorDriver Driver(params AdditionalText[] texts) =>
        CSharpGeneratorDriver.Create([new ExpertKernelGenerator().AsSourceGenerator()], texts, Parse,
            driverOptions: new GeneratorDriverOptions(IncrementalGeneratorOutputKind.None, trackIncrementalGeneratorSteps: true));

    /// <summary>Runs the generator once over <paramref name="texts"/>.</summary>
    public static GeneratorDriverRunResult Run(params AdditionalText[] texts) =>
        Driver(texts).RunGenerators(Compilation()).GetRunResult();

    /// <summary>A config file's text from the repository.</summary>
    public static string RepoFile(params string[] parts) => File.ReadAllText(Path.Combine([TestPaths.Root, .. parts]));

    /// <summary>The test-only odd-shape config (80 × 136), presented under a models/configs path.</summary>
    public static InMemoryText OddConfig() =>
        new(ConfigDir + "odd-80x136.json", RepoFile("tests", "Daop.Tests", "Generators", "Configs", "odd-80x136.json"));

    /// <summary>The embedded model's config at its real location.</summary>
    public static InMemoryText TinyConfig() =>
        new("/repo/models/tiny-mixtral-code/config.json", RepoFile("models", "tiny-mixtral-code", "config.json"));

    /// <summary>Generated source by hint name.</summary>
    public static string Source(GeneratorDriverRunResult run, string hintName) =>
        run.Results.Single().GeneratedSources.Single(s => s.HintName == hintName).SourceText.ToString();
}
