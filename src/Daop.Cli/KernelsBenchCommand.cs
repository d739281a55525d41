using System.CommandLine;
using System.Diagnostics;
using Daop.Engine.Load;
using Daop.Kernels;
using Daop.Kernels.Cpu;
using Daop.Kernels.Generated;
using Daop.Bench.Kernels;
using Daop.Bench;

namespace Daop.Cli;

/// <summary>
/// <c>daop bench kernels</c>: the CPU expert FFN for the common expert shapes, generated vs generic kernel:
/// single-token time and weight bandwidth next to this machine's measured read bandwidth, and the 128-token
/// batched rate. Then the weight formats side by side for the Mixtral expert: one-token tokens/s and weight bytes
/// read per second against the read bandwidth, ratios to bf16, and batched GFLOP/s against the fp32 FMA peak.
/// Experts rotate over at least 1 GiB of weights so single-token numbers come from DRAM.
/// </summary>
static class KernelsBenchCommand
{
    public static Command Create()
    {
        var threads = CommonOptions.Threads();
        var batch = new Option<int>("--batch") { Description = "Tokens for the batched (prefill) measurement.", DefaultValueFactory = _ => 128 };
        var formats = new Option<string>("--formats")
        {
            Description = "Weight formats compared on the Mixtral expert (comma-separated; empty: none).", DefaultValueFactory = _ => "bf16,q8_0,q4_0,mxfp4,q4_K,q5_K,q6_K",
        };
        var formatBatches = new Option<string>("--format-batches")
        {
            Description = "Tokens per batched call in the format comparison (comma-separated).", DefaultValueFactory = _ => "4,16,64",
        };
        var onlyFormats = new Option<bool>("--only-formats") { Description = "Skip the generated-vs-generic shapes table." };
        var cmd = new Command("kernels", "CPU expert FFN: generated vs generic and per weight format, against measured memory bandwidth.")
        {
            threads, batch, formats, formatBatches, onlyFormats,
        };
        cmd.SetAction(r => Run(r.GetValue(threads), r.GetValue(batch), r.GetValue(formats) ?? "", r.GetValue(formatBatches) ?? "", r.GetValue(onlyFormats)));
        return cmd;
    }

    static readonly (string Name, int Hidden, int Inter)[] Shapes =
        [("Mixtral-8x7B", 4096, 14336), ("Qwen3-30B-A3B", 2048, 768), ("OLMoE-1B-7B", 2048, 1024)];

    static int Run(int? threads, int batch, string formats, string formatBatches, bool onlyFormats)
    {
        if (threads is { } t) CpuWorkers.Configure(t);
        var types = new List<DType>();
        foreach (var name in formats.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!DTypes.TryParse(name, out var type)) throw new ArgumentException($"unknown weight format '{name}'");
            types.Add(type);
        }
        var batches = formatBatches.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(int.Parse).ToArray();
        double bw = MemoryBandwidth.MeasureReadGBps(1L << 31);
        Console.WriteLine($"{CpuWorkers.Threads} threads; memory read bandwidth (2 GiB, all threads): {bw:F1} GB/s");
        Console.WriteLine(AmxInfo.Status + (AmxInfo.Check() is { } failed ? $" -- CHECK FAILED: {failed}" : ""));
        if (!onlyFormats) ShapeTable(batch, bw);
        if (types.Count > 0) Formats(types, batches, bw);
        return 0;
    }

    static void ShapeTable(int batch, double bw)
    {
        Console.WriteLine($"{"shape",-14} {"kernel",-32} {"1 token us",11} {"GB/s",7} {"of bw",6} {"2 tokens us",12} {batch + "-tok tok/s",14} {"batch gain",10}");
        foreach (var (name, h, i) in Shapes)
        {
            using var src = new SyntheticTensorSource(7);
            long bytes = 3L * h * i * 2;
            int n = (int)Math.Max(2, (1L << 30) / bytes + 1);
            var experts = Enumerable.Range(0, n).Select(e => (
                G: src.Matrix($"g{e}", i, h), U: src.Matrix($"u{e}", i, h), D: src.Matrix($"d{e}", h, i))).ToArray();
            foreach (var kernel in new[] { ExpertKernelRegistry.Select(h, i, DType.BF16), GenericExpertKernel.Instance }.Distinct())
            {
                double one = Time(kernel, experts, h, i, 1);
                double two = Time(kernel, experts, h, i, 2);
                double many = Time(kernel, experts, h, i, batch);
                double gbps = bytes / one / 1e9;
                Console.WriteLine($"{name,-14} {kernel.Name,-32} {one * 1e6,11:F1} {gbps,7:F1} {gbps / bw,6:P0} {two * 1e6,12:F1} {batch / many,14:F0} {batch / many * one,9:F1}x");
            }
        }
    }

    /// <summary>The Mixtral expert per weight format: one token against bandwidth, batches against the FMA peak.</summary>
    static void Formats(List<DType> types, int[] batches, double bw)
    {
        const int H = 4096, I = 14336;
        double peak = FmaPeak.MeasureGflops();
        Console.WriteLine();
        Console.WriteLine($"Mixtral-8x7B expert (H{H} x I{I}) per weight format, generic kernel, formats interleaved over 3 rounds (best); " +
            $"fp32 FMA peak (all threads): {peak:F0} GFLOP/s");
        var head = $"{"format",-7} {"MB/expert",9} {"1-tok us",9} {"tok/s",7} {"x bf16",7} {"read GB/s",9} {"of bw",6}";
        foreach (int b in batches) head += $" {b + "-tok GFLOP/s",15} {"of peak",7}";
        Console.WriteLine(head);
        var results = FormatBench.Compare([.. types], H, I, batches);
        var baseline = results.FirstOrDefault(r => r.Type == DType.BF16);
        foreach (var r in results)
        {
            string ratio = baseline is null ? "-" : $"{r.TokensPerSecond / baseline.TokensPerSecond:F2}x";
            var line = $"{r.Type.Name(),-7} {r.ExpertBytes / 1e6,9:F1} {r.OneTokenSeconds * 1e6,9:F0} {r.TokensPerSecond,7:F1} {ratio,7} {r.ReadGBps,9:F1} {r.ReadGBps / bw,6:P0}";
            for (int i = 0; i < batches.Length; i++)
            {
                double g = r.BatchGflops(i, H, I);
                line += $" {g,15:F1} {g / peak,7:P0}";
            }
            Console.WriteLine(line);
        }
    }

    static double Time(IExpertKernel k, (WeightMatrix G, WeightMatrix U, WeightMatrix D)[] experts, int h, int i, int tokens)
    {
        var x = new float[tokens * h];
        var y = new float[tokens * h];
        var scratch = new float[2 * tokens * i];
        for (int j = 0; j < x.Length; j++) x[j] = (j % 17 - 8) / 8f;
        int e = 0;
        void Call() { var w = experts[e++ % experts.Length]; k.Forward(w.G, w.U, w.D, x, y, tokens, scratch); }
        Call();
        int iters = Math.Max(experts.Length, tokens == 1 ? 3 * experts.Length : 2);
        double best = double.MaxValue;
        for (int rep = 0; rep < 3; rep++)
        {
            long t0 = Stopwatch.GetTimestamp();
            for (int it = 0; it < iters; it++) Call();
            best = Math.Min(best, Stopwatch.GetElapsedTime(t0).TotalSeconds / iters);
        }
        return best;
    }
}
