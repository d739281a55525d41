using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;

namespace Daop.Tests.Generators;

/// <summary>What the generator emits for good configs, and that it compiles.</summary>
public class GeneratorOutputTests
{
    [Fact]
    public void ConfigsYieldSourceThatCompiles()
    {
        var driver = GeneratorHarness.Driver(GeneratorHarness.TinyConfig(), GeneratorHarness.OddConfig());
        driver = driver.RunGeneratorsAndUpdateCompilation(GeneratorHarness.Compilation(), out var output, out var generatorDiagnostics);
        var run = driver.GetRunResult();

        Assert.Empty(generatorDiagnostics);
        Assert.Null(run.Results.Single().Exception);
        var hints = run.Results.Single().GeneratedSources.Select(s => s.HintName).OrderBy(h => h).ToArray();
        Assert.Equal(new[] { "ExpertShape_H256_I256_Bf16.g.cs", "ExpertShape_H80_I136_Bf16.g.cs", "GeneratedExpertKernels.g.cs" }, hints);

        // Compiled against the real Daop.Kernels: the generated types shadow the ones already built into it
        // (CS0436, a warning), and every type the output names must bind to the hand-written glue.
        var errors = output.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error).ToList();
        Assert.True(errors.Count == 0, string.Join("\n", errors));

        var shape = GeneratorHarness.Source(run, "ExpertShape_H80_I136_Bf16.g.cs");
        Assert.Contains("public readonly struct ExpertShape_H80_I136_Bf16 : IExpertShape", shape);
        Assert.Contains("public static int Hidden => 80;", shape);
        Assert.Contains("public static int Inter => 136;", shape);
        Assert.Contains("public static DType Type => DType.BF16;", shape);
        Assert.Contains("ShapedExpertKernel<ExpertShape_H80_I136_Bf16> H80_I136_Bf16", shape);
        var table = GeneratorHarness.Source(run, "GeneratedExpertKernels.g.cs");
        Assert.Contains("(80, 136, DType.BF16) => H80_I136_Bf16,", table);
        Assert.Contains("(256, 256, DType.BF16) => H256_I256_Bf16,", table);
    }

    [Fact]
    public void SameShapeFromTwoConfigsMakesOneKernel()
    {
        string mixtral = GeneratorHarness.RepoFile("models", "configs", "Mixtral-8x7B-v0.1.json");
        var run = GeneratorHarness.Run(
            new InMemoryText(GeneratorHarness.ConfigDir + "Mixtral-8x7B-v0.1.json", mixtral),
            new InMemoryText("/elsewhere/models/mixtral-finetune/config.json", mixtral.Replace("\"torch_dtype\"", "\"dtype\"")));

        var sources = run.Results.Single().GeneratedSources;
        Assert.Single(sources, s => s.HintName.StartsWith("ExpertShape_", StringComparison.Ordinal));
        var shape = GeneratorHarness.Source(run, "ExpertShape_H4096_I14336_Bf16.g.cs");
        Assert.Contains("Named by: Mixtral-8x7B-v0.1 (routed experts), mixtral-finetune (routed experts).", shape);
        var table = GeneratorHarness.Source(run, "GeneratedExpertKernels.g.cs");
        Assert.Contains("new IExpertKernel[] { H4096_I14336_Bf16 };", table);
        // One case in the CPU kernel lookup and one in the ILGPU source lookup.
        Assert.Equal(2, table.Split('\n').Count(l => l.Contains("(4096, 14336, DType.BF16) => H4096_I14336_Bf16,")));
    }

    [Fact]
    public void AllRepositoryConfigsGiveTheExpectedShapes()
    {
        var dir = Path.Combine(TestPaths.Root, "models", "configs");
        var texts = Directory.GetFiles(dir, "*.json")
            .Select(f => (AdditionalText)new InMemoryText(GeneratorHarness.ConfigDir + Path.GetFileName(f), File.ReadAllText(f)))
            .Append(GeneratorHarness.TinyConfig()).ToArray();
        var run = GeneratorHarness.Run(texts);

        Assert.Empty(run.Diagnostics);
        var shapes = run.Results.Single().GeneratedSources.Select(s => s.HintName)
            .Where(h => h.StartsWith("ExpertShape_", StringComparison.Ordinal)).OrderBy(h => h, StringComparer.Ordinal).ToArray();
        string[] expected =
        [
            "H1536_I512_Bf16",  // Granite-3.1-3B-A800M
            "H2048_I1024_Bf16", // OLMoE-1B-7B
            "H2048_I1408_Bf16", // Qwen1.5-MoE-A2.7B routed
            "H2048_I5632_Bf16", // Qwen1.5-MoE-A2.7B shared
            "H2048_I768_Bf16",  // Qwen3-30B-A3B
            "H256_I256_Bf16",   // tiny-mixtral-code
            "H3584_I18944_Bf16", // Qwen2.5-7B (dense: its MLP is the one expert)
            "H3584_I20480_Bf16", // Qwen2-57B-A14B shared
            "H3584_I2560_Bf16", // Qwen2-57B-A14B routed
            "H4096_I14336_Bf16", // Mixtral-8x7B, Llama-3.1-8B
            "H4096_I1536_Bf16", // Qwen3-235B-A22B
            "H4096_I6400_Bf16", // Phi-3.5-MoE
            "H6144_I16384_Bf16", // Mixtral-8x22B
        ];
        Assert.Equal(expected.Select(e => "ExpertShape_" + e + ".g.cs").OrderBy(h => h, StringComparer.Ordinal), shapes);
    }

    [Theory]
    [InlineData("/repo/models/tiny/config.json", true)]
    [InlineData("C:\\repo\\models\\a\\b\\config.json", true)]
    [InlineData("/repo/models/configs/Qwen3-30B-A3B.json", true)]
    [InlineData("/repo/models/tiny/generation_config.json", false)]
    [InlineData("/repo/models/tiny/tokenizer_config.json", false)]
    [InlineData("/repo/models/tiny/routing-analysis.json", false)]
    [InlineData("/repo/tests/fixtures/hf-fixtures/mixtral-tiny/config.json", false)]
    [InlineData("/repo/configs/x.json", false)]
    public void OnlyModelConfigsAreRead(string path, bool read)
    {
        var run = GeneratorHarness.Run(new InMemoryText(path, GeneratorHarness.RepoFile("models", "tiny-mixtral-code", "config.json")));
        bool generated = run.Results.Single().GeneratedSources.Any(s => s.HintName == "ExpertShape_H256_I256_Bf16.g.cs");
        Assert.Equal(read, generated);
    }

    [Fact]
    public void NoConfigsStillEmitsAnEmptyTable()
    {
        var run = GeneratorHarness.Run();
        var table = GeneratorHarness.Source(run, "GeneratedExpertKernels.g.cs");
        Assert.Contains("new IExpertKernel[] {};", table);
    }

    [Fact]
    public void SharedExpertIsASecondShape()
    {
        var run = GeneratorHarness.Run(new InMemoryText(GeneratorHarness.ConfigDir + "q.json",
            GeneratorHarness.RepoFile("models", "configs", "Qwen1.5-MoE-A2.7B.json")));
        Assert.Contains("Named by: q (routed experts).", GeneratorHarness.Source(run, "ExpertShape_H2048_I1408_Bf16.g.cs"));
        Assert.Contains("Named by: q (shared expert).", GeneratorHarness.Source(run, "ExpertShape_H2048_I5632_Bf16.g.cs"));
    }
}
