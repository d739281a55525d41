using System.Diagnostics;
using Daop.Engine.Load;
using Daop.Engine.Model;
using Daop.Engine.Model.Families;
using Daop.Tests.Load.Config;
using Xunit.Abstractions;

namespace Daop.Tests.Hardening;

/// <summary>
/// Seeded, time-bounded fuzzing of config.json: mutants of every fixture family's config are loaded with
/// <see cref="MoeModel.Load"/> against the fixture's real weights (and, when they load, run one forward pass). Each must
/// load and run, or fail with a <see cref="ModelLoadException"/> that names the file; any other exception, or a load that
/// takes longer than <see cref="PerMutantTimeout"/>, fails the test with the seed and the mutation.
/// </summary>
public sealed class ConfigFuzzTests(ITestOutputHelper output)
{
    // DAOP_FUZZ_SEED / DAOP_FUZZ_SECONDS run other seeds or longer (the mutant cap then grows with the time).
    static readonly int Seed = FuzzReport.EnvInt("DAOP_FUZZ_SEED", 20251124);
    static readonly TimeSpan Budget = TimeSpan.FromSeconds(FuzzReport.EnvInt("DAOP_FUZZ_SECONDS", 12));
    static readonly int MaxMutants = (int)(4000 * Math.Max(1, Budget.TotalSeconds / 12));
    static readonly TimeSpan PerMutantTimeout = FuzzReport.HangAfter;

    // Keys other families read, so mutants also try options their family does not expect.
    static readonly string[] Keys =
    [
        "num_local_experts", "num_experts", "num_experts_per_tok", "intermediate_size", "moe_intermediate_size", "hidden_size",
        "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim", "vocab_size", "max_position_embeddings",
        "rms_norm_eps", "rope_theta", "rope_scaling", "rope_parameters", "partial_rotary_factor", "sliding_window", "use_sliding_window",
        "tie_word_embeddings", "eos_token_id", "bos_token_id", "hidden_act", "model_type", "decoder_sparse_step", "mlp_only_layers",
        "shared_expert_intermediate_size", "norm_topk_prob", "qkv_bias", "attention_bias", "clip_qkv", "lm_head_bias",
        "router_jitter_noise", "dtype", "torch_dtype", "original_max_position_embeddings",
        // DeepSeek-V2/V3
        "n_routed_experts", "n_shared_experts", "kv_lora_rank", "q_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim",
        "n_group", "topk_group", "topk_method", "routed_scaling_factor", "first_k_dense_replace", "moe_layer_freq", "rope_interleave",
        // Granite-MoE, dense Llama/Qwen2/Mistral, Llama-4
        "embedding_multiplier", "attention_multiplier", "residual_multiplier", "logits_scaling", "mlp_bias", "pretraining_tp",
        "layer_types", "max_window_layers", "moe_layers", "interleave_moe_layer_step", "no_rope_layers", "no_rope_layer_interval",
        "attention_chunk_size", "attn_temperature_tuning", "floor_scale", "attn_scale", "use_qk_norm", "intermediate_size_mlp",
    ];

    [Fact]
    public void MutatedConfigsLoadOrFailWithModelLoadException()
    {
        var fixtures = TestPaths.HfFixtures().Select(f => (string)f[0]).ToArray();
        var dirs = fixtures.Select(f => new TempModelDir(TestPaths.Fixture(f))).ToArray();
        try
        {
            var originals = dirs.Select(d => File.ReadAllBytes(d.ConfigPath)).ToArray();
            var rng = new Random(Seed);
            var mutator = new JsonMutator(rng, Keys);
            int loaded = 0, rejected = 0, i = 0;
            var failures = new Dictionary<string, string>(); // one mutant per distinct failure site
            var sw = Stopwatch.StartNew();
            for (; FuzzReport.KeepGoing(i, MaxMutants, sw, Budget) && failures.Count < 10; i++)
            {
                int f = rng.Next(dirs.Length);
                var (text, what) = mutator.Mutate(originals[f]);
                string path = dirs[f].ConfigPath;
                File.WriteAllBytes(path, text);
                var (finished, e) = FuzzReport.RunIsolated(() =>
                {
                    _ = ModelFamilies.ReadConfig(path);
                    using var model = MoeModel.Load(dirs[f].Path, new ModelOptions { ContextLength = 16 });
                    var logits = new float[model.Config.VocabSize];
                    int[] tokens = [Math.Min(1, model.Config.VocabSize - 1), 0];
                    model.Forward(tokens, 0, model.NewCache(), logits);
                }, PerMutantTimeout);
                if (!finished)
                {
                    failures.TryAdd("timeout", $"mutant {i} (seed {Seed}, {fixtures[f]}: {what}): still loading after {PerMutantTimeout.TotalSeconds} s");
                    break;
                }
                if (e == null) loaded++;
                else if (e is ModelLoadException mle && (mle.Message.Contains("config.json", StringComparison.Ordinal) ||
                                                         mle.Message.Contains(".safetensors", StringComparison.Ordinal)))
                    rejected++;
                else
                    failures.TryAdd(FuzzReport.Site(e), $"mutant {i} (seed {Seed}, {fixtures[f]}: {what}): {e.GetType().Name}: {e.Message}\n{e.StackTrace}");
            }
            output.WriteLine($"config fuzz: {i} mutants in {sw.Elapsed.TotalSeconds:F1} s over {fixtures.Length} families: " +
                $"{loaded} loaded and ran, {rejected} rejected with ModelLoadException, {failures.Count} failures");
            Assert.True(failures.Count == 0, string.Join("\n\n", failures.Values));
        }
        finally
        {
            foreach (var d in dirs) d.Dispose();
        }
    }
}
