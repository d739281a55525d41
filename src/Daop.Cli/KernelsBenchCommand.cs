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
/// batched rate. Experts rotate over at least 1 GiB of weights so single-token numbers come from DRAM.
/// </summary>
static class KernelsBenchCommand
{
    public static Command Create()
    {
        var threads = CommonOptions.Threads();
        var batch = new Option<int>("--batch") { Description = "Tokens for the batched (prefill) measurement.", DefaultValueFactory = _ => 128 };
        var cmd = new Command("kernels", "CPU expert FFN: generated vs generic, against measured memory bandwidth.") { threads, batch };
        cmd.SetAction(r => Run(r.GetValue(threads), r.GetValue(batch)));
        return cmd;
    }

    static readonly (string Name, int Hidden, int Inter)[] Shapes =
        [("Mixtral-8x7B", 4096, 14336), ("Qwen3-30B-A3B", 2048, 768), ("OLMoE-1B-7B", 2048, 1024)];

    static int Run(int? threads, int batch)
    {
        if (threads is { } t) CpuWorkers.Configure(t);
        double bw = MemoryBandwidth.MeasureReadGBps(1L << 31);
        Console.WriteLine($"{CpuWorkers.Threads} threads; memory read bandwidth (2 GiB, all threads): {bw:F1} GB/s");
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
        return 0;
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
