using Daop.Generators;
using Daop.Generators.Model;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;

namespace Daop.Tests.Generators;

/// <summary>The pipeline caches: unchanged configs are not re-parsed and unchanged shapes are not re-emitted.</summary>
public class IncrementalTests
{
    static readonly string[] Steps = [ExpertKernelGenerator.ParseStep, ExpertKernelGenerator.ShapesStep, ExpertKernelGenerator.ShapeStep];

    static IEnumerable<IncrementalStepRunReason> Reasons(GeneratorDriver driver, string step) =>
        driver.GetRunResult().Results.Single().TrackedSteps[step].SelectMany(s => s.Outputs).Select(o => o.Reason);

    [Fact]
    public void SecondRunWithSameInputsIsCached()
    {
        var compilation = GeneratorHarness.Compilation();
        var driver = GeneratorHarness.Driver(GeneratorHarness.TinyConfig(), GeneratorHarness.OddConfig());
        driver = driver.RunGenerators(compilation);
        foreach (var step in Steps) Assert.All(Reasons(driver, step), r => Assert.Equal(IncrementalStepRunReason.New, r));

        driver = driver.RunGenerators(compilation);
        foreach (var step in Steps) Assert.All(Reasons(driver, step), r => Assert.Equal(IncrementalStepRunReason.Cached, r));
    }

    [Fact]
    public void EditingCSharpSourcesDoesNotReparseConfigs()
    {
        var compilation = GeneratorHarness.Compilation();
        var driver = GeneratorHarness.Driver(GeneratorHarness.TinyConfig(), GeneratorHarness.OddConfig()).RunGenerators(compilation);

        var edited = compilation.AddSyntaxTrees(CSharpSyntaxTree.ParseText("class Edited { }", GeneratorHarness.Parse));
        driver = driver.RunGenerators(edited);
        foreach (var step in Steps) Assert.All(Reasons(driver, step), r => Assert.Equal(IncrementalStepRunReason.Cached, r));
    }

    [Fact]
    public void EditingOneConfigReparsesOnlyThatOne()
    {
        var compilation = GeneratorHarness.Compilation();
        var tiny = GeneratorHarness.TinyConfig();
        var odd = GeneratorHarness.OddConfig();
        var driver = GeneratorHarness.Driver(tiny, odd).RunGenerators(compilation);

        // Change a field that is not part of the expert shape: the file is re-parsed, but the parsed
        // shapes compare equal, so everything downstream is Unchanged rather than regenerated.
        var oddEdited = new InMemoryText(odd.Path, odd.GetText().ToString().Replace("\"vocab_size\": 512", "\"vocab_size\": 1024"));
        driver = driver.ReplaceAdditionalText(odd, oddEdited).RunGenerators(compilation);

        var parse = driver.GetRunResult().Results.Single().TrackedSteps[ExpertKernelGenerator.ParseStep]
            .SelectMany(s => s.Outputs).ToDictionary(o => ((ParsedConfig)o.Value).Path, o => o.Reason);
        Assert.Equal(IncrementalStepRunReason.Cached, parse[tiny.Path]);
        Assert.Equal(IncrementalStepRunReason.Unchanged, parse[odd.Path]);
        foreach (var step in new[] { ExpertKernelGenerator.ShapesStep, ExpertKernelGenerator.ShapeStep })
            Assert.All(Reasons(driver, step), r => Assert.True(r is IncrementalStepRunReason.Cached or IncrementalStepRunReason.Unchanged, $"{step}: {r}"));
    }

    [Fact]
    public void ChangingAShapeRegeneratesOnlyThatShape()
    {
        var compilation = GeneratorHarness.Compilation();
        var tiny = GeneratorHarness.TinyConfig();
        var odd = GeneratorHarness.OddConfig();
        var driver = GeneratorHarness.Driver(tiny, odd).RunGenerators(compilation);

        var oddEdited = new InMemoryText(odd.Path, odd.GetText().ToString().Replace("\"intermediate_size\": 136", "\"intermediate_size\": 144"));
        driver = driver.ReplaceAdditionalText(odd, oddEdited).RunGenerators(compilation);

        var shapes = driver.GetRunResult().Results.Single().TrackedSteps[ExpertKernelGenerator.ShapeStep]
            .SelectMany(s => s.Outputs).ToList();
        var byShape = shapes.ToDictionary(o => ((ExpertShape)o.Value).Id, o => o.Reason);
        Assert.True(byShape["H256_I256_Bf16"] is IncrementalStepRunReason.Cached or IncrementalStepRunReason.Unchanged, $"{byShape["H256_I256_Bf16"]}");
        Assert.True(byShape["H80_I144_Bf16"] is IncrementalStepRunReason.New or IncrementalStepRunReason.Modified, $"{byShape["H80_I144_Bf16"]}");
        Assert.Contains(driver.GetRunResult().GeneratedTrees, t => t.FilePath.EndsWith("ExpertShape_H80_I144_Bf16.g.cs", StringComparison.Ordinal));
        Assert.DoesNotContain(driver.GetRunResult().GeneratedTrees, t => t.FilePath.EndsWith("ExpertShape_H80_I136_Bf16.g.cs", StringComparison.Ordinal));
    }
}
