using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Daop.Engine.Load;
using Daop.Engine.Load.Safetensors;
using Daop.Engine.Model;
using Daop.Kernels.Cpu;
using Daop.Bench.Policies;
using Daop.Kernels;

namespace Daop.Cli;

/// <summary>
/// <c>daop bench accuracy</c>: teacher-forced perplexity over the second half of held-out sequences and greedy agreement
/// with the exact model, for each placement policy at each expert cache ratio, on the CPU (see <see cref="AccuracyStudy"/>).
/// Exact policies must reproduce the reference bit for bit; DAOP's approximate mode shows what its approximation costs.
/// </summary>
static class AccuracyBenchCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var sequences = CommonOptions.Sequences();
        var ratios = new Option<string>("--ratios") { Description = "Expert cache ratios.", DefaultValueFactory = _ => "0.25,0.5,0.75" };
        var policies = new Option<string>("--policies") { Description = $"Policies ({PolicyChoice.Names}).", DefaultValueFactory = _ => "lru-on-demand,lru-prefetch,static-cpu,daop-exact,daop" };
        var exactLayers = new Option<int>("--exact-layers") { Description = "DAOP approximate mode: layers that keep exact routing (at least 1).", DefaultValueFactory = _ => 1 };
        var maxDrift = new Option<string?>("--precalc-max-drift") { Description = "Checked approximate policies: take pre-calculated outputs only while the layer's true input is within this relative distance of the stale one (e.g. 0.3,0.4: one row each); else those experts run exactly. Default: always take them." };
        var count = new Option<int?>("--count") { Description = "Use only the first N sequences." };
        var length = new Option<int?>("--length") { Description = "Use only the first T tokens of each sequence (half prompt, half scored)." };
        var greedy = new Option<int>("--greedy-tokens") { Description = "Greedy tokens generated from each prompt half and compared with the exact model.", DefaultValueFactory = _ => 64 };
        var formats = new Option<string?>("--expert-dtypes") { Description = $"Instead of policies: the model with its routed experts stored as each of these types ({string.Join(", ", WeightTypes.Names)}), all experts local, against the exact model." };
        var denseDType = CommonOptions.DenseDType();
        var random = new Option<int?>("--random-sequences") { Description = "With --expert-dtypes: this many random token sequences of --length (default 128) tokens instead of a token file (models without one, such as the test fixtures: agreement is meaningful there, perplexity is not)." };
        var json = new Option<string?>("--json") { Description = "Also write the results as JSON to this file." };
        var threads = CommonOptions.Threads();
        var missDTypes = new Option<string?>("--miss-dtypes") { Description = "Mixed precision on a miss: also each policy with misses of router weight at most each of --miss-max-weights run from a copy in each of these types (q4_0, q8_0, mxfp4); see docs/miss-precision.md." };
        var missMaxWeights = new Option<string?>("--miss-max-weights") { Description = "With --miss-dtypes: the router-weight bounds (e.g. 0.1,0.2,0.3,1)." };
        var cmd = new Command("accuracy", "Perplexity and greedy agreement of each placement policy (DAOP approximate vs exact) on the CPU.")
        {
            model, sequences, ratios, policies, exactLayers, maxDrift, count, length, greedy, formats, denseDType, random, json, threads,
            missDTypes, missMaxWeights,
        };
        cmd.SetAction(r => r.GetValue(formats) is { } f
            ? RunFormats(r.GetValue(model), r.GetValue(sequences), r.GetValue(random), f, WeightTypes.Parse(r.GetValue(denseDType)), r.GetValue(count),
                r.GetValue(length), r.GetValue(greedy), r.GetValue(json), r.GetValue(threads))
            : Run(r.GetValue(model), r.GetValue(sequences), r.GetValue(ratios)!, r.GetValue(policies)!, r.GetValue(exactLayers),
                PolicyChoice.Drifts(r.GetValue(maxDrift)), r.GetValue(count), r.GetValue(length), r.GetValue(greedy), r.GetValue(json), r.GetValue(threads),
                MissChoice.Grid(r.GetValue(missDTypes), r.GetValue(missMaxWeights))));
        return cmd;
    }

    static int Run(string? modelDir, string? seqFile, string ratioList, string policyList, int exactLayers, float[] maxDrifts, int? count, int? length,
        int greedy, string? jsonOut, int? threads, List<Engine.Schedule.MissPrecision?> misses)
    {
        OptionRules.CheckOutputFile("--json", jsonOut);
        if (threads is { } t) CpuWorkers.Configure(t);
        string dir = modelDir ?? ModelLocator.Default();
        var ratios = OptionRules.Ratios(ratioList);
        var names = PolicyChoice.List(policyList);
        var policies = PolicyChoice.Expand(names, exactLayers, maxDrifts); // validates names up front
        var seqs = TokenSequences.Read(TokenSequences.PathFor(dir, seqFile), count);
        int len = Math.Min(length ?? int.MaxValue, seqs.Min(s => s.Length));
        using var m = BenchCommand.SizedBy($"--length {len} + --greedy-tokens {greedy}",
            () => MoeModel.Load(dir, new ModelOptions { ContextLength = len + greedy + 1 }));
        Console.WriteLine($"{MoeModel.FolderName(dir)}: {seqs.Count} sequences x {len} tokens; prompt {len / 2}, " +
            $"{len - len / 2} scored teacher-forced, {greedy} greedy tokens; CPU, {CpuWorkers.Threads} threads");
        Console.WriteLine($"{"ratio",5} {"policy",-32} {"ppl",9} {"Δppl",8} {"Δ%",7} {"top1",7} {"greedy",7} {"1st div",7} {"exact?",6} {"hit",6} {"cpu/tok",8} {"pre/tok",8} {"rej/tok",8} {"recall",7}" +
            (misses.Count > 1 ? $" {"low/tok",8} {"MB saved/tok",12}" : ""));
        double refPpl = 0;
        var report = AccuracyStudy.Run(m, seqs, policies.Select(p => p.Create).ToList(),
            new AccuracyOptions { Ratios = ratios, Length = len, GreedyTokens = greedy, MissPrecisions = misses }, r =>
            {
                if (r.Policy == "reference") refPpl = r.Perplexity;
                var d = r.Decode;
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{r.Ratio,5:F2} {r.Policy,-32} {r.Perplexity,9:F4} {r.Perplexity - refPpl,8:+0.0000;-0.0000;0} {(r.Perplexity / refPpl - 1) * 100,6:+0.00;-0.00;0}% " +
                    $"{r.Top1Agreement,7:P1} {r.GreedyMatch,7:P1} {r.MeanFirstDivergence,7:F1} {(r.IdenticalLogits ? "yes" : "no"),6} " +
                    $"{(d.Activations == 0 ? "" : d.HitRate.ToString("P0", CultureInfo.InvariantCulture)),6} {d.PerToken(d.CpuExpertRuns),8:F2} " +
                    $"{d.PerToken(d.PrecalculatedRuns),8:F2} {d.PerToken(d.PrecalculatedRejected),8:F2} {d.PredictorRecall,7:F3}") +
                    (misses.Count > 1 ? string.Create(CultureInfo.InvariantCulture, $" {d.PerToken(d.LowPrecisionRuns),8:F2} {d.PerToken(d.LowPrecisionBytesSaved) / 1e6,12:F3}") : ""));
            });
        // Only DAOP's approximate mode may change the logits; every other policy must reproduce the reference.
        var approximate = policies.Select(p => p.Create()).Where(p => p.Approximate).Select(p => p.Name).ToHashSet();
        var bad = report.Rows.Where(r => !approximate.Contains(r.Policy) && r.Miss == null && !r.IdenticalLogits).ToList();
        foreach (var r in bad) Console.WriteLine($"WARNING: exact policy {r.Policy} at {r.Ratio} differs from the reference");
        if (jsonOut != null) File.WriteAllText(jsonOut, report.ToJson().ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        return bad.Count == 0 ? 0 : 1;
    }

    /// <summary>The exact model against itself with its experts (and optionally dense matrices) stored in other types.</summary>
    static int RunFormats(string? modelDir, string? seqFile, int? random, string formatList, DType? dense, int? count, int? length, int greedy,
        string? jsonOut, int? threads)
    {
        OptionRules.CheckOutputFile("--json", jsonOut);
        if (threads is { } t) CpuWorkers.Configure(t);
        string dir = modelDir ?? ModelLocator.Default();
        var formats = formatList.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
            .Select(f => (Name: f, Type: WeightTypes.Parse(f)!.Value)).ToList();
        if (formats.Count == 0) throw new ArgumentException("--expert-dtypes names no type");
        if (random != null && seqFile != null) throw new ArgumentException("give --sequences or --random-sequences, not both");
        if (random is <= 0) throw new ArgumentException($"--random-sequences must be positive, not {random}");
        var seqs = random == null ? TokenSequences.Read(TokenSequences.PathFor(dir, seqFile), count) : null;
        int len = seqs == null ? length ?? 128 : Math.Min(length ?? int.MaxValue, seqs.Min(s => s.Length));
        var options = new ModelOptions { ContextLength = len + greedy + 1 };
        using var m = BenchCommand.SizedBy($"--length {len} + --greedy-tokens {greedy}", () => MoeModel.Load(dir, options));
        if (seqs == null)
        {
            var rng = new Random(11);
            seqs = Enumerable.Range(0, random!.Value).Select(_ => Enumerable.Range(0, len).Select(_ => rng.Next(m.Config.VocabSize)).ToArray()).ToList();
        }
        Console.WriteLine($"{MoeModel.FolderName(dir)}: {seqs.Count} sequences x {len} tokens; prompt {len / 2}, " +
            $"{len - len / 2} scored teacher-forced, {greedy} greedy tokens; all experts local on the CPU, {CpuWorkers.Threads} threads");
        Console.WriteLine($"{"weights",-24} {"ppl",9} {"Δppl",8} {"Δ%",7} {"top1",7} {"greedy",7} {"1st div",7} {"exact?",6}");
        double refPpl = 0;
        string Label(DType e) => $"experts {e.Name()}" + (dense is { } d ? $", dense {d.Name()}" : "");
        var variants = formats.Select(f => (Label(f.Type), (Func<MoeModel>)(() => MoeModel.Load(dir, options with { ExpertDType = f.Type, DenseDType = dense })))).ToList();
        var report = AccuracyStudy.CompareVariants(m, variants, seqs, new AccuracyOptions { Length = len, GreedyTokens = greedy }, r =>
        {
            if (r.Policy == "reference") refPpl = r.Perplexity;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{(r.Policy == "reference" ? "as stored (exact)" : r.Policy),-24} {r.Perplexity,9:F4} {r.Perplexity - refPpl,8:+0.0000;-0.0000;0} " +
                $"{(r.Perplexity / refPpl - 1) * 100,6:+0.00;-0.00;0}% {r.Top1Agreement,7:P1} {r.GreedyMatch,7:P1} {r.MeanFirstDivergence,7:F1} {(r.IdenticalLogits ? "yes" : "no"),6}"));
        });
        if (jsonOut != null) File.WriteAllText(jsonOut, report.ToJson().ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        return 0;
    }
}

