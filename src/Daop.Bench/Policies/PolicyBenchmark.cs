using Daop.Kernels.Gpu;
using Daop.Engine.Device.Gpu;
using Daop.Engine.Generate;
using Daop.Engine.Model;
using Daop.Engine.Model.Layers;
using Daop.Engine.Placement;
using Daop.Engine.Schedule;

namespace Daop.Bench.Policies;

/// <summary>A placement policy to benchmark: its table name and a factory for fresh instances.</summary>
/// <param name="Name">Name in tables (the policy's own name).</param>
/// <param name="Create">Makes a fresh policy object.</param>
public sealed record PolicySpec(string Name, Func<IPlacementPolicy> Create);

/// <summary>What <see cref="PolicyBenchmark.Run"/> runs.</summary>
public sealed record PolicyBenchOptions
{
    /// <summary>Expert cache ratios.</summary>
    public IReadOnlyList<double> Ratios { get; init; } = [0.25, 0.5, 0.75];
    /// <summary>The policies, each at every ratio.</summary>
    public required IReadOnlyList<PolicySpec> Policies { get; init; }
    /// <summary>Prompts per (policy, ratio); each is a fresh sequence, batch 1.</summary>
    public int Prompts { get; init; } = 4;
    /// <summary>Tokens per prompt.</summary>
    public int PromptTokens { get; init; } = 64;
    /// <summary>Greedy tokens generated per prompt.</summary>
    public int NewTokens { get; init; } = 32;
    /// <summary>Seed of the random prompt tokens.</summary>
    public int Seed { get; init; } = 5;
    /// <summary>Also run everything on the GPU (ratio 1, static placement) when the device can hold it.</summary>
    public bool AllOnGpu { get; init; } = true;
    /// <summary>Run with the model's own router (set false to run only the replayed routing).</summary>
    public bool RandomRouting { get; init; } = true;
    /// <summary>DAOP's approximate mode: CPU threads per pre-calculation (<see cref="OffloadOptions.PrecalcThreads"/>; 0: all).</summary>
    public int PrecalcThreads { get; init; }
    /// <summary>Prefill streaming threshold (<see cref="OffloadOptions.StreamPrefillMinTokens"/>: null for the default, 0 off).</summary>
    public int? StreamPrefillMinTokens { get; init; }
    /// <summary>Mixed precision on a miss (<see cref="OffloadOptions.MissPrecision"/>), or null (off).</summary>
    public MissPrecision? MissPrecision { get; init; }
    /// <summary>Runs of every (policy, ratio), interleaved; each row reports the median one.</summary>
    public int Repeats { get; init; } = 1;
    /// <summary>Bandwidths for each row's per-token bound, or null for no bound.</summary>
    public BoundModel? Bound { get; init; }
    /// <summary>Device bytes kept free when deciding whether everything fits.</summary>
    public long HeadroomBytes { get; init; } = 2L << 30;
}

/// <summary>
/// This machine's bandwidths (10⁹ B/s, measured at the start of a run) and the bytes a decoded token reads, from which
/// a row's per-token bound is computed: the slowest of the three engines if each only streamed its bytes.
/// </summary>
/// <param name="CpuGBps">One-token CPU expert FFNs over experts larger than the caches.</param>
/// <param name="PcieGBps">Page-locked host→device expert copies.</param>
/// <param name="GpuGBps">GPU GEMV over bf16 weights.</param>
/// <param name="ExpertBytes">Bytes of one routed expert.</param>
/// <param name="DenseBytesPerToken">Bytes of the weights besides routed experts that one decoded token reads (<see cref="ModelWeights.DenseBytesPerToken"/>).</param>
public sealed record BoundModel(double CpuGBps, double PcieGBps, double GpuGBps, long ExpertBytes, long DenseBytesPerToken)
{
    /// <summary>max(CPU experts × expert bytes / CPU rate, bytes copied / PCIe rate, (dense + GPU experts × expert bytes) / GPU rate), in ms per token.</summary>
    public double BoundMs(OffloadStats decode)
    {
        ArgumentNullException.ThrowIfNull(decode);
        double cpu = decode.PerToken(decode.CpuExpertRuns) * ExpertBytes / CpuGBps / 1e6;
        double pcie = decode.PerToken(decode.TransferBytes) / PcieGBps / 1e6;
        double gpu = (DenseBytesPerToken + decode.PerToken(decode.GpuExpertRuns) * ExpertBytes) / GpuGBps / 1e6;
        return Math.Max(cpu, Math.Max(pcie, gpu));
    }
}

/// <summary>One policy at one ratio over every prompt.</summary>
/// <param name="Routing">"random" (the model's own router) or "replay" (a recorded trace).</param>
/// <param name="Policy">Policy name ("all-gpu" for everything resident).</param>
/// <param name="Ratio">Expert cache ratio.</param>
/// <param name="PromptTokens">Prompt tokens prefilled, summed over prompts.</param>
/// <param name="DecodeSteps">Single-token forward passes, summed over prompts.</param>
/// <param name="GeneratedTokens">Tokens generated, summed over prompts.</param>
/// <param name="PrefillSeconds">Prefill time, summed.</param>
/// <param name="DecodeSeconds">Decode time, summed.</param>
/// <param name="Decode">The scheduler's counters over the decode steps.</param>
public sealed record PolicyBenchRow(string Routing, string Policy, double Ratio, int PromptTokens, int DecodeSteps, int GeneratedTokens,
    double PrefillSeconds, double DecodeSeconds, OffloadStats Decode)
{
    /// <summary>Decode tokens per second (single-token forward passes).</summary>
    public double DecodeTokensPerSecond => DecodeSteps / Math.Max(DecodeSeconds, 1e-12);
    /// <summary>Generated tokens per second of prefill plus decode.</summary>
    public double EndToEndTokensPerSecond => GeneratedTokens / Math.Max(PrefillSeconds + DecodeSeconds, 1e-12);
    /// <summary>Prompt tokens per second.</summary>
    public double PrefillTokensPerSecond => PromptTokens / Math.Max(PrefillSeconds, 1e-12);
    /// <summary>The scheduler's counters over the prompts' prefill (null where the row did not record them).</summary>
    public OffloadStats? Prefill { get; init; }
    /// <summary>Host→device expert copies per prompt token (misses' loads and streamed experts), or null.</summary>
    public double? PrefillTransfersPerPromptToken => Prefill is { } p ? (double)p.Transfers / Math.Max(PromptTokens, 1) : null;
    /// <summary>Runs this row is the median of.</summary>
    public int Repeats { get; init; } = 1;
    /// <summary>The per-token bound (<see cref="BoundModel.BoundMs"/>) when the run measured bandwidths.</summary>
    public double? BoundMs { get; init; }
    /// <summary>Measured ms per decoded token over <see cref="BoundMs"/> (1 = at the bound).</summary>
    public double? VsBound => BoundMs is { } b && b > 0 ? 1e3 / DecodeTokensPerSecond / b : null;
    /// <summary>Decode tok/s over lru-on-demand's at the same ratio and routing (null when that row is missing).</summary>
    public double? SpeedupVsLru { get; init; }
    /// <summary>Decode tok/s over static-cpu's (Fiddler) at the same ratio and routing.</summary>
    public double? SpeedupVsStatic { get; init; }
    /// <summary>Host→device bytes per decoded token.</summary>
    public double TransferBytesPerToken => Decode.PerToken(Decode.TransferBytes);
    /// <summary>Milliseconds per decoded token the GPU stream or the host waited: copy stalls plus pre-calculations not done in time.</summary>
    public double GpuWaitMsPerToken => Decode.PerToken(Decode.CopyWaitSeconds + Decode.PrecalcWaitSeconds) * 1e3;
    /// <summary>Milliseconds of CPU expert work per decoded token (on-demand and pre-calculated).</summary>
    public double CpuMsPerToken => Decode.PerToken(Decode.CpuExpertSeconds + Decode.PrecalcSeconds) * 1e3;
}

/// <summary>
/// Runs every placement policy at every expert cache ratio on a model whose dense part is on a GPU device (CUDA or ILGPU's
/// CPU accelerator), through <see cref="OffloadedExpertScheduler"/>: N prompts of P random tokens, G greedy tokens each,
/// batch 1; decode and end-to-end tokens/s, GPU hit rate, predictor recall, CPU experts, transfers and waits per decoded
/// token. With a <see cref="TraceReplay"/> the same runs are repeated with the router's choice replaced by a recorded
/// trace (prompt i replays trace i), for random-weight models whose own routing is not realistic.
/// </summary>
public static class PolicyBenchmark
{
    /// <summary>Runs the benchmark; <paramref name="progress"/> sees each row as it completes.</summary>
    /// <param name="model">A model on a <see cref="GpuDevice"/>; its expert scheduler is replaced for each row.</param>
    /// <param name="options">Ratios, policies and the prompt set.</param>
    /// <param name="replay">Recorded routing to replay as well (checked against the model), or null for random routing only.</param>
    /// <param name="progress">Called per row (with speed-ups filled in once its reference rows exist).</param>
    public static IReadOnlyList<PolicyBenchRow> Run(MoeModel model, PolicyBenchOptions options, TraceReplay? replay = null,
        Action<PolicyBenchRow>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        if (model.Device is not GpuDevice gpu) throw new ArgumentException($"the policy benchmark needs a GPU device (cuda or ilgpu-cpu), not {model.Device.Name}", nameof(model));
        if (options.Policies.Select(x => x.Name).Distinct().Count() != options.Policies.Count)
            throw new ArgumentException($"the policy list names a policy twice: {string.Join(", ", options.Policies.Select(x => x.Name))}");
        if (options.Repeats < 1) throw new ArgumentException($"repeats must be at least 1, got {options.Repeats}");
        if (options.Prompts < 1 || options.PromptTokens < 1 || options.NewTokens < 2)
            throw new ArgumentException("the benchmark needs at least one prompt of one token and two new tokens");
        if (options.PromptTokens + options.NewTokens > model.ContextLength)
            throw new ArgumentException($"prompts of {options.PromptTokens} tokens + {options.NewTokens} new do not fit the context of {model.ContextLength}");
        replay?.Check(model.Config);
        var c = model.Config;
        var rng = new Random(options.Seed);
        var prompts = Enumerable.Range(0, options.Prompts)
            .Select(_ => Enumerable.Range(0, options.PromptTokens).Select(_ => rng.Next(c.VocabSize)).ToArray()).ToArray();
        var warm = Enumerable.Range(0, options.PromptTokens).Select(_ => rng.Next(c.VocabSize)).ToArray();
        bool allFits = options.AllOnGpu && FitsOnDevice(model, gpu, options.HeadroomBytes);

        var rows = new List<PolicyBenchRow>();
        if (!options.RandomRouting && replay == null) throw new ArgumentException("nothing to run: random routing is off and no trace is replayed");
        var routings = new List<string>();
        if (options.RandomRouting) routings.Add("random");
        if (replay != null) routings.Add("replay");
        foreach (var routing in routings)
        {
            var over = routing == "replay" ? replay : null;
            var popularity = over != null ? TracePopularity(over, options.PromptTokens) : Calibrate(model, rng);
            var mine = new List<PolicyBenchRow>();
            if (allFits)
                Add(Measure(model, routing, new PolicySpec("all-gpu", () => new StaticPolicy(name: "all-gpu")), 1, popularity, over, prompts, warm, options));
            foreach (double ratio in options.Ratios)
            {
                // Repeats go round the policies, so a slow spell of a shared host hits every policy alike; each row is
                // the repeat with the median decode rate.
                var runs = options.Policies.ToDictionary(p => p.Name, _ => new List<PolicyBenchRow>());
                for (int rep = 0; rep < options.Repeats; rep++)
                    foreach (var spec in options.Policies)
                        runs[spec.Name].Add(Measure(model, routing, spec, ratio, popularity, over, prompts, warm, options));
                foreach (var spec in options.Policies)
                {
                    var sorted = runs[spec.Name].OrderBy(x => x.DecodeTokensPerSecond).ToList();
                    Add(sorted[sorted.Count / 2] with { Repeats = sorted.Count });
                }
            }

            void Add(PolicyBenchRow row)
            {
                mine.Add(row);
                var done = WithSpeedups(mine);
                progress?.Invoke(done[^1]);
            }
            rows.AddRange(WithSpeedups(mine));
        }
        return rows;
    }

    /// <summary>Fills <see cref="PolicyBenchRow.SpeedupVsLru"/> and <see cref="PolicyBenchRow.SpeedupVsStatic"/> from the rows of the same routing and ratio.</summary>
    public static List<PolicyBenchRow> WithSpeedups(IReadOnlyList<PolicyBenchRow> rows)
    {
        ArgumentNullException.ThrowIfNull(rows);
        double? Of(PolicyBenchRow r, string policy) =>
            rows.FirstOrDefault(x => x.Routing == r.Routing && x.Ratio == r.Ratio && x.Policy == policy)?.DecodeTokensPerSecond;
        return rows.Select(r => r with
        {
            SpeedupVsLru = Of(r, "lru-on-demand") is { } l && l > 0 ? r.DecodeTokensPerSecond / l : null,
            SpeedupVsStatic = Of(r, "static-cpu") is { } s && s > 0 ? r.DecodeTokensPerSecond / s : null,
        }).ToList();
    }

    static PolicyBenchRow Measure(MoeModel model, string routing, PolicySpec spec, double ratio, long[,]? popularity, TraceReplay? over,
        int[][] prompts, int[] warm, PolicyBenchOptions o)
    {
        model.UseExperts((m, d) => OffloadedExpertScheduler.FromRatio(m, d, spec.Create(), ratio, popularity,
            new OffloadOptions { RoutingOverride = over, PrecalcThreads = o.PrecalcThreads, StreamPrefillMinTokens = o.StreamPrefillMinTokens,
                MissPrecision = o.MissPrecision }));
        var sched = (OffloadedExpertScheduler)model.Experts;
        var gen = new Generator(model);
        var sampling = new SamplingOptions { MaxNewTokens = o.NewTokens, StopTokenIds = [] };
        if (over != null) over.Sequence = prompts.Length;
        foreach (var _ in gen.Generate(warm, sampling with { MaxNewTokens = 3 })) { } // warm-up: kernels for this chunk size, first copies
        OffloadStats total = new(), prefillTotal = new();
        int promptTokens = 0, steps = 0, generated = 0;
        double prefill = 0, decode = 0;
        for (int i = 0; i < prompts.Length; i++)
        {
            if (over != null) over.Sequence = i;
            var stats = new GenerationStats();
            OffloadStats? atDecode = null;
            var atStart = sched.Stats;
            foreach (var _ in gen.Generate(prompts[i], sampling, stats))
                atDecode ??= sched.Stats;
            sched.Synchronize();
            total.Add(sched.Stats.Since(atDecode!));
            prefillTotal.Add(atDecode!.Since(atStart));
            promptTokens += stats.PromptTokens;
            steps += stats.DecodeSteps;
            generated += stats.GeneratedTokens;
            prefill += stats.PrefillTime.TotalSeconds;
            decode += stats.DecodeTime.TotalSeconds;
        }
        return new PolicyBenchRow(routing, spec.Name, ratio, promptTokens, steps, generated, prefill, decode, total)
        {
            BoundMs = o.Bound?.BoundMs(total), Prefill = prefillTotal,
        };
    }

    /// <summary>True if every expert and the dense part fit the device with <paramref name="headroom"/> bytes to spare.</summary>
    public static bool FitsOnDevice(MoeModel model, GpuDevice device, long headroom)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(device);
        var c = model.Config;
        long experts = (long)c.MoeLayerCount * c.NumExperts * ExpertLayout.Of(model.Weights).ExpertBytes;
        long need = OffloadBudget.DenseBytes(model, model.MaxChunkTokens) + experts + headroom;
        return need <= device.Gpu.MemorySize;
    }

    // Popularity for the initial placements under random routing: the router's choices over one random calibration prompt.
    static long[,] Calibrate(MoeModel model, Random rng)
    {
        var c = model.Config;
        var counter = new Counter(c.NumLayers, c.NumExperts);
        var tokens = Enumerable.Range(0, Math.Min(64, model.ContextLength - 1)).Select(_ => rng.Next(c.VocabSize)).ToArray();
        var previous = model.Observer;
        model.Observer = counter;
        try { model.Forward(tokens, 0, model.NewCache(), new float[c.VocabSize]); }
        finally { model.Observer = previous; }
        return counter.Counts;
    }

    /// <summary>Popularity under a replayed trace: every trace's routing over its first <paramref name="prompt"/> positions.</summary>
    public static long[,] TracePopularity(TraceReplay replay, int prompt)
    {
        ArgumentNullException.ThrowIfNull(replay);
        var t0 = replay.Traces[0];
        var counts = new long[t0.Layers, t0.Experts];
        foreach (var tr in replay.Traces)
            for (int t = 0; t < Math.Min(prompt, tr.Tokens); t++)
                for (int l = 0; l < tr.Layers; l++)
                    foreach (int e in tr.True(t, l)) counts[l, e]++;
        return counts;
    }

    sealed class Counter(int layers, int experts) : IRoutingObserver
    {
        public readonly long[,] Counts = new long[layers, experts];

        public void OnRouted(int layer, int startPos, ReadOnlySpan<float> gateInput, ReadOnlySpan<float> logits, RoutingBatch routing)
        {
            for (int i = 0; i < routing.Tokens * routing.TopK; i++) Counts[layer, routing.Experts[i]]++;
        }
    }
}
