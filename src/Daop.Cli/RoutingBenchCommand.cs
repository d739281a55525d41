using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Daop.Bench.Routing;
using Daop.Engine.Schedule;
using Daop.Engine.Load;
using Daop.Engine.Load.Safetensors;
using Daop.Engine.Model;

namespace Daop.Cli;

/// <summary>
/// <c>daop bench routing</c>: routing statistics of a model over a token file (safetensors with an
/// <c>input_ids</c> [sequences, length] tensor), in the layout of routing-analysis.json; when the model
/// folder holds a routing-analysis.json, each figure is printed beside it.
/// </summary>
static class RoutingBenchCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var sequences = CommonOptions.Sequences();
        var json = new Option<string?>("--json") { Description = "Also write the figures as JSON to this file." };
        var cmd = new Command("routing", "Predictor recall and cache hit rates of a model's routing over held-out sequences.") { model, sequences, json };
        cmd.SetAction(r => Run(r.GetValue(model), r.GetValue(sequences), r.GetValue(json)));
        return cmd;
    }

    static int Run(string? modelDir, string? seqFile, string? jsonOut)
    {
        OptionRules.CheckOutputFile("--json", jsonOut);
        string dir = modelDir ?? ModelLocator.Default();
        var seqs = TokenSequences.Read(TokenSequences.PathFor(dir, seqFile));
        using var m = MoeModel.Load(dir);
        int n = seqs.Count, len = seqs[0].Length;
        var traces = TokenSequences.Record(m, seqs);

        var result = new JsonObject
        {
            ["model"] = MoeModel.FolderName(dir),
            ["experts"] = m.Config.NumExperts, ["top_k"] = m.Config.TopK, ["layers"] = m.Config.NumLayers,
            ["sequences"] = n, ["seq_len"] = len,
            ["next_layer_predictor_recall"] = Array(RoutingStatistics.PredictorRecall(traces)),
            ["next_layer_predictor_top1"] = Array(RoutingStatistics.PredictorTop1(traces)),
        };
        var hits = new JsonObject();
        foreach (double ratio in new[] { 0.25, 0.5, 0.75 })
        {
            int cache = (int)Math.Round(ratio * m.Config.NumExperts);
            var h = RoutingStatistics.DecodeHitRates(traces, cache);
            hits[ratio.ToString(System.Globalization.CultureInfo.InvariantCulture)] = new JsonObject
            {
                ["cache_experts_per_layer"] = cache, ["lru_hit_rate"] = h.Lru,
                ["daop_prefill_counts_hit_rate"] = h.DaopPrefillCounts, ["static_global_freq_hit_rate"] = h.StaticGlobal,
            };
        }
        result["decode_hit_rates"] = hits;
        result["segment_cache_best_hit_rate_seg16_cache2k"] = Array(RoutingStatistics.SegmentCacheBestHitRate(traces, 16, 2 * m.Config.TopK));

        string refPath = Path.Combine(dir, "routing-analysis.json");
        var reference = File.Exists(refPath) ? JsonNode.Parse(File.ReadAllText(refPath)) : null;
        Print(result, reference, "");
        if (jsonOut != null) File.WriteAllText(jsonOut, result.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        return 0;
    }

    static JsonArray Array(double[] xs) => new(xs.Select(x => (JsonNode)JsonValue.Create(x)).ToArray());

    static void Print(JsonNode node, JsonNode? reference, string path)
    {
        switch (node)
        {
            case JsonObject o:
                foreach (var (k, v) in o) Print(v!, reference?[k], path.Length == 0 ? k : $"{path}.{k}");
                break;
            case JsonArray a:
                for (int i = 0; i < a.Count; i++) Print(a[i]!, reference is JsonArray ra && i < ra.Count ? ra[i] : null, $"{path}[{i}]");
                break;
            default:
                string mine = node.GetValueKind() == JsonValueKind.Number && node.ToString().Contains('.') ? node.GetValue<double>().ToString("F4") : node.ToString();
                string theirs = reference is JsonValue rv && rv.GetValueKind() == JsonValueKind.Number && rv.ToString().Contains('.')
                    ? $"   reference {rv.GetValue<double>():F4}  Δ {Math.Abs(rv.GetValue<double>() - node.GetValue<double>()):F4}" : "";
                Console.WriteLine($"{path,-55} {mine}{theirs}");
                break;
        }
    }
}
