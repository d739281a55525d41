using Daop.Engine.Load.Gguf;

namespace Daop.Tests.Load.Gguf;

/// <summary>
/// The GGUF fixtures: files under tests/fixtures/gguf (the small ones, committed, with llama.cpp's reference logits and
/// greedy ids beside them), and the ones the tests write from safetensors fixtures with <see cref="HfToGguf"/> (f32 and the
/// embedded model, too large to commit), whose bytes must hash as the files llama.cpp was run on.
/// </summary>
static class GgufFixtureFiles
{
    /// <summary>tests/fixtures/gguf.</summary>
    public static string Dir => Path.Combine(TestPaths.Root, "tests", "fixtures", "gguf");

    /// <summary>A committed fixture file.</summary>
    public static string Committed(string name) => Path.Combine(Dir, name);

    /// <summary>The source folder of a fixture name ("mixtral-tiny", "tiny-mixtral-code").</summary>
    public static string Source(string fixture) => fixture == "tiny-mixtral-code" ? TestPaths.DefaultModel : TestPaths.Fixture(fixture);

    /// <summary>Converts <paramref name="fixture"/> to <paramref name="type"/> into <paramref name="path"/>.</summary>
    public static string Write(string fixture, HfToGguf.OutType type, string path, bool expandKvHeads = false) =>
        HfToGguf.Convert(Source(fixture), type, expandKvHeads).Write(path);

    /// <summary>Every file the reference script runs llama.cpp on that the tests (re)write: name → (fixture, type).</summary>
    public static IEnumerable<(string File, string Fixture, HfToGguf.OutType Type, bool Mha)> Written()
    {
        foreach (var f in TestPaths.GgufConvertible().Select(x => (string)x[0]))
        {
            yield return ($"{f}-f32.gguf", f, HfToGguf.OutType.F32, false);
            yield return ($"{f}-bf16.gguf", f, HfToGguf.OutType.BF16, false);
        }
        yield return ("olmoe-tiny-mha-f32.gguf", "olmoe-tiny", HfToGguf.OutType.F32, true);
        yield return ("olmoe-tiny-mha-bf16.gguf", "olmoe-tiny", HfToGguf.OutType.BF16, true);
        yield return ("qwen2moe-tiny-q8_0c.gguf", "qwen2moe-tiny", HfToGguf.OutType.Q8_0, false);
        yield return ("tiny-mixtral-code-f32.gguf", "tiny-mixtral-code", HfToGguf.OutType.F32, false);
        yield return ("tiny-mixtral-code-bf16.gguf", "tiny-mixtral-code", HfToGguf.OutType.BF16, false);
        yield return ("tiny-mixtral-code-q8_0c.gguf", "tiny-mixtral-code", HfToGguf.OutType.Q8_0, false);
    }

    /// <summary>
    /// The files ik_llama.cpp's references are made on (tests/tools/gguf-references.py --ik-anchor): DeepSeek-V3 with kv_b and
    /// its split k_b / v_b (ik_llama.cpp's converter's layout) without the group keys (it routes without groups), GPT-OSS.
    /// </summary>
    public static IEnumerable<(string File, string Fixture, Func<string, string> Write)> IkFiles()
    {
        yield return ("deepseekv3-tiny-split-nogroups-f32.gguf", "deepseekv3-tiny", path =>
            HfToGguf.Convert(Source("deepseekv3-tiny"), HfToGguf.OutType.F32, mla: MlaLayout.KvBAndSplit)
                .Without("deepseek2.expert_group_count").Without("deepseek2.expert_group_used_count").Write(path));
        yield return ("gptoss-tiny-f32.gguf", "gptoss-tiny", path => Write("gptoss-tiny", HfToGguf.OutType.F32, path));
    }

    /// <summary>Vocabulary-only files from the tokenizer fixtures: file → (tokenizer.json, gpt2 pre-tokenizer name).</summary>
    public static IEnumerable<(string File, string Tokenizer, string Pre)> Vocabularies()
    {
        string dir = Path.Combine(TestPaths.Root, "tests", "fixtures", "tok-fixtures");
        yield return ("vocab-gpt2.gguf", Path.Combine(dir, "bytelevel-bpe.tokenizer.json"), "gpt-2");
        yield return ("vocab-qwen2.gguf", Path.Combine(dir, "qwen-regex-bpe.tokenizer.json"), "qwen2");
        yield return ("vocab-spm.gguf", Path.Combine(dir, "spbpe-bytefallback.tokenizer.json"), "default");
    }
}

/// <summary>Writes the GGUF fixtures for tests/tools/gguf-references.py when DAOP_GGUF_OUT names a folder (skipped otherwise).</summary>
public sealed class GgufFixtureWriter
{
    [EnvFact("DAOP_GGUF_OUT")]
    public void WriteFixtures()
    {
        string dir = Environment.GetEnvironmentVariable("DAOP_GGUF_OUT")!;
        Directory.CreateDirectory(dir);
        foreach (var (file, fixture, type, mha) in GgufFixtureFiles.Written())
            GgufFixtureFiles.Write(fixture, type, Path.Combine(dir, file), mha);
        foreach (var (file, _, write) in GgufFixtureFiles.IkFiles())
            write(Path.Combine(dir, "ik-" + file));
        foreach (var (file, tokenizer, pre) in GgufFixtureFiles.Vocabularies())
            HfToGguf.TokenizerOnly(tokenizer, pre).Write(Path.Combine(dir, file));
    }
}

/// <summary>A fact that runs only when the environment variable it names is set.</summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class EnvFactAttribute : FactAttribute
{
    public EnvFactAttribute(string variable)
    {
        if (string.IsNullOrEmpty(Environment.GetEnvironmentVariable(variable))) Skip = $"set {variable} to run";
    }
}
