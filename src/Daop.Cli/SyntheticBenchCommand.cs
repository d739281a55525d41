using System.CommandLine;
using System.Diagnostics;
using Daop.Engine.Device.Gpu;
using Daop.Engine.Device.Gpu.Cuda;
using Daop.Engine.Generate;
using Daop.Engine.Load;
using Daop.Engine.Model;
using Daop.Engine.Schedule;
using Daop.Kernels;
using Daop.Kernels.Cpu;
using Daop.Bench.Gpu;
using Daop.Bench;
using Daop.Bench.Kernels;

namespace Daop.Cli;

/// <summary>
/// <c>daop bench synthetic</c>: a model of any config's shape with random bf16 weights built in host memory
/// (optionally truncated to fewer layers), run end to end: prefill and decode tokens/s, and decode as a
/// fraction of the memory-bandwidth bound (active weight bytes per token / measured GEMV bandwidth).
/// </summary>
static class SyntheticBenchCommand
{
    public static Command Create()
    {
        var config = new Option<string?>("--config") { Description = "A config.json (e.g. models/configs/Mixtral-8x7B-v0.1.json): random weights of its shape." };
        var modelDir = new Option<string?>("--model") { Description = "Or a model folder: its real weights." };
        var layers = new Option<int?>("--layers") { Description = "Keep only the first N layers." };
        var device = CommonOptions.Device();
        var ratios = new Option<string?>("--ratios") { Description = "With --device cuda: expert cache ratios to offload at (e.g. 0.25,0.5,0.75); each runs every policy." };
        var policies = new Option<string>("--policies") { Description = $"Policies for --ratios ({PolicyChoice.Names}).", DefaultValueFactory = _ => "lru-on-demand,lru-prefetch,static-cpu,daop-exact" };
        var distinct = new Option<int>("--distinct-matrices") { Description = "Random buffers per matrix shape (0 = every matrix its own); reuse lets a 93 GB model fit host memory.", DefaultValueFactory = _ => 0 };
        var promptTokens = new Option<int>("--prompt-tokens") { DefaultValueFactory = _ => 128 };
        var newTokens = new Option<int>("--new-tokens") { DefaultValueFactory = _ => 128 };
        var expertDType = CommonOptions.ExpertDType();
        var denseDType = CommonOptions.DenseDType();
        var sequences = new Option<string?>("--sequences")
        {
            Description = "Also decode this many sequences together (e.g. 1,4,16,32: continuous batching without a server), each against its bytes-read bound.",
        };
        var images = new Option<HostImageTiming>("--host-images")
        {
            Description = "With --ratios: when the page-locked images of copied experts are made (Auto: in the background from the start on CUDA).",
            DefaultValueFactory = _ => HostImageTiming.Auto,
        };
        var cmd = new Command("synthetic", "Benchmark a model shape with random weights held in host memory.")
        {
            config, modelDir, layers, device, ratios, policies, distinct, promptTokens, newTokens, expertDType, denseDType, images, sequences,
        };
        cmd.SetAction(r => Run(r.GetValue(config), r.GetValue(modelDir), r.GetValue(layers), r.GetValue(device)!, r.GetValue(ratios),
            r.GetValue(policies)!, r.GetValue(distinct), r.GetValue(promptTokens), r.GetValue(newTokens),
            WeightTypes.Parse(r.GetValue(expertDType)), WeightTypes.Parse(r.GetValue(denseDType)), r.GetValue(images),
            r.GetValue(sequences)));
        return cmd;
    }

    static int Run(string? configPath, string? modelDir, int? layers, string device, string? ratioList, string policyList, int distinct,
        int promptTokens, int newTokens, DType? expertDType, DType? denseDType, HostImageTiming images, string? sequenceList)
    {
        if ((configPath == null) == (modelDir == null)) throw new ArgumentException("give exactly one of --config (random weights) or --model (a model folder)");
        var sw = Stopwatch.StartNew();
        var combos = (ratioList != null ? OptionRules.Ratios(ratioList) : [])
            .SelectMany(r => PolicyChoice.List(policyList).Select(p => (Ratio: r, Policy: p))).ToList();
        var offload = new OffloadOptions { Images = images };
        int[] counts = sequenceList != null ? OptionRules.Counts(sequenceList) : [];
        // A batched step of N sequences needs a forward chunk of N tokens, which the context bounds.
        int context = Math.Max(promptTokens + newTokens + 1, counts.Length > 0 ? counts.Max() : 0);
        var options = DeviceChoice.Options(device, context, combos.Count > 0 ? combos[0].Ratio : null, null,
            combos.Count > 0 ? combos[0].Policy : "static-cpu", offload: offload) with { ExpertDType = expertDType, DenseDType = denseDType };
        using var model = BenchCommand.SizedBy($"--prompt-tokens {promptTokens} + --new-tokens {newTokens}", () => modelDir != null
            ? MoeModel.Load(modelDir, options)
            : MoeModel.FromSource(Path.GetFileNameWithoutExtension(configPath!), configPath!, new SyntheticTensorSource(1, distinct), options,
                c => layers is { } n && n < c.NumLayers ? c.Truncated(n) : c));
        var c = model.Config;
        long expertBytes = model.Weights.Layers[0].Experts[0].ByteLength;
        long dense = 0; // attention matrices and routers
        foreach (var l in model.Weights.Layers)
        {
            l.Attention.Visit((in WeightMatrix m, bool _) => dense += m.ByteLength, _ => { });
            dense += l.Router?.W.ByteLength ?? 0;
        }
        long active = dense + c.NumLayers * c.TopK * expertBytes + model.Weights.LmHead.W.ByteLength;
        long total = dense + c.NumLayers * c.NumExperts * expertBytes + model.Weights.LmHead.W.ByteLength + model.Weights.Embed.ByteLength;
        Console.WriteLine($"{c.ModelType} x {c.NumLayers} layers, {(modelDir != null ? "checkpoint" : "random bf16")}: {total / 1e9:F1} GB of weights, {active / 1e9:F2} GB active per token; built in {sw.Elapsed.TotalSeconds:F1} s on {model.Device.Name}");

        if (model.Conversion is { } conversion)
            Console.WriteLine($"load: {conversion} ({conversion.SourceBytes / conversion.Seconds / 1e9:F2} GB/s of source weights, {CpuWorkers.Threads} threads)");

        var gen = new Generator(model);
        var rng = new Random(5);
        var prompt = Enumerable.Range(0, promptTokens).Select(_ => rng.Next(c.VocabSize)).ToArray();
        if (combos.Count > 0) return Offloaded(model, gen, prompt, newTokens, combos, offload);
        // Launches and graph steps per decoded token: the warm-up (4 tokens) and the timed run share a prompt, so their
        // difference over the extra decode steps is the decode step's own count.
        var gpu = model.Device as GpuDevice;
        long launches0 = gpu?.Launches ?? 0, steps0 = gpu?.StepsRun ?? 0;
        var warm = new GenerationStats();
        foreach (var _ in gen.Generate(prompt, new SamplingOptions { MaxNewTokens = 4, StopTokenIds = [] }, warm)) { }
        long launches1 = gpu?.Launches ?? 0, steps1 = gpu?.StepsRun ?? 0;
        var stats = new GenerationStats();
        foreach (var _ in gen.Generate(prompt, new SamplingOptions { MaxNewTokens = newTokens, StopTokenIds = [] }, stats)) { }
        long launches2 = gpu?.Launches ?? 0, steps2 = gpu?.StepsRun ?? 0;   // before the GEMV probe below launches its own
        Console.WriteLine($"prefill {promptTokens} tokens: {stats.PrefillTokensPerSecond:F0} tok/s; decode {stats.DecodeSteps} tokens: {stats.DecodeTokensPerSecond:F1} tok/s");
        double? gpuGBps = null;
        if (gpu != null)
        {
            double gbps = GpuBench.GemvGBps(gpu.Gpu, DType.BF16, 14336, 4096, 100);
            gpuGBps = gbps;
            double bound = gbps * 1e9 / active;
            Console.WriteLine($"GPU GEMV bandwidth {gbps:F0} GB/s → bound {bound:F0} tok/s; decode reaches {stats.DecodeTokensPerSecond / bound:P0} of it; " +
                $"{launches2} launches so far, {gpu.AllocatedBytes / 1e9:F1} GB on the device" +
                (model.Experts is GpuExpertScheduler s ? $"; decode routed on the {(s.RoutesOnDevice ? "GPU" : "host")}" : ""));
            int extra = stats.DecodeSteps - warm.DecodeSteps;
            if (extra > 0)
            {
                double launchesPerToken = ((launches2 - launches1) - (launches1 - launches0)) / (double)extra;
                double stepsPerToken = ((steps2 - steps1) - (steps1 - steps0)) / (double)extra;
                Console.WriteLine($"per decoded token: {launchesPerToken:F0} kernel launches, {stepsPerToken:F2} queue-only steps " +
                    (gpu.StepGraphs && gpu.Gpu is CudaGpu ? "(each captured and replayed as one CUDA graph launch)" : "(launched one by one)"));
            }
        }
        if (counts.Length > 0) Batched(model, counts, promptTokens, newTokens, gpuGBps);
        return 0;
    }

    // N sequences decoding together, each N a row against the bytes-read bound of its steps.
    static void Batched(MoeModel model, int[] counts, int promptTokens, int newTokens, double? gpuGBps)
    {
        double gbps = gpuGBps ?? MemoryBandwidth.MeasureReadGBps(1L << 31);
        Console.WriteLine($"batched sequences ({promptTokens}-token prompts, {newTokens} decode steps); bound: per step the dense matrices once and each " +
            $"routed expert once, at {gbps:F0} GB/s ({(gpuGBps != null ? "GPU GEMV" : "host memory read")})");
        Console.WriteLine($"{"seqs",5} {"prefill",8} {"decode",8} {"ms/step",8} {"experts/step",13} {"GB/step",8} {"bound",8} {"of bound",9} {"launches",9}  (tok/s of all sequences; kernel launches per decode step)");
        foreach (int n in counts)
        {
            var r = BatchDecodeBench.Run(model, n, promptTokens, newTokens, gbps);
            Console.WriteLine($"{n,5} {r.PrefillTokensPerSecond,8:F0} {r.DecodeTokensPerSecond,8:F1} {r.StepMilliseconds,8:F2} {r.ExpertsPerStep,6:F1} of {r.ExpertsInModel,-3} " +
                $"{r.BytesPerStep / 1e9,8:F2} {r.BoundTokensPerSecond,8:F0} {r.OfBound,9:P0} {r.LaunchesPerStep,9:F0}");
        }
    }

    // Every (ratio, policy) on the one loaded model: dense weights stay on the GPU, the expert scheduler is rebuilt.
    static int Offloaded(MoeModel model, Generator gen, int[] prompt, int newTokens, List<(double Ratio, string Policy)> combos,
        OffloadOptions offload)
    {
        Console.WriteLine($"{"ratio",5} {"policy",-14} {"1st pf",7} {"images",6} {"img s",6} {"prefill",8} {"decode",8} {"hit",5} {"cpu/tok",8} {"xfer/tok",9} {"GB/tok",7} {"wait ms",8} {"cpu ms",7}  (tok/s; per decoded token)");
        for (int i = 0; i < combos.Count; i++)
        {
            var (ratio, policy) = combos[i];
            if (i > 0) model.UseExperts(DeviceChoice.Experts(ratio, null, policy, offload: offload));
            var sched = (OffloadedExpertScheduler)model.Experts;
            foreach (var _ in gen.Generate(prompt[..8], new SamplingOptions { MaxNewTokens = 2, StopTokenIds = [] })) { } // warm-up
            // The first whole prompt after placement pays what is made on first use (kernels of its sizes, page-locked
            // expert images not yet made in the background): reported apart from the measured run that follows it, with
            // the images made by its end and the thread-seconds they took.
            var store = (sched.Offload as GpuExpertOffload)?.Store;
            var first = new GenerationStats();
            foreach (var _ in gen.Generate(prompt, new SamplingOptions { MaxNewTokens = 1, StopTokenIds = [] }, first)) { }
            double imageSeconds = store?.ImageSeconds ?? 0;
            int images = store?.ImagesMade ?? 0;
            var stats = new GenerationStats();
            OffloadStats? atDecode = null;
            int n = 0;
            foreach (var _ in gen.Generate(prompt, new SamplingOptions { MaxNewTokens = newTokens, StopTokenIds = [] }, stats))
                if (n++ == 0) atDecode = sched.Stats.Snapshot();
            var d = sched.Stats.Since(atDecode!);
            double per = Math.Max(1, d.Tokens);
            Console.WriteLine($"{ratio,5:F2} {policy,-14} {first.PrefillTokensPerSecond,7:F0} {images,6} {imageSeconds,6:F2} {stats.PrefillTokensPerSecond,8:F0} {stats.DecodeTokensPerSecond,8:F2} {d.HitRate,5:P0} " +
                $"{d.CpuExpertRuns / per,8:F2} {d.Transfers / per,9:F2} {d.TransferBytes / per / 1e9,7:F2} {d.CopyWaitSeconds / per * 1e3,8:F1} {d.CpuExpertSeconds / per * 1e3,7:F1}");
        }
        return 0;
    }
}
