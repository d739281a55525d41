using Microsoft.CodeAnalysis;

namespace Daop.Tests.Generators;

/// <summary>Broken configs become located warnings naming file and field, never generator exceptions.</summary>
public class ConfigDiagnosticTests
{
    const string Path = GeneratorHarness.ConfigDir + "broken.json";

    static (GeneratorDriverRunResult Run, Diagnostic Diagnostic) RunOne(string json, string id)
    {
        var run = GeneratorHarness.Run(new InMemoryText(Path, json));
        var result = run.Results.Single();
        Assert.Null(result.Exception);
        Assert.DoesNotContain(run.Diagnostics, d => d.Id is "CS8784" or "CS8785"); // generator failed to initialise / run
        Assert.DoesNotContain(result.GeneratedSources, s => s.HintName.StartsWith("ExpertShape_", StringComparison.Ordinal));
        var d = Assert.Single(run.Diagnostics, d => d.Id == id);
        Assert.Equal(DiagnosticSeverity.Warning, d.Severity);
        Assert.Equal(Path, d.Location.GetLineSpan().Path);
        Assert.Contains(Path, d.GetMessage());
        return (run, d);
    }

    static string Located(Diagnostic d, string json) => json.Substring(d.Location.SourceSpan.Start, d.Location.SourceSpan.Length);

    [Fact]
    public void InvalidJson()
    {
        const string json = "{\n  \"hidden_size\": 4096,\n  \"intermediate_size\": 14336\n  \"torch_dtype\": \"bfloat16\"\n}";
        var (_, d) = RunOne(json, "DAOP001");
        Assert.Contains("(4,3)", d.GetMessage()); // the missing comma is noticed at the next member's quote
        Assert.Equal(3, d.Location.GetLineSpan().StartLinePosition.Line);
        Assert.Equal("\"", Located(d, json));
    }

    [Theory]
    [InlineData("")]
    [InlineData("{\"hidden_size\": 4096,")]
    [InlineData("{\"hidden_size\": 40 96}")]
    [InlineData("{\"a\": \"unterminated}")]
    [InlineData("[1, 2]")]
    [InlineData("{\"a\": tru}")]
    [InlineData("{\"a\": 01}")]
    [InlineData("{\"a\": \"\\q\"}")]
    [InlineData("{} {}")]
    public void MalformedInputNeverThrows(string json) => RunOne(json, "DAOP001");

    [Fact]
    public void MissingHiddenSize()
    {
        var (_, d) = RunOne("{\"intermediate_size\": 14336, \"torch_dtype\": \"bfloat16\"}", "DAOP002");
        Assert.Contains("'hidden_size'", d.GetMessage());
    }

    [Fact]
    public void MissingIntermediateSize()
    {
        var (_, d) = RunOne("{\"hidden_size\": 4096, \"torch_dtype\": \"bfloat16\"}", "DAOP002");
        Assert.Contains("'intermediate_size' (or 'moe_intermediate_size')", d.GetMessage());
    }

    [Theory]
    [InlineData("\"big\"", "string \"big\"")]
    [InlineData("4096.5", "number 4096.5")]
    [InlineData("4e3", "number 4e3")]
    [InlineData("-4096", "number -4096")]
    [InlineData("0", "number 0")]
    [InlineData("99999999999", "number 99999999999")]
    [InlineData("null", "null")]
    [InlineData("[4096]", "an array")]
    public void NonIntegerHiddenSize(string value, string described)
    {
        string json = "{\n  \"hidden_size\": " + value + ",\n  \"intermediate_size\": 14336,\n  \"torch_dtype\": \"bfloat16\"\n}";
        var (_, d) = RunOne(json, "DAOP003");
        Assert.Contains("'hidden_size' must be a positive integer", d.GetMessage());
        Assert.Contains("found " + described, d.GetMessage());
        Assert.Equal(value, Located(d, json)); // the location is the value itself
        Assert.Equal(1, d.Location.GetLineSpan().StartLinePosition.Line);
    }

    [Fact]
    public void NonIntegerMoeIntermediateSize()
    {
        var (_, d) = RunOne("{\"hidden_size\": 2048, \"moe_intermediate_size\": \"768\", \"torch_dtype\": \"bfloat16\"}", "DAOP003");
        Assert.Contains("'moe_intermediate_size'", d.GetMessage());
    }

    [Theory]
    [InlineData("{\"hidden_size\": 64, \"intermediate_size\": 64}", "no 'torch_dtype' or 'dtype'")]
    [InlineData("{\"hidden_size\": 64, \"intermediate_size\": 64, \"torch_dtype\": \"float8_e4m3fn\"}", "'torch_dtype' is string \"float8_e4m3fn\"")]
    [InlineData("{\"hidden_size\": 64, \"intermediate_size\": 64, \"dtype\": 16}", "'dtype' is number 16")]
    public void UnsupportedDType(string json, string message) => Assert.Contains(message, RunOne(json, "DAOP004").Diagnostic.GetMessage());

    [Fact]
    public void UnsupportedActivation()
    {
        var (_, d) = RunOne("{\"hidden_size\": 64, \"intermediate_size\": 64, \"hidden_act\": \"gelu\", \"torch_dtype\": \"float32\"}", "DAOP005");
        Assert.Contains("'hidden_act' is \"gelu\"", d.GetMessage());
    }

    [Fact]
    public void BrokenConfigDoesNotStopTheOthers()
    {
        var run = GeneratorHarness.Run(new InMemoryText(Path, "{\"hidden_size\": \"big\"}"), GeneratorHarness.TinyConfig());
        Assert.Contains(run.Results.Single().GeneratedSources, s => s.HintName == "ExpertShape_H256_I256_Bf16.g.cs");
        Assert.Contains(run.Diagnostics, d => d.Id == "DAOP003");
    }

    [Fact]
    public void PythonStyleNonFiniteNumbersAndEscapesParse()
    {
        string json = "{\"x\": NaN, \"y\": -Infinity, \"z\": [Infinity, 1e-5, \"\\u00e9\\n\"], \"hidden_size\": 64," +
                      " \"intermediate_size\": 32, \"torch_dtype\": \"float16\"}";
        var run = GeneratorHarness.Run(new InMemoryText(Path, json));
        Assert.Empty(run.Diagnostics);
        Assert.Contains(run.Results.Single().GeneratedSources, s => s.HintName == "ExpertShape_H64_I32_F16.g.cs");
    }
}
