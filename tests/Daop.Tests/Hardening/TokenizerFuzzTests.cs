using System.Diagnostics;
using Daop.Engine.Load;
using Daop.Engine.Load.Tokenizer;
using Daop.Tests.Load.Tokenizer;
using Xunit.Abstractions;

namespace Daop.Tests.Hardening;

/// <summary>
/// Seeded, time-bounded fuzzing of tokenizer.json: mutants of the three tokenizer fixtures (byte-level BPE, Qwen regex
/// BPE, SentencePiece-style byte fallback) are loaded with <see cref="HfTokenizer.FromFile"/> and, when they load, encode
/// and decode a few strings. Each must work or fail with a <see cref="ModelLoadException"/> whose message starts with the
/// file name; anything else, or a mutant that takes longer than <see cref="PerMutantTimeout"/>, fails the test.
/// </summary>
public sealed class TokenizerFuzzTests(ITestOutputHelper output)
{
    // DAOP_FUZZ_SEED / DAOP_FUZZ_SECONDS run other seeds or longer (the mutant cap then grows with the time).
    static readonly int Seed = FuzzReport.EnvInt("DAOP_FUZZ_SEED", 20251125);
    static readonly TimeSpan Budget = TimeSpan.FromSeconds(FuzzReport.EnvInt("DAOP_FUZZ_SECONDS", 12));
    static readonly int MaxMutants = (int)(3000 * Math.Max(1, Budget.TotalSeconds / 12));
    static readonly TimeSpan PerMutantTimeout = FuzzReport.HangAfter;

    static readonly string[] Keys =
    [
        "type", "vocab", "merges", "unk_token", "byte_fallback", "fuse_unk", "ignore_merges", "continuing_subword_prefix",
        "end_of_word_suffix", "dropout", "normalizer", "pre_tokenizer", "post_processor", "decoder", "added_tokens", "pattern",
        "behavior", "invert", "add_prefix_space", "trim_offsets", "use_regex", "replacement", "prepend_scheme", "split",
        "normalizers", "pretrainers", "decoders", "single", "pair", "special_tokens", "content", "id", "special", "lstrip",
        "rstrip", "single_word", "normalized", "String", "Regex", "prefix", "start", "stop",
    ];

    static readonly string[] Samples = ["Hello, world!", "def f(x):\n    return x ** 2  # ünïcødé 🙂", "  spaces\tand\nnew lines  ", "日本語のテキスト", ""];

    [Fact]
    public void MutatedTokenizersLoadOrFailWithModelLoadException()
    {
        var files = Directory.GetFiles(TokTestPaths.TokFixtures, "*.tokenizer.json").Order().ToArray();
        Assert.Equal(3, files.Length);
        var originals = files.Select(File.ReadAllBytes).ToArray();
        string dir = TokTestPaths.NewTempDir();
        try
        {
            var rng = new Random(Seed);
            var mutator = new JsonMutator(rng, Keys);
            int loaded = 0, rejected = 0, i = 0;
            var failures = new Dictionary<string, string>(); // one mutant per distinct failure site
            var sw = Stopwatch.StartNew();
            for (; FuzzReport.KeepGoing(i, MaxMutants, sw, Budget) && failures.Count < 10; i++)
            {
                int f = rng.Next(files.Length);
                var (text, what) = mutator.Mutate(originals[f]);
                string name = Path.GetFileName(files[f]);
                string path = Path.Combine(dir, name);
                File.WriteAllBytes(path, text);
                var (finished, e) = FuzzReport.RunIsolated(() =>
                {
                    var tok = HfTokenizer.FromFile(path);
                    foreach (string s in Samples)
                    {
                        var ids = tok.Encode(s);
                        _ = tok.Decode(ids);
                        var streamer = tok.CreateStreamer();
                        foreach (int id in ids) _ = streamer.Append(id);
                        _ = streamer.Flush();
                    }
                }, PerMutantTimeout);
                if (!finished)
                {
                    failures.TryAdd("timeout", $"mutant {i} (seed {Seed}, {name}: {what}): still running after {PerMutantTimeout.TotalSeconds} s");
                    break;
                }
                if (e == null) loaded++;
                else if (e is ModelLoadException mle && mle.Message.StartsWith(name + ":", StringComparison.Ordinal)) rejected++;
                else failures.TryAdd(FuzzReport.Site(e), $"mutant {i} (seed {Seed}, {name}: {what}): {e.GetType().Name}: {e.Message}\n{e.StackTrace}");
            }
            output.WriteLine($"tokenizer fuzz: {i} mutants in {sw.Elapsed.TotalSeconds:F1} s over {files.Length} fixtures: " +
                $"{loaded} loaded and encoded, {rejected} rejected with ModelLoadException, {failures.Count} failures");
            Assert.True(failures.Count == 0, string.Join("\n\n", failures.Values));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
