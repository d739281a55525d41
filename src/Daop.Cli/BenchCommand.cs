using System.CommandLine;
using System.Diagnostics;
using System.Numerics;
using System.Runtime.Intrinsics;
using Daop.Engine.Generate;
using Daop.Engine.Load;
using Daop.Engine.Model;
using Daop.Kernels;
using Daop.Kernels.Cpu;
using Daop.Bench.Kernels;

namespace Daop.Cli;

/// <summary>
/// <c>daop bench</c>: memory bandwidth (STREAM-style read), expert-FFN GEMV throughput as a fraction of
/// it, and prefill/decode speed on a model — all measured in one run on this machine.
/// </summary>
static class BenchCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var promptTokens = new Option<int>("--prompt-tokens") { Description = "Prompt length for the prefill measurement.", DefaultValueFactory = _ => 128 };
        var newTokens = new Option<int>("--new-tokens") { Description = "Tokens decoded for the decode measurement.", DefaultValueFactory = _ => 128 };
        var repeats = new Option<int>("--repeats") { Description = "Runs of each measurement; the best is reported.", DefaultValueFactory = _ => 3 };
        var bwBytes = new Option<long>("--bandwidth-bytes") { Description = "Buffer size of the read-bandwidth probe.", DefaultValueFactory = _ => 1L << 30 };
        var threads = CommonOptions.Threads();
        var expertDType = CommonOptions.ExpertDType();
        var denseDType = CommonOptions.DenseDType();
        var cmd = new Command("bench", "Measure memory bandwidth, expert GEMV throughput and model speed on this machine.")
        {
            model, promptTokens, newTokens, repeats, bwBytes, threads, expertDType, denseDType,
        };
        cmd.Subcommands.Add(RoutingBenchCommand.Create());
        cmd.Subcommands.Add(SimulateCommand.Create());
        cmd.Subcommands.Add(GpuBenchCommand.Create());
        cmd.Subcommands.Add(GpuOpsBenchCommand.Create());
        cmd.Subcommands.Add(KernelsBenchCommand.Create());
        cmd.Subcommands.Add(SyntheticBenchCommand.Create());
        cmd.Subcommands.Add(AccuracyBenchCommand.Create());
        cmd.Subcommands.Add(PoliciesBenchCommand.Create());
        cmd.SetAction(r => Run(r.GetValue(model), r.GetValue(promptTokens), r.GetValue(newTokens), Math.Max(1, r.GetValue(repeats)),
            r.GetValue(bwBytes), r.GetValue(threads), WeightTypes.Parse(r.GetValue(expertDType)), WeightTypes.Parse(r.GetValue(denseDType))));
        return cmd;
    }

    static int Run(string? modelDir, int promptTokens, int newTokens, int repeats, long bwBytes, int? threads, DType? expertDType, DType? denseDType)
    {
        if (threads is { } t) CpuWorkers.Configure(t);
        string dir = modelDir ?? ModelLocator.Default();
        // Loaded first (memory-mapped, cheap): a bad folder or a context too large fails before minutes of measuring.
        using var m = SizedBy($"--prompt-tokens {promptTokens} + --new-tokens {newTokens}",
            () => MoeModel.Load(dir, new ModelOptions { ContextLength = promptTokens + newTokens, ExpertDType = expertDType, DenseDType = denseDType }));
        if (m.Conversion is { } conversion) Console.WriteLine($"load: {conversion}");
        Console.WriteLine($"machine: {Environment.ProcessorCount} logical cores, {CpuWorkers.Threads} worker threads, " +
            $"Vector512 {(Vector512.IsHardwareAccelerated ? "yes" : "no")}, Vector256 {(Vector256.IsHardwareAccelerated ? "yes" : "no")}");

        double bw = MemoryBandwidth.MeasureReadGBps(bwBytes);
        Console.WriteLine($"memory read bandwidth ({bwBytes >> 20} MiB, all threads): {bw:F1} GB/s");

        var c = m.Config;
        var dtype = m.Weights.Layers[0].Experts.Length > 0 ? m.Weights.Layers[0].Experts[0].Gate.Type : DType.BF16;
        Console.WriteLine($"model: {MoeModel.FolderName(dir)} ({c.ModelType}, {c.NumLayers} layers, " +
            $"{c.NumExperts} experts top-{c.TopK}, hidden {c.HiddenSize}, expert inter {c.ExpertIntermediate}, {dtype})");

        Console.WriteLine("expert FFN, one token (gate+up+down GEMV):");
        ExpertRow("this model's expert", dtype, c.HiddenSize, c.ExpertIntermediate, bw);
        ExpertRow("Mixtral-8x7B expert", DType.BF16, 4096, 14336, bw);

        var (prefill, decode) = ModelSpeed(m, promptTokens, newTokens, repeats);
        Console.WriteLine($"model prefill: {prefill:F0} tok/s ({promptTokens} tokens)");
        Console.WriteLine($"model decode:  {decode:F0} tok/s ({newTokens} tokens after a {promptTokens}-token prompt)");
        return 0;
    }

    /// <summary>
    /// Loads a model whose context the benchmark's own options size (<paramref name="options"/>, e.g. "--prompt-tokens 128
    /// + --new-tokens 128"): a context too large to allocate is reported against them, as benchmarks have no --context.
    /// </summary>
    internal static T SizedBy<T>(string options, Func<T> load)
    {
        try
        {
            return load();
        }
        catch (ArgumentOutOfRangeException e) when (e.ParamName == "ContextLength")
        {
            throw new ArgumentException($"{options}: {CliErrors.Text(e)}", e);
        }
    }

    static void ExpertRow(string what, DType type, int hidden, int inter, double bw)
    {
        long bytes = 2L * inter * type.RowBytes(hidden) + hidden * type.RowBytes(inter);
        int iters = (int)Math.Clamp(4e9 / bytes, 10, 2000);
        double tokPerSec = KernelBench.ExpertFfnTokensPerSecond(type, hidden, inter, 1, iters);
        double gbps = tokPerSec * bytes / 1e9;
        string where = bytes < 64L << 20 ? " (cache-resident)" : "";
        Console.WriteLine($"  {what} {hidden}x{inter} {type}: {1e6 / tokPerSec:F1} us, {gbps:F1} GB/s = {gbps / bw:P0} of read bandwidth{where}");
        double batch = KernelBench.ExpertFfnTokensPerSecond(type, hidden, inter, 128, Math.Max(2, iters / 16));
        Console.WriteLine($"    128-token batch: {batch:F0} tok/s = {batch / tokPerSec:F1}x the single-token rate");
    }

    static (double Prefill, double Decode) ModelSpeed(MoeModel m, int promptTokens, int newTokens, int repeats)
    {
        var rng = new Random(1234);
        var prompt = Enumerable.Range(0, promptTokens).Select(_ => rng.Next(m.Config.VocabSize)).ToArray();
        var gen = new Generator(m);
        double bestPrefill = 0, bestDecode = 0;
        for (int i = 0; i < repeats + 1; i++)
        {
            var stats = new GenerationStats();
            foreach (var _ in gen.Generate(prompt, new SamplingOptions { MaxNewTokens = newTokens, StopTokenIds = [] }, stats)) { }
            if (i == 0) continue; // warm-up (JIT, page faults)
            bestPrefill = Math.Max(bestPrefill, stats.PrefillTokensPerSecond);
            bestDecode = Math.Max(bestDecode, stats.DecodeTokensPerSecond);
        }
        return (bestPrefill, bestDecode);
    }
}
