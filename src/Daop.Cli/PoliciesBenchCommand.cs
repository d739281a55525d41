using Daop.Kernels.Gpu;
using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Daop.Engine.Schedule;
using Daop.Engine.Device.Gpu;
using Daop.Engine.Load;
using Daop.Engine.Load.Config;
using Daop.Engine.Model;
using Daop.Engine.Model.Families;
using Daop.Kernels;
using Daop.Kernels.Cpu;
using ILGPU.Runtime;
using Daop.Bench.Policies;
using Daop.Bench.Gpu;
using Daop.Bench;

namespace Daop.Cli;

/// <summary>
/// <c>daop bench policies</c>: every placement policy (all-on-GPU when it fits, lru-on-demand, lru-prefetch, static-cpu,
/// daop-exact, daop approximate) at each expert cache ratio on a GPU device, over a prompt set; one table, a JSON file
/// and an SVG plot of decode tok/s against the ratio. <c>--replay-trace</c> repeats the runs with the routing of the
/// trained tiny-mixtral-code (a recorded trace, expanded to the model's depth) in place of the model's own router.
/// </summary>
static class PoliciesBenchCommand
{
    public static Command Create()
    {
        var config = new Option<string?>("--config") { Description = "A config.json (e.g. models/configs/Mixtral-8x7B-v0.1.json): random bf16 weights of its shape." };
        var modelDir = new Option<string?>("--model") { Description = "Or a model folder: its real weights." };
        var layers = new Option<int?>("--layers") { Description = "Keep only the first N layers." };
        var distinct = new Option<int>("--distinct-matrices") { Description = "Random buffers per matrix shape (0 = every matrix its own); reuse lets a 93 GB model fit host memory.", DefaultValueFactory = _ => 0 };
        var device = new Option<string>("--device", "-d") { Description = "cuda, or ilgpu-cpu (the GPU code path on ILGPU's CPU accelerator, for testing).", DefaultValueFactory = _ => "cuda" };
        var ratios = new Option<string>("--ratios") { Description = "Expert cache ratios.", DefaultValueFactory = _ => "0.25,0.5,0.75" };
        var policies = new Option<string>("--policies") { Description = $"Policies ({PolicyChoice.Names}).", DefaultValueFactory = _ => "lru-on-demand,lru-prefetch,static-cpu,daop-exact,daop" };
        var exactLayers = new Option<int>("--exact-layers") { Description = "DAOP approximate mode: layers that keep exact routing (at least 1).", DefaultValueFactory = _ => 1 };
        var prompts = new Option<int>("--prompts") { Description = "Prompts per policy and ratio (batch 1).", DefaultValueFactory = _ => 4 };
        var promptTokens = new Option<int>("--prompt-tokens") { Description = "Random tokens per prompt.", DefaultValueFactory = _ => 64 };
        var newTokens = new Option<int>("--new-tokens") { Description = "Greedy tokens generated per prompt.", DefaultValueFactory = _ => 32 };
        var replay = new Option<bool>("--replay-trace") { Description = "Also run with the router's choice replaced by a recorded trace of the trained model (expanded to this model's layers)." };
        var replayOnly = new Option<bool>("--replay-only") { Description = "With --replay-trace: skip the runs with the model's own (random) routing." };
        var traceModel = new Option<string?>("--trace-model") { Description = "Model whose routing is recorded for --replay-trace. Default: the embedded tiny-mixtral-code." };
        var traceSeqs = new Option<string?>("--trace-sequences") { Description = "Token file for the trace (input_ids [N, T]). Default: TRACE-MODEL/routing-sequences.safetensors." };
        var noAllGpu = new Option<bool>("--no-all-gpu") { Description = "Skip the all-experts-on-the-GPU row." };
        var repeats = new Option<int>("--repeats") { Description = "Runs of every (policy, ratio), interleaved across policies; rows report the median.", DefaultValueFactory = _ => 1 };
        var stream = new Option<int?>("--stream-min-tokens") { Description = "Prefill: run a CPU-resident expert with at least this many of a chunk's tokens on the GPU from a staging slot (0: never; default: 32 for bf16, scaled by the format's bytes)." };
        var precalc = new Option<int>("--precalc-threads") { Description = "DAOP approximate mode: CPU threads per pre-calculation (0: all).", DefaultValueFactory = _ => 0 };
        var json = new Option<string>("--json") { Description = "Where to write the results as JSON.", DefaultValueFactory = _ => "daop-policies.json" };
        var svg = new Option<string>("--svg") { Description = "Where to write the plot (SVG).", DefaultValueFactory = _ => "daop-policies.svg" };
        var threads = CommonOptions.Threads();
        var expertDType = CommonOptions.ExpertDType();
        var missDType = MissChoice.DType();
        var missMaxWeight = MissChoice.MaxWeight();
        var cmd = new Command("policies", "Compare placement policies on a GPU: tok/s, hit rate, predictor recall, CPU experts, transfers and waits per token; table, JSON and SVG plot.")
        {
            config, modelDir, layers, distinct, device, ratios, policies, exactLayers, prompts, promptTokens, newTokens, replay, replayOnly, traceModel, traceSeqs,
            noAllGpu, json, svg, threads, precalc, repeats, expertDType, stream, missDType, missMaxWeight,
        };
        cmd.SetAction(r => Run(new Args(r.GetValue(config), r.GetValue(modelDir), r.GetValue(layers), r.GetValue(distinct), r.GetValue(device)!,
            r.GetValue(ratios)!, r.GetValue(policies)!, r.GetValue(exactLayers), r.GetValue(prompts), r.GetValue(promptTokens), r.GetValue(newTokens),
            r.GetValue(replay), r.GetValue(replayOnly), r.GetValue(traceModel), r.GetValue(traceSeqs), !r.GetValue(noAllGpu), r.GetValue(json)!, r.GetValue(svg)!, r.GetValue(threads), r.GetValue(precalc), r.GetValue(repeats),
            WeightTypes.Parse(r.GetValue(expertDType)), r.GetValue(stream), MissChoice.Parse(r.GetValue(missDType), r.GetValue(missMaxWeight)))));
        return cmd;
    }

    sealed record Args(string? Config, string? Model, int? Layers, int Distinct, string Device, string Ratios, string Policies, int ExactLayers,
        int Prompts, int PromptTokens, int NewTokens, bool Replay, bool ReplayOnly, string? TraceModel, string? TraceSequences, bool AllGpu, string Json, string Svg, int? Threads, int PrecalcThreads, int Repeats, DType? ExpertDType, int? StreamMinTokens, MissPrecision? Miss);

    static int Run(Args a)
    {
        OptionRules.CheckOutputFile("--json", a.Json);
        OptionRules.CheckOutputFile("--svg", a.Svg);
        if (a.Threads is { } t) CpuWorkers.Configure(t);
        if ((a.Config == null) == (a.Model == null)) throw new ArgumentException("give exactly one of --config (random weights) or --model (a model folder)");
        if (a.ReplayOnly && !a.Replay) throw new ArgumentException("--replay-only needs --replay-trace");
        if (a.Device is not ("cuda" or "ilgpu-cpu")) throw new ArgumentException($"bench policies runs on a GPU device: --device cuda or ilgpu-cpu, not '{a.Device}'");
        var ratios = OptionRules.Ratios(a.Ratios);
        var specs = PolicyChoice.List(a.Policies).Select(n => new PolicySpec(PolicyChoice.Create(n, a.ExactLayers).Name, () => PolicyChoice.Create(n, a.ExactLayers))).ToList();
        var (_, target) = ModelFamilies.ReadConfig(Path.Combine(a.Model ?? "", a.Model != null ? "config.json" : a.Config!));
        target = Truncate(target, a.Layers);

        TraceReplay? replay = null;
        if (a.Replay)
        {
            var sw0 = Stopwatch.StartNew();
            string dir = a.TraceModel ?? ModelLocator.Default();
            var seqs = TokenSequences.Read(TokenSequences.PathFor(dir, a.TraceSequences));
            using var tm = MoeModel.Load(dir, new ModelOptions { ContextLength = seqs.Max(s => s.Length) + 1 });
            if (tm.Config.NumExperts != target.NumExperts || tm.Config.TopK != target.TopK)
                throw new ArgumentException($"--replay-trace: {MoeModel.FolderName(dir)} routes {tm.Config.NumExperts} experts top-{tm.Config.TopK}, " +
                    $"the benchmarked model {target.NumExperts} top-{target.TopK}; give a --trace-model of the same shape");
            var traces = TokenSequences.Record(tm, seqs).Select(tr => tr.Layers == target.NumLayers ? tr : tr.Expand(target.NumLayers)).ToList();
            replay = new TraceReplay(traces);
            Console.WriteLine($"replay: {traces.Count} traces of {traces[0].Tokens} tokens recorded on {MoeModel.FolderName(dir)} " +
                $"({tm.Config.NumLayers} layers{(tm.Config.NumLayers != target.NumLayers ? $", expanded to {target.NumLayers}" : "")}) in {sw0.Elapsed.TotalSeconds:F1} s");
            if (a.PromptTokens + a.NewTokens > traces[0].Tokens)
                Console.WriteLine($"note: {a.PromptTokens}+{a.NewTokens} positions exceed the trace's {traces[0].Tokens}; later positions wrap around");
        }

        var sw = Stopwatch.StartNew();
        var options = DeviceChoice.Options(a.Device, a.PromptTokens + a.NewTokens + 8, 0.0, null, "static-cpu") with { ExpertDType = a.ExpertDType };
        using var model = BenchCommand.SizedBy($"--prompt-tokens {a.PromptTokens} + --new-tokens {a.NewTokens}", () => a.Model != null
            ? MoeModel.Load(a.Model, options)
            : MoeModel.FromSource(Path.GetFileNameWithoutExtension(a.Config!), a.Config!, new SyntheticTensorSource(1, a.Distinct), options, c => Truncate(c, a.Layers)));
        var mc = model.Config;
        long expertBytes = model.Weights.Layers.First(l => l.Experts.Length > 0).Experts[0].ByteLength;
        string name = a.Model != null ? MoeModel.FolderName(a.Model) : Path.GetFileNameWithoutExtension(a.Config!);
        Console.WriteLine($"{name}: {mc.ModelType} x {mc.NumLayers} layers, {mc.NumExperts} experts top-{mc.TopK}, expert {expertBytes / 1e6:F1} MB " +
            $"({(a.Model != null ? "checkpoint" : "random bf16")}{(a.ExpertDType is { } et ? $", experts as {et.Name()}" : "")}); built in {sw.Elapsed.TotalSeconds:F1} s on {model.Device.Name}");
        BoundModel? bound = null;
        if (model.Device is GpuDevice { Gpu.IsCpu: false } gd)
        {
            var layout = ExpertLayout.Of(model.Weights);
            bound = new BoundModel(OffloadBench.CpuExpertGBps(OffloadBench.DistinctExperts(model.Weights, 8)),
                OffloadBench.Transfers(gd.Gpu, layout.GateType, layout.Hidden, layout.Inter, HostCopyMode.Staged, 4).GBps,
                GpuBench.GemvGBps(gd.Gpu, layout.GateType, layout.Inter, layout.Hidden, 50), expertBytes, model.Weights.DenseBytesPerToken());
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"bound: CPU experts {bound.CpuGBps:F1} GB/s, host→device {bound.PcieGBps:F1} GB/s, GPU GEMV {bound.GpuGBps:F0} GB/s (measured now); " +
                $"{bound.DenseBytesPerToken / 1e6:F0} MB of dense weights per token"));
        }
        Console.WriteLine($"{a.Prompts} prompts x {a.PromptTokens} random tokens, {a.NewTokens} greedy tokens each, batch 1; prefill/decode/e2e in tok/s; per decoded token: " +
            "CPU experts, MB copied host→device, ms waited (copies + late pre-calculations), ms of CPU expert work");
        Console.WriteLine(PolicyBenchReport.Header);
        var rows = PolicyBenchmark.Run(model, new PolicyBenchOptions
        {
            Ratios = ratios, Policies = specs, Prompts = a.Prompts, PromptTokens = a.PromptTokens, NewTokens = a.NewTokens, AllOnGpu = a.AllGpu,
            RandomRouting = !a.ReplayOnly, Bound = bound, PrecalcThreads = a.PrecalcThreads, Repeats = a.Repeats,
            StreamPrefillMinTokens = a.StreamMinTokens, MissPrecision = a.Miss,
        }, replay, r =>
        {
            Console.WriteLine(PolicyBenchReport.Line(r));
            Console.Out.Flush();
        });
        Console.WriteLine();
        Console.WriteLine("summary (speed-ups against lru-on-demand and static-cpu at the same ratio and routing):");
        Console.Write(PolicyBenchReport.Table(rows));

        var meta = new JsonObject
        {
            ["model"] = name, ["weights"] = a.Model != null ? "checkpoint" : "random-bf16", ["model_type"] = mc.ModelType,
            ["layers"] = mc.NumLayers, ["experts"] = mc.NumExperts, ["top_k"] = mc.TopK, ["expert_bytes"] = expertBytes,
            ["device"] = model.Device.Name, ["cpu_threads"] = CpuWorkers.Threads,
            ["prompts"] = a.Prompts, ["prompt_tokens"] = a.PromptTokens, ["new_tokens"] = a.NewTokens, ["batch"] = 1,
            ["exact_layers"] = a.ExactLayers, ["precalc_threads"] = a.PrecalcThreads, ["stream_min_tokens"] = a.StreamMinTokens,
            ["miss_dtype"] = a.Miss?.Type.Name(), ["miss_max_weight"] = a.Miss?.MaxWeight, ["repeats"] = a.Repeats,
            ["replay_trace"] = replay == null ? null : (a.TraceModel ?? ModelLocator.DefaultName),
            ["date_utc"] = DateTime.UtcNow.ToString("u", CultureInfo.InvariantCulture),
        };
        File.WriteAllText(a.Json, PolicyBenchReport.Json(rows, meta).ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        File.WriteAllText(a.Svg, PolicyBenchReport.Svg(rows, $"{name} ({mc.NumLayers} layers) on {model.Device.Name}: decode tokens/s, batch 1"));
        Console.WriteLine($"wrote {a.Json} and {a.Svg}");
        return 0;
    }

    static ModelConfig Truncate(ModelConfig c, int? layers) =>
        layers is { } n && n < c.NumLayers ? c.Truncated(n) : c;
}
