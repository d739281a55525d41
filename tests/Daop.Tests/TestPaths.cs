namespace Daop.Tests;

/// <summary>Locates the repository (the folder holding Daop.sln) so tests read fixtures in place.</summary>
static class TestPaths
{
    public static string Root { get; } = FindRoot();

    public static string Fixture(string name) => Path.Combine(Root, "tests", "fixtures", "hf-fixtures", name);

    public static string DefaultModel => Path.Combine(Root, "models", "tiny-mixtral-code");

    /// <summary>Every transformers fixture a family passes in full (goldens, every device, every policy): one per line.</summary>
    public static IEnumerable<object[]> HfFixtures() => Rows(
    [
        "mixtral-tiny",
        "mixtral-odd",
        "qwen2moe-tiny",
        "qwen3moe-tiny",
        "olmoe-tiny",
        "phimoe-tiny",
        "llama-odd",
        "qwen2-tiny",
        "mistral-tiny",
        "granitemoe-odd",
        "granitemoeshared-odd",
        "llama4-tiny",
        "deepseekv2-tiny",
        "deepseekv3-tiny",
        "gptoss-tiny",
        // Not gptoss-tiny-mxfp4: Daop's CPU MXFP4 kernels quantize the activations to int8 (as llama.cpp does), which on
        // this tiny random model moves the next layer's router logits by ~1e-2, far past the goldens' 1e-4; with its
        // experts widened exactly to f32 it matches transformers at that tolerance (Model/GptOssTests).
    ]);

    /// <summary>The fixtures whose families llama.cpp's February 2025 GGUF conversion covers (tests/fixtures/gguf).</summary>
    public static IEnumerable<object[]> GgufFixtures() => Rows(["mixtral-tiny", "mixtral-odd", "qwen2moe-tiny", "qwen3moe-tiny", "olmoe-tiny", "phimoe-tiny"]);

    /// <summary>Every fixture the test converter (HfToGguf) writes as GGUF: the llama.cpp-checked ones and the families added since.</summary>
    public static IEnumerable<object[]> GgufConvertible() => GgufFixtures().Concat(Rows(["llama-odd", "qwen2-tiny", "granitemoe-odd", "granitemoeshared-odd",
        "deepseekv2-tiny", "deepseekv3-tiny", "gptoss-tiny", "llama4-tiny"]));

    static IEnumerable<object[]> Rows(string[] names) => names.Select(n => new object[] { n });

    static string FindRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "Daop.sln"))) return d.FullName;
        throw new InvalidOperationException("Daop.sln not found above " + AppContext.BaseDirectory);
    }
}
