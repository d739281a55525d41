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
        "llama4-tiny",
        "deepseekv2-tiny",
        "deepseekv3-tiny",
        "gptoss-tiny",
        // Not gptoss-tiny-mxfp4: its references are of another numeric regime than every other fixture's "fp32 forward
        // over the stored weights". The fixture script loads it with from_pretrained(dtype=float32), so (1) its RoPE
        // frequencies stay fp32 where gptoss-tiny's were rounded to bf16 with the model, and (2) transformers' MXFP4
        // dequantization returns bf16 expert parameters that the fp32 load does not cast, so its experts compute in bf16
        // (Daop with bf16 rounding emulated after each expert op matched its router logits of layers 1 and 2 to 7e-7;
        // without, 5.6e-3). Regenerating it with `m2 = m2.to(torch.bfloat16).float()` after the load (as build() does)
        // puts it in the others' regime; until then Model/GptOssTests checks its loader and its layer-0 references.
    ]);

    /// <summary>The fixtures whose families llama.cpp's February 2025 GGUF conversion covers (tests/fixtures/gguf).</summary>
    public static IEnumerable<object[]> GgufFixtures() => Rows(["mixtral-tiny", "mixtral-odd", "qwen2moe-tiny", "qwen3moe-tiny", "olmoe-tiny", "phimoe-tiny"]);

    /// <summary>Every fixture the test converter (HfToGguf) writes as GGUF: the llama.cpp-checked ones and the families added since.</summary>
    public static IEnumerable<object[]> GgufConvertible() => GgufFixtures().Concat(Rows(["llama-odd", "qwen2-tiny", "granitemoe-odd"]));

    static IEnumerable<object[]> Rows(string[] names) => names.Select(n => new object[] { n });

    static string FindRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "Daop.sln"))) return d.FullName;
        throw new InvalidOperationException("Daop.sln not found above " + AppContext.BaseDirectory);
    }
}
