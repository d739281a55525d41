using System.Numerics.Tensors;
using System.Text.Json.Nodes;
using Daop.Engine.Device.Cpu;
using Daop.Engine.Model;
using Daop.Engine.Model.Layers;
using Daop.Engine.Placement;
using Daop.Engine.Schedule;
using Daop.Kernels;

namespace Daop.Bench.Policies;

/// <summary>What <see cref="AccuracyStudy.Run"/> measures.</summary>
public sealed record AccuracyOptions
{
    /// <summary>Expert cache ratios (fractions of routed experts counted as on the GPU).</summary>
    public IReadOnlyList<double> Ratios { get; init; } = [0.25, 0.5, 0.75];
    /// <summary>Tokens of each sequence used (default: all); the first half is the prompt, the second is scored.</summary>
    public int? Length { get; init; }
    /// <summary>Greedy tokens generated from each first-half prompt and compared with the exact model's.</summary>
    public int GreedyTokens { get; init; } = 64;
    /// <summary>
    /// Mixed precision on a miss to study (<see cref="PlacementDriver.MissPrecision"/>): each policy at each ratio runs once
    /// per entry (null: off). Default: off only.
    /// </summary>
    public IReadOnlyList<MissPrecision?> MissPrecisions { get; init; } = [null];
}

/// <summary>One policy at one ratio (or the exact reference) over every sequence.</summary>
/// <param name="Policy">Policy name ("reference" for the all-local exact model).</param>
/// <param name="Ratio">Expert cache ratio (1 for the reference).</param>
/// <param name="ScoredTokens">Second-half tokens scored, summed over sequences.</param>
/// <param name="MeanNll">Mean negative log-likelihood (nats) of the scored tokens, teacher-forced.</param>
/// <param name="Top1Agreement">Share of scored positions whose arg-max equals the exact model's (same context).</param>
/// <param name="GreedyMatch">Share of greedy tokens equal to the exact model's at the same index.</param>
/// <param name="MeanFirstDivergence">Mean index of the first greedy token that differs (the token count when none does).</param>
/// <param name="IdenticalLogits">True if every decode step's logits equal the exact model's bit for bit.</param>
/// <param name="Decode">The scheduler's counters over the teacher-forced decode steps.</param>
public sealed record AccuracyResult(string Policy, double Ratio, int ScoredTokens, double MeanNll, double Top1Agreement,
    double GreedyMatch, double MeanFirstDivergence, bool IdenticalLogits, OffloadStats Decode)
{
    /// <summary>The row's mixed precision on a miss, or null (off).</summary>
    public MissPrecision? Miss { get; init; }

    /// <summary>exp(<see cref="MeanNll"/>).</summary>
    public double Perplexity => Math.Exp(MeanNll);
}

/// <summary>Every row of a study, the exact reference first.</summary>
public sealed record AccuracyReport(string Model, int Sequences, int Length, int GreedyTokens, AccuracyResult Reference, IReadOnlyList<AccuracyResult> Rows)
{
    /// <summary>The report as JSON (one object per row, perplexity and its change against the reference).</summary>
    public JsonObject ToJson()
    {
        JsonObject Row(AccuracyResult r) => new()
        {
            ["policy"] = r.Policy, ["ratio"] = r.Ratio, ["scored_tokens"] = r.ScoredTokens,
            ["mean_nll"] = r.MeanNll, ["perplexity"] = r.Perplexity,
            ["perplexity_change"] = r.Perplexity - Reference.Perplexity,
            ["perplexity_change_relative"] = r.Perplexity / Reference.Perplexity - 1,
            ["top1_agreement"] = r.Top1Agreement, ["greedy_match"] = r.GreedyMatch, ["mean_first_divergence"] = r.MeanFirstDivergence,
            ["identical_logits"] = r.IdenticalLogits,
            ["gpu_hit_rate"] = r.Decode.HitRate, ["cpu_experts_per_token"] = r.Decode.PerToken(r.Decode.CpuExpertRuns),
            ["precalculated_per_token"] = r.Decode.PerToken(r.Decode.PrecalculatedRuns),
            ["precalculations_rejected_per_token"] = r.Decode.PerToken(r.Decode.PrecalculatedRejected),
            ["substitutions_per_token"] = r.Decode.PerToken(r.Decode.Substitutions),
            ["transfers_per_token"] = r.Decode.PerToken(r.Decode.Transfers), ["predictor_recall"] = r.Decode.PredictorRecall,
            ["miss_dtype"] = r.Miss?.Type.Name(), ["miss_max_weight"] = r.Miss?.MaxWeight,
            ["low_precision_runs_per_token"] = r.Decode.PerToken(r.Decode.LowPrecisionRuns),
            ["low_precision_bytes_saved_per_token"] = r.Decode.PerToken(r.Decode.LowPrecisionBytesSaved),
        };
        return new JsonObject
        {
            ["model"] = Model, ["sequences"] = Sequences, ["length"] = Length, ["prompt_tokens"] = Length / 2,
            ["greedy_tokens"] = GreedyTokens,
            ["reference"] = Row(Reference),
            ["rows"] = new JsonArray(Rows.Select(r => (JsonNode)Row(r)).ToArray()),
        };
    }
}

/// <summary>
/// Accuracy of the placement policies on the CPU (<see cref="CpuStandInScheduler"/>): for each held-out sequence, the
/// first half is prefilled and the second half decoded token by token feeding the true next token (teacher forcing);
/// each second-half token's loss comes from the logits that predicted it (the first from the prefill). Then greedy
/// generation of <see cref="AccuracyOptions.GreedyTokens"/> tokens from the first half is compared with the exact
/// model's. Each sequence starts from a fresh placement (the policy's Initialize with a popularity profile of the
/// prompt halves). Exact policies reproduce the reference bit for bit; DAOP's approximate mode does not.
/// </summary>
public static class AccuracyStudy
{
    /// <summary>Runs the exact reference, then every policy at every ratio. The model must run on the CPU device.</summary>
    /// <param name="model">The model (its expert scheduler is replaced while the study runs, and restored to the local one).</param>
    /// <param name="sequences">Token sequences of at least 4 tokens.</param>
    /// <param name="policies">Fresh policy objects, one call per sequence and ratio.</param>
    /// <param name="options">Ratios, length, greedy tokens.</param>
    /// <param name="progress">Called with each row as it completes (the reference first).</param>
    public static AccuracyReport Run(MoeModel model, IReadOnlyList<int[]> sequences, IReadOnlyList<Func<IPlacementPolicy>> policies,
        AccuracyOptions? options = null, Action<AccuracyResult>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(sequences);
        ArgumentNullException.ThrowIfNull(policies);
        options ??= new AccuracyOptions();
        var seqs = Prepare(model, sequences, options);
        int len = seqs[0].Length, half = len / 2;

        try
        {
            // Reference: the local (exact) scheduler; its prompt-half routing is the popularity profile.
            var counter = new PopularityCounter(model.Config.NumLayers, model.Config.NumExperts, half);
            var previous = model.Observer;
            model.Observer = counter;
            Pass reference;
            try { reference = Evaluate(model, seqs, half, options.GreedyTokens, () => Local(model), null); }
            finally { model.Observer = previous; }
            var refRow = reference.Result("reference", 1, reference);
            progress?.Invoke(refRow);
            var popularity = counter.Counts;

            var rows = new List<AccuracyResult>();
            var copies = new Dictionary<DType, MissPrecisionCopies>(); // made once per type, shared by the rows
            foreach (double ratio in options.Ratios)
                foreach (var make in policies)
                    foreach (var miss in options.MissPrecisions)
                    {
                        var slots = OffloadBudget.SlotsFromRatio(model.Config, ratio, popularity);
                        MissPrecisionCopies? copy = null;
                        if (miss != null && !copies.TryGetValue(miss.Type, out copy)) copies[miss.Type] = copy = new MissPrecisionCopies(model.Weights, miss.Type);
                        string name = "";
                        var pass = Evaluate(model, seqs, half, options.GreedyTokens, () =>
                        {
                            var p = make();
                            name = p.Name;
                            return new CpuStandInScheduler(model, p, slots, popularity, missPrecision: miss, copies: copy);
                        }, reference);
                        var row = pass.Result(miss == null ? name : $"{name} {miss}", ratio, reference) with { Miss = miss };
                        rows.Add(row);
                        progress?.Invoke(row);
                    }
            return new AccuracyReport(model.Name, seqs.Length, len,
                options.GreedyTokens, refRow, rows);
        }
        finally
        {
            model.UseExperts((m, _) => Local(m));
        }
    }

    /// <summary>
    /// Runs the exact reference on <paramref name="reference"/>, then each variant, the same weights stored in another
    /// format (quantized experts, say), with every expert local, against it: what the format costs in perplexity and
    /// agreement. Each variant is loaded when its turn comes and disposed after. Rows have ratio 1 and the variant's name.
    /// </summary>
    /// <param name="reference">The exact model, on the CPU device.</param>
    /// <param name="variants">A name and a loader per variant (same config and vocabulary, CPU device).</param>
    /// <param name="sequences">Token sequences of at least 4 tokens.</param>
    /// <param name="options">Length and greedy tokens (ratios are not used).</param>
    /// <param name="progress">Called with each row as it completes (the reference first).</param>
    public static AccuracyReport CompareVariants(MoeModel reference, IReadOnlyList<(string Name, Func<MoeModel> Load)> variants,
        IReadOnlyList<int[]> sequences, AccuracyOptions? options = null, Action<AccuracyResult>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(reference);
        ArgumentNullException.ThrowIfNull(variants);
        ArgumentNullException.ThrowIfNull(sequences);
        options ??= new AccuracyOptions();
        var seqs = Prepare(reference, sequences, options);
        int half = seqs[0].Length / 2;
        var exact = Evaluate(reference, seqs, half, options.GreedyTokens, () => Local(reference), null);
        var refRow = exact.Result("reference", 1, exact);
        progress?.Invoke(refRow);
        var rows = new List<AccuracyResult>();
        foreach (var (name, load) in variants)
        {
            using var m = load();
            if (m.Config.VocabSize != reference.Config.VocabSize || m.Config.NumLayers != reference.Config.NumLayers)
                throw new ArgumentException($"variant {name} is not the reference's model ({m.Config.NumLayers} layers, vocabulary {m.Config.VocabSize})");
            Prepare(m, seqs, options);
            var row = Evaluate(m, seqs, half, options.GreedyTokens, () => Local(m), exact).Result(name, 1, exact);
            rows.Add(row);
            progress?.Invoke(row);
        }
        return new AccuracyReport(reference.Name, seqs.Length, seqs[0].Length, options.GreedyTokens, refRow, rows);
    }

    /// <summary>Checks the model and sequences, and cuts every sequence to the common scored length.</summary>
    static int[][] Prepare(MoeModel model, IReadOnlyList<int[]> sequences, AccuracyOptions options)
    {
        if (model.Device is not CpuDevice) throw new ArgumentException($"the accuracy study runs on the CPU device, not {model.Device.Name}", nameof(model));
        if (sequences.Count == 0) throw new ArgumentException("no sequence to score", nameof(sequences));
        int len = Math.Min(options.Length ?? int.MaxValue, sequences.Min(s => s.Length));
        if (len < 4) throw new ArgumentException($"sequences of {len} tokens are too short (at least 4)", nameof(sequences));
        if (options.GreedyTokens < 0) throw new ArgumentOutOfRangeException(nameof(options), "greedy tokens must be >= 0");
        if (len + options.GreedyTokens > model.ContextLength)
            throw new ArgumentException($"{len} tokens (+{options.GreedyTokens} greedy) do not fit the context of {model.ContextLength}");
        return sequences.Select(s => s[..len]).ToArray();
    }

    static LocalExpertScheduler Local(MoeModel m) =>
        new(m.Weights, m.Config.HiddenSize, m.Config.NumExperts, m.Config.TopK, m.Config.ExpertIntermediate, m.MaxChunkTokens);

    /// <summary>−log softmax(<paramref name="logits"/>)[<paramref name="target"/>], in double precision.</summary>
    public static double Nll(ReadOnlySpan<float> logits, int target)
    {
        float max = TensorPrimitives.Max(logits);
        double sum = 0;
        foreach (float x in logits) sum += Math.Exp(x - max);
        return Math.Log(sum) + max - logits[target];
    }

    sealed class Pass
    {
        public double Nll;
        public int Scored, Agree, GreedyEqual, GreedyTotal;
        public double FirstDivergence;
        public bool Identical = true;
        public readonly OffloadStats Stats = new();
        public int[][] ArgMax = [];
        public ulong[][] Hashes = [];
        public int[][] Greedy = [];

        public AccuracyResult Result(string policy, double ratio, Pass reference) => new(policy, ratio, Scored, Nll / Scored,
            (double)Agree / Scored, GreedyTotal == 0 ? 1 : (double)GreedyEqual / GreedyTotal,
            Greedy.Length == 0 ? 0 : FirstDivergence / Greedy.Length, Identical, Stats);
    }

    static Pass Evaluate(MoeModel model, int[][] seqs, int half, int greedy, Func<IExpertScheduler> scheduler, Pass? reference)
    {
        int v = model.Config.VocabSize, len = seqs[0].Length;
        var logits = new float[v];
        var pass = new Pass
        {
            ArgMax = new int[seqs.Length][],
            Hashes = new ulong[seqs.Length][],
            Greedy = new int[seqs.Length][],
        };
        for (int s = 0; s < seqs.Length; s++)
        {
            var seq = seqs[s];
            // Teacher-forced: prefill the first half, then feed the true tokens one at a time.
            model.UseExperts((_, _) => scheduler());
            var cache = model.NewCache();
            model.Forward(seq.AsSpan(0, half), 0, cache, logits);
            var atDecode = Stats(model.Experts);
            var argmax = pass.ArgMax[s] = new int[len - half];
            var hashes = pass.Hashes[s] = new ulong[len - half];
            for (int i = half; i < len; i++)
            {
                pass.Nll += Nll(logits, seq[i]);
                pass.Scored++;
                argmax[i - half] = TensorPrimitives.IndexOfMax(logits);
                hashes[i - half] = Hash(logits);
                if (reference != null)
                {
                    if (argmax[i - half] == reference.ArgMax[s][i - half]) pass.Agree++;
                    if (hashes[i - half] != reference.Hashes[s][i - half]) pass.Identical = false;
                }
                else pass.Agree++;
                if (i + 1 < len) model.Forward(seq.AsSpan(i, 1), i, cache, logits);
            }
            if (atDecode != null) pass.Stats.Add(Stats(model.Experts)!.Since(atDecode));

            // Greedy from the first half.
            model.UseExperts((_, _) => scheduler());
            cache = model.NewCache();
            var tokens = pass.Greedy[s] = new int[greedy];
            if (greedy > 0) model.Forward(seq.AsSpan(0, half), 0, cache, logits);
            for (int i = 0; i < greedy; i++)
            {
                tokens[i] = TensorPrimitives.IndexOfMax(logits);
                if (i + 1 < greedy) model.Forward(tokens.AsSpan(i, 1), half + i, cache, logits);
            }
            if (reference != null)
            {
                var want = reference.Greedy[s];
                int first = greedy;
                for (int i = 0; i < greedy; i++)
                {
                    if (tokens[i] == want[i]) pass.GreedyEqual++;
                    else if (first == greedy) first = i;
                }
                pass.GreedyTotal += greedy;
                pass.FirstDivergence += first;
                if (first < greedy) pass.Identical = false;
            }
            else
            {
                pass.GreedyEqual += greedy;
                pass.GreedyTotal += greedy;
                pass.FirstDivergence += greedy;
            }
        }
        return pass;
    }

    static OffloadStats? Stats(IExpertScheduler s) => s switch
    {
        CpuStandInScheduler c => c.Stats,
        OffloadedExpertScheduler o => o.Stats,
        _ => null,
    };

    // FNV-1a over the logits' bits: equal hashes for bit-identical logits.
    static ulong Hash(ReadOnlySpan<float> logits)
    {
        ulong h = 14695981039346656037UL;
        foreach (float x in logits)
        {
            h ^= (uint)BitConverter.SingleToInt32Bits(x);
            h *= 1099511628211UL;
        }
        return h;
    }

    // Counts each prompt-half position's routed experts per layer.
    sealed class PopularityCounter(int layers, int experts, int prompt) : IRoutingObserver
    {
        public readonly long[,] Counts = new long[layers, experts];

        public void OnRouted(int layer, int startPos, ReadOnlySpan<float> gateInput, ReadOnlySpan<float> logits, RoutingBatch routing)
        {
            int k = routing.TopK;
            for (int i = 0; i < routing.Tokens && startPos + i < prompt; i++)
                for (int j = 0; j < k; j++) Counts[layer, routing.Experts[i * k + j]]++;
        }
    }
}
