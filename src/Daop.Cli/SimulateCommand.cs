using System.CommandLine;
using System.Globalization;
using Daop.Engine.Load;
using Daop.Engine.Load.Safetensors;
using Daop.Engine.Model;
using Daop.Engine.Placement;
using Daop.Engine.Schedule;
using Daop.Kernels;

namespace Daop.Cli;

/// <summary>
/// <c>daop bench simulate</c>: replays routing traces of a real model under every placement policy with a
/// cost model built from bandwidths, optionally projected onto a deeper, larger model (Mixtral-8x7B).
/// </summary>
static class SimulateCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var sequences = CommonOptions.Sequences();
        var ratios = new Option<string>("--ratios") { Description = "Expert cache ratios.", DefaultValueFactory = _ => "0.25,0.5,0.75" };
        var project = new Option<string>("--project") { Description = "Cost shapes: 'model' (the traced model) or 'mixtral-8x7b' (32 layers, traces expanded).", DefaultValueFactory = _ => "mixtral-8x7b" };
        var gpu = new Option<double>("--gpu-gbps") { Description = "GPU memory bandwidth (H100, measured: 2729).", DefaultValueFactory = _ => 2729 };
        var cpu = new Option<double>("--cpu-gbps") { Description = "CPU expert bandwidth (device host, 16 cores).", DefaultValueFactory = _ => 80 };
        var pcie = new Option<double>("--pcie-gbps") { Description = "Host→device copy bandwidth (pinned, measured: 52).", DefaultValueFactory = _ => 52 };
        var slowdown = new Option<double>("--cpu-slowdown-while-copying") { Description = "CPU expert time factor while a copy runs (H100 host, measured by bench gpu: 1.29).", DefaultValueFactory = _ => 1.29 };
        var promptTokens = new Option<int?>("--prompt-tokens") { Description = "Prompt positions of each trace (default: half of it); the initial placement counts every trace's prompt." };
        var newTokens = new Option<int?>("--new-tokens") { Description = "Decoded positions after the prompt (default: the rest of the trace)." };
        var traceCount = new Option<int?>("--traces") { Description = "Replay only the first N traces (as bench policies replays trace i for prompt i)." };
        var layerUs = new Option<double?>("--dense-layer-us") { Description = "GPU time of one layer's dense part with its launches and host round trip (default: bytes at --gpu-gbps plus 8 launches of 5 us; H100, from the all-on-GPU 8-layer decode: 360)." };
        var drift = new Option<int>("--drift-window") { Description = "Tokens the -drift rows' decode-time placement averages over.", DefaultValueFactory = _ => DaopPolicy.DefaultDriftWindow };
        var maxDrift = new Option<string?>("--precalc-max-drift") { Description = "Also the checked approximate modes with pre-calculations taken only within these input drifts (e.g. 0.3,0.4; the traces record each layer's), one row each." };
        var missDTypes = new Option<string?>("--miss-dtypes") { Description = "Mixed precision on a miss: also the policies that run misses on the CPU with misses of router weight at most each of --miss-max-weights read from a copy in each of these types (its bytes over the experts' scale the CPU cost); see docs/miss-precision.md." };
        var missMaxWeights = new Option<string?>("--miss-max-weights") { Description = "With --miss-dtypes: the router-weight bounds (e.g. 0.1,0.2,0.3,1)." };
        var cmd = new Command("simulate", "Compare placement policies by replaying routing traces with a bandwidth cost model.")
        {
            model, sequences, ratios, project, gpu, cpu, pcie, slowdown, promptTokens, newTokens, traceCount, layerUs, drift, maxDrift,
            missDTypes, missMaxWeights,
        };
        cmd.SetAction(r => Run(r.GetValue(model), r.GetValue(sequences), r.GetValue(ratios)!, r.GetValue(project)!,
            r.GetValue(gpu), r.GetValue(cpu), r.GetValue(pcie), r.GetValue(slowdown), r.GetValue(promptTokens), r.GetValue(newTokens),
            r.GetValue(traceCount), r.GetValue(layerUs), r.GetValue(drift), PolicyChoice.Drifts(r.GetValue(maxDrift)),
            MissChoice.Grid(r.GetValue(missDTypes), r.GetValue(missMaxWeights))));
        return cmd;
    }

    static int Run(string? modelDir, string? seqFile, string ratioList, string project, double gpuGBps, double cpuGBps, double pcieGBps,
        double slowdown, int? promptTokens, int? newTokens, int? traceCount, double? layerUs, int driftWindow, float[] maxDrifts,
        List<MissPrecision?> misses)
    {
        string dir = modelDir ?? ModelLocator.Default();
        var ratios = OptionRules.Ratios(ratioList);
        var seqs = TokenSequences.Read(TokenSequences.PathFor(dir, seqFile));
        using var m = MoeModel.Load(dir);
        int n = seqs.Count, len = seqs[0].Length;
        var traces = TokenSequences.Record(m, seqs);

        var c = m.Config;
        long expertBytes, denseBytes, headBytes;
        int layers;
        DType expertType; // the experts' stored type, whose bytes a low-precision copy's are compared with
        int expertCols;
        if (project == "mixtral-8x7b")
        {
            layers = 32;
            traces = traces.Select(t => t.Expand(layers)).ToList();
            expertBytes = 3L * 4096 * 14336 * 2;
            denseBytes = (2L * 4096 * 4096 + 2L * 1024 * 4096 + 8 * 4096) * 2;
            headBytes = 2L * 32000 * 4096 * 2 / 2; // lm_head only; the embedding row is a gather
            expertType = DType.BF16;
            expertCols = 4096;
        }
        else if (project == "model")
        {
            layers = c.NumLayers;
            expertBytes = m.Weights.Layers[0].Experts[0].ByteLength; // traces need every layer to be MoE
            expertType = m.Weights.Layers[0].Experts[0].Gate.Type;
            expertCols = c.HiddenSize;
            headBytes = m.Weights.LmHead.W.ByteLength;
            denseBytes = (m.Weights.DenseBytesPerToken() - headBytes) / layers; // per layer, shared experts included
        }
        else throw new ArgumentException($"--project must be 'model' or 'mixtral-8x7b', got '{project}'");

        var cost = CostModel.FromBandwidths(expertBytes, denseBytes, headBytes, gpuGBps, cpuGBps, pcieGBps, cpuSlowdownWhileCopying: slowdown);
        if (layerUs is { } lu) cost = cost with { DenseLayerUs = lu };
        int prefill = promptTokens ?? len / 2, decode = newTokens ?? len - prefill;
        if (prefill < 1 || decode < 1 || prefill + decode > len)
            throw new ArgumentException($"--prompt-tokens {prefill} + --new-tokens {decode} must be positive and fit the traces' {len} tokens");
        if (traceCount is { } tc && tc > n) throw new ArgumentException($"--traces must be 1..{n}, got {tc}");
        // Calibration profile for the initial placement: global counts over every trace's prompt part.
        var popularity = new long[layers, c.NumExperts];
        foreach (var t in traces)
            for (int i = 0; i < prefill; i++)
                for (int l = 0; l < layers; l++)
                    foreach (int e in t.True(i, l)) popularity[l, e]++;
        traces = traces.Take(traceCount ?? n).Select(t => t.Take(prefill + decode)).ToList();

        Console.WriteLine($"traces: {traces.Count} of {n} x {len} tokens of {MoeModel.FolderName(dir)}; {prefill} prompt, {decode} decoded; " +
            $"costs for {project} ({layers} layers, expert {expertBytes / 1e6:F0} MB) at GPU {gpuGBps} GB/s, CPU {cpuGBps} GB/s (x{slowdown} beside copies), PCIe {pcieGBps} GB/s");
        bool study = misses.Count > 1;
        Console.WriteLine($"{"ratio",5} {"policy",-32} {"tok/s",8} {"vs lru",7} {"vs cpu",7} {"hit",6} {"cpu/tok",8} {"xfer/tok",9} {"wait us",9} {"recall",7}" +
            (study ? $" {"low/tok",8}" : ""));
        foreach (double ratio in ratios)
        {
            var slots = SlotBudget.FromRatio(ratio, layers, c.NumExperts, popularity);
            var results = new List<SimulationResult>();
            foreach (var miss in misses)
                foreach (var p in Policies(driftWindow, maxDrifts))
                {
                    if (miss != null && p.Name.StartsWith("lru", StringComparison.Ordinal)) continue; // loads keep full precision: nothing changes
                    var missCost = miss == null ? cost : cost with { LowPrecisionBytesRatio = (double)miss.Type.RowBytes(expertCols) / expertType.RowBytes(expertCols) };
                    var x = TraceSimulator.Run(traces, p, slots, missCost, prefill, popularity, miss);
                    results.Add(miss == null ? x : x with { Policy = $"{x.Policy} {miss}" });
                }
            double lru = results.First(x => x.Policy == "lru-on-demand").TokensPerSecond;
            double fid = results.First(x => x.Policy == "static-cpu").TokensPerSecond;
            foreach (var x in results)
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{ratio,5:F2} {x.Policy,-32} {x.TokensPerSecond,8:F2} {x.TokensPerSecond / lru,6:F2}x {x.TokensPerSecond / fid,6:F2}x " +
                    $"{x.HitRate,6:P0} {x.CpuExpertsPerToken,8:F2} {x.TransfersPerToken,9:F2} {x.GpuWaitUsPerToken,9:F0} {x.PredictorRecall,7:F3}") +
                    (study ? string.Create(CultureInfo.InvariantCulture, $" {x.LowPrecisionRunsPerToken,8:F2}") : ""));
        }
        return 0;
    }

    static IEnumerable<IPlacementPolicy> Policies(int driftWindow, float[] maxDrifts) =>
        [new LruPolicy(false), new LruPolicy(true), new StaticPolicy(), new DaopPolicy(approximate: false), new DaopPolicy(approximate: true),
            new DaopPolicy(approximate: true, use: PredictionUse.Check),
            new DaopPolicy(approximate: true, use: PredictionUse.CheckDegrade), new DaopPolicy(approximate: false, driftWindow: driftWindow), new DaopPolicy(approximate: true, driftWindow: driftWindow),
            .. maxDrifts.SelectMany(d => new IPlacementPolicy[]
            {
                new DaopPolicy(approximate: true, use: PredictionUse.Check, precalcMaxDrift: d),
                new DaopPolicy(approximate: true, use: PredictionUse.CheckDegrade, precalcMaxDrift: d),
            })];
}
