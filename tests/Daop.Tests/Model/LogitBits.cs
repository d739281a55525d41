using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using Daop.Engine.Load.Config;
using Daop.Engine.Model;
using Daop.Kernels.Cpu;
using Daop.Tests.Load.Config;

namespace Daop.Tests.Model;

/// <summary>
/// Exact logits of a fixed token run, as a SHA-256 of their bit patterns, kept per machine kind in
/// tests/fixtures/logit-bits.json. A refactor that must not change behaviour (layer specs, issue 12) is checked
/// against the hashes recorded on the code before it. SIMD width and FMA change the bits, so hashes are keyed by
/// <see cref="Signature"/>; on a machine kind with no entry the check is skipped. To record this machine's hashes,
/// run the LogitBits tests with DAOP_RECORD_LOGIT_BITS=1 (DOTNET_EnableAVX512=0 for an AVX2 entry, DAOP_THREADS=n for
/// another worker count).
/// </summary>
static class LogitBits
{
    /// <summary>Prefill this many tokens (chunks of <see cref="Chunk"/>), all logits kept ...</summary>
    public const int Prefill = 12;
    /// <summary>... then decode this many, one at a time through the KV cache.</summary>
    public const int Decode = 4;
    /// <summary>Tokens per forward chunk, so the second chunk attends over cached and fresh keys.</summary>
    public const int Chunk = 8;

    static readonly string FilePath = Path.Combine(TestPaths.Root, "tests", "fixtures", "logit-bits.json");
    static readonly object Gate = new();

    static bool Recording => Environment.GetEnvironmentVariable("DAOP_RECORD_LOGIT_BITS") == "1";

    /// <summary>
    /// What decides the bits on the CPU: architecture, vector widths the JIT accelerates, FMA, AVX-512, and the worker
    /// count (GEMM tiles are sized from it, which changes summation order).
    /// </summary>
    public static string Signature =>
        $"{RuntimeInformation.ProcessArchitecture} v512={Vector512.IsHardwareAccelerated} v256={Vector256.IsHardwareAccelerated} " +
        $"fma={Fma.IsSupported} avx512f={Avx512F.IsSupported} threads={CpuWorkers.Threads}";

    /// <summary>The options every case loads with.</summary>
    public static ModelOptions Options(ModelOptions? o = null) => (o ?? new ModelOptions()) with { ContextLength = 64, MaxChunkTokens = Chunk };

    /// <summary>Hex SHA-256 of the logits of the fixed run: <see cref="Prefill"/> tokens with all logits, then <see cref="Decode"/> decoded one by one.</summary>
    public static string Hash(MoeModel model)
    {
        int v = model.Config.VocabSize;
        var tokens = Enumerable.Range(0, Prefill + Decode).Select(i => (i * 131 + 7) % v).ToArray();
        var logits = new float[(Prefill + Decode) * v];
        var cache = model.NewCache();
        model.Forward(tokens.AsSpan(0, Prefill), 0, cache, logits.AsSpan(0, Prefill * v), allLogits: true);
        for (int i = 0; i < Decode; i++)
            model.Forward(tokens.AsSpan(Prefill + i, 1), Prefill + i, cache, logits.AsSpan((Prefill + i) * v, v));
        Assert.All(logits, x => Assert.True(float.IsFinite(x)));
        return Convert.ToHexString(SHA256.HashData(MemoryMarshal.AsBytes(logits.AsSpan())));
    }

    /// <summary>Checks <paramref name="hash"/> against the recorded one (or records it); false when this machine kind has none.</summary>
    public static bool Check(string name, string hash)
    {
        lock (Gate)
        {
            var root = File.Exists(FilePath) ? JsonNode.Parse(File.ReadAllText(FilePath))!.AsObject() : new JsonObject();
            if (Recording)
            {
                if (root[Signature] is not JsonObject entry) root[Signature] = entry = new JsonObject();
                entry[name] = hash;
                var sorted = new JsonObject(root.OrderBy(p => p.Key).Select(p => KeyValuePair.Create(p.Key,
                    (JsonNode?)new JsonObject(p.Value!.AsObject().OrderBy(q => q.Key).Select(q => KeyValuePair.Create(q.Key, (JsonNode?)q.Value!.GetValue<string>()))))));
                File.WriteAllText(FilePath, sorted.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
                return true;
            }
            if (root[Signature] is not JsonObject recorded) return false;
            var want = recorded[name]?.GetValue<string>();
            Assert.True(want != null, $"no recorded logit bits for '{name}' on {Signature}");
            Assert.True(want == hash, $"{name}: logits differ in their bits from the recorded run on {Signature}");
            return true;
        }
    }

    /// <summary>A fixture's config with edits, for a model over <see cref="StableTensorSource"/> weights.</summary>
    public sealed record Variant(string Name, string Fixture, Action<JsonObject> Edit, params string[] Absent)
    {
        public override string ToString() => Name;

        /// <summary>Writes the edited config to a temporary folder and loads a model over stable random weights.</summary>
        public MoeModel Load(ModelOptions? options = null, Func<ModelConfig, ModelConfig>? adjust = null)
        {
            using var dir = new TempModelDir(TestPaths.Fixture(Fixture));
            dir.EditConfig(Edit);
            return MoeModel.FromSource(Name, dir.ConfigPath, new StableTensorSource(Absent), Options(options), adjust);
        }
    }

    /// <summary>
    /// Configs the six fixtures do not cover: sliding windows, tied and biased heads, partial rotary and scaled RoPE,
    /// dense layers (mlp_only_layers, decoder_sparse_step), no shared expert, biased attention, clip_qkv.
    /// </summary>
    public static readonly Variant[] Variants =
    [
        new("mixtral-window-tied-yarn", "mixtral-odd", c =>
        {
            c["sliding_window"] = 5;
            c["tie_word_embeddings"] = true;
            c["rope_parameters"] = new JsonObject
            {
                ["rope_type"] = "yarn", ["rope_theta"] = 10000.0, ["factor"] = 2.0, ["original_max_position_embeddings"] = 128,
                ["partial_rotary_factor"] = 0.5,
            };
        }, "lm_head.weight"),
        new("qwen2moe-mlp-only-window", "qwen2moe-tiny", c =>
        {
            c["num_hidden_layers"] = 4;
            c["mlp_only_layers"] = new JsonArray(0, 2);
            c["use_sliding_window"] = true;
            c["sliding_window"] = 6;
        }),
        new("qwen2moe-sparse-step-no-shared", "qwen2moe-tiny", c =>
        {
            c["decoder_sparse_step"] = 2;
            c["norm_topk_prob"] = true;
            c["shared_expert_intermediate_size"] = 0;
        }),
        new("qwen3moe-dense-bias-llama3", "qwen3moe-tiny", c =>
        {
            c["mlp_only_layers"] = new JsonArray(1);
            c["attention_bias"] = true;
            c["rope_parameters"] = new JsonObject
            {
                ["rope_type"] = "llama3", ["rope_theta"] = 500000.0, ["factor"] = 8.0, ["original_max_position_embeddings"] = 32,
                ["low_freq_factor"] = 1.0, ["high_freq_factor"] = 4.0,
            };
        }),
        new("olmoe-clip-bias", "olmoe-tiny", c =>
        {
            c["clip_qkv"] = 0.4;
            c["attention_bias"] = true;
            c["norm_topk_prob"] = true;
        }),
        new("phimoe-bias-longrope", "phimoe-tiny", c =>
        {
            c["attention_bias"] = true;
            c["lm_head_bias"] = true;
            c.Remove("rope_parameters");
            c["rope_theta"] = 10000.0;
            c["original_max_position_embeddings"] = 32;
            c["rope_scaling"] = new JsonObject
            {
                ["type"] = "longrope",
                ["short_factor"] = new JsonArray(1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7),
                ["long_factor"] = new JsonArray(1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5),
            };
        }),
    ];

    public static IEnumerable<object[]> VariantData() => Variants.Select(v => new object[] { v.Name });

    public static Variant Find(string name) => Variants.Single(v => v.Name == name);
}

/// <summary>The CPU path's logits are bit-identical to the recorded ones, for every fixture and config variant.</summary>
public class LogitBitsTests(Xunit.Abstractions.ITestOutputHelper output)
{
    void Check(string name, MoeModel model)
    {
        string hash = LogitBits.Hash(model);
        Assert.Equal(hash, LogitBits.Hash(model)); // the run itself is deterministic
        if (!LogitBits.Check(name, hash)) output.WriteLine($"no logit bits recorded for {LogitBits.Signature}: not checked");
    }

    [Theory]
    [MemberData(nameof(TestPaths.HfFixtures), MemberType = typeof(TestPaths))]
    [InlineData("tiny-mixtral-code")]
    public void FixtureLogitsAreBitIdentical(string fixture)
    {
        string dir = fixture == "tiny-mixtral-code" ? TestPaths.DefaultModel : TestPaths.Fixture(fixture);
        using var model = MoeModel.Load(dir, LogitBits.Options());
        Check($"cpu {fixture}", model);
    }

    [Theory]
    [MemberData(nameof(LogitBits.VariantData), MemberType = typeof(LogitBits))]
    public void VariantLogitsAreBitIdentical(string variant)
    {
        using var model = LogitBits.Find(variant).Load();
        Check($"cpu {variant}", model);
    }
}
