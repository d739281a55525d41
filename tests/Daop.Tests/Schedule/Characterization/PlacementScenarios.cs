using Daop.Engine.Load.Config;
using Daop.Engine.Load.Safetensors;
using Daop.Engine.Model;
using Daop.Engine.Placement;
using Daop.Engine.Schedule;

namespace Daop.Tests.Schedule.Characterization;

/// <summary>
/// The scenarios the placement characterization goldens cover: models (the HF fixtures, the default model and a
/// Qwen2-MoE variant with a dense first layer), every policy the CLI builds plus drift with a short window (so decode
/// re-places within the steps run), three cache ratios, and the router's own routing or a replayed recorded trace.
/// A run prefills <see cref="Prefix"/> tokens in chunks of <see cref="Chunk"/> (8 + 4: two prefill chunks), then
/// decodes <see cref="Decode"/> tokens one at a time.
/// </summary>
static class PlacementScenarios
{
    public const int Prefix = 12, Decode = 6, Chunk = 8, Context = 64;

    /// <summary>Models with goldens; "qwen2moe-dense" is qwen2moe-tiny with layer 0 dense (no trace replay: traces need every layer MoE).</summary>
    public static readonly string[] Models = ["mixtral-tiny", "qwen2moe-tiny", "olmoe-tiny", "phimoe-tiny", "tiny-mixtral-code", "qwen2moe-dense"];

    /// <summary>The CLI's policies (PolicyChoice), plus drift with a 2-token window.</summary>
    public static readonly string[] Policies =
        ["lru-on-demand", "lru-prefetch", "static-cpu", "daop-exact", "daop", "daop-exact-drift", "daop-drift", "daop-exact-drift-2", "daop-drift-2"];

    public static readonly double[] Ratios = [0.25, 0.5, 1];

    public static IEnumerable<object[]> ModelData() => Models.Select(m => new object[] { m });

    public static IEnumerable<object[]> TracedModelData() => Models.Where(m => m != "qwen2moe-dense").Select(m => new object[] { m });

    public static IPlacementPolicy Policy(string name) => name switch
    {
        "lru-on-demand" => new LruPolicy(prefetch: false),
        "lru-prefetch" => new LruPolicy(prefetch: true),
        "static-cpu" => new StaticPolicy(),
        "daop-exact" => new DaopPolicy(approximate: false),
        "daop" => new DaopPolicy(approximate: true),
        "daop-exact-drift" => new DaopPolicy(approximate: false, driftWindow: DaopPolicy.DefaultDriftWindow),
        "daop-drift" => new DaopPolicy(approximate: true, driftWindow: DaopPolicy.DefaultDriftWindow),
        "daop-exact-drift-2" => new DaopPolicy(approximate: false, driftWindow: 2),
        "daop-drift-2" => new DaopPolicy(approximate: true, driftWindow: 2),
        _ => throw new ArgumentException(name),
    };

    /// <summary>Loads <paramref name="model"/> with the given device and expert scheduler factories.</summary>
    public static MoeModel Load(string model, ModelOptions options)
    {
        options = options with { ContextLength = Context, MaxChunkTokens = Chunk };
        if (model == "tiny-mixtral-code") return MoeModel.Load(TestPaths.DefaultModel, options);
        if (model != "qwen2moe-dense") return MoeModel.Load(TestPaths.Fixture(model), options);
        // Layer 0 dense: its MLP is layer 0's shared expert (intermediate 96), so the checkpoint needs no new tensor.
        string dir = TestPaths.Fixture("qwen2moe-tiny");
        return MoeModel.FromSource("qwen2moe-dense", Path.Combine(dir, "config.json"), new DenseFromShared(TensorStore.OpenDirectory(dir)), options,
            c => c with
            {
                Layers = [c.Layers[0] with { Ffn = new FfnSpec.Dense(((FfnSpec.Moe)c.Layers[0].Ffn).Shared!.Intermediate) }, .. c.Layers.Skip(1)],
            });
    }

    /// <summary>The model's reference prompt (≥ Prefix + Decode tokens).</summary>
    public static int[] Tokens(string model)
    {
        string dir = model switch
        {
            "tiny-mixtral-code" => TestPaths.DefaultModel,
            "qwen2moe-dense" => TestPaths.Fixture("qwen2moe-tiny"),
            _ => TestPaths.Fixture(model),
        };
        using var reference = TensorStore.OpenFile(Path.Combine(dir, "reference.safetensors"));
        var (ids, shape) = reference.Int64s("input_ids");
        var t = ids.Take((int)shape[1]).Select(x => (int)x).ToArray();
        Assert.True(t.Length >= Prefix + Decode, $"{model}: {t.Length} tokens");
        return t;
    }

    /// <summary>The model's routing over its reference prompt, recorded on the CPU path.</summary>
    public static RoutingTrace Trace(string model)
    {
        using var m = Load(model, new ModelOptions());
        return RoutingTrace.Record(m, Tokens(model));
    }

    /// <summary>A routing other than the model's own: <paramref name="trace"/> shifted by one token.</summary>
    public static RoutingTrace Shifted(RoutingTrace trace) => new()
    {
        Layers = trace.Layers, Experts = trace.Experts, TopK = trace.TopK, Tokens = trace.Tokens - 1,
        TrueIds = trace.TrueIds[(trace.Layers * trace.TopK)..], TrueWeights = trace.TrueWeights[(trace.Layers * trace.TopK)..],
        PredictedIds = trace.PredictedIds[(trace.Layers * trace.TopK)..], PredictedLogits = trace.PredictedLogits[(trace.Layers * trace.Experts)..],
    };

    /// <summary>A recorded replay of the model's shifted routing, or null for models with dense layers.</summary>
    public static TraceReplay? Replay(string model) => model == "qwen2moe-dense" ? null : new TraceReplay([Shifted(Trace(model))]);

    /// <summary>Runs the prefill and decode steps; after each forward call hands its logits to <paramref name="step"/>.</summary>
    public static void Run(MoeModel model, int[] tokens, Action<float[]> step)
    {
        int v = model.Config.VocabSize;
        var cache = model.NewCache();
        var prefill = new float[Prefix * v];
        model.Forward(tokens.AsSpan(0, Prefix), 0, cache, prefill, allLogits: true);
        step(prefill);
        for (int i = 0; i < Decode; i++)
        {
            var logits = new float[v];
            model.Forward(tokens.AsSpan(Prefix + i, 1), Prefix + i, cache, logits);
            step(logits);
        }
    }

    sealed class DenseFromShared(TensorStore store) : Daop.Engine.Load.ITensorSource
    {
        static string Map(string name) =>
            name.StartsWith("model.layers.0.mlp.", StringComparison.Ordinal) && name.EndsWith("_proj.weight", StringComparison.Ordinal)
                && !name.Contains("expert", StringComparison.Ordinal)
                ? name.Replace("model.layers.0.mlp.", "model.layers.0.mlp.shared_expert.", StringComparison.Ordinal) : name;

        public bool Contains(string name) => store.Contains(Map(name));
        public Daop.Kernels.WeightMatrix Matrix(string name, int rows, int cols) => store.Matrix(Map(name), rows, cols);
        public float[] Vector(string name, int length) => store.Vector(Map(name), length);
        public void Dispose() => store.Dispose();
    }
}
