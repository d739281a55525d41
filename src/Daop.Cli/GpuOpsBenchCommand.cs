using Daop.Bench.Gpu;
using System.CommandLine;
using Daop.Engine.Device.Gpu;
using Daop.Engine.Model;
using Daop.Kernels;
using Daop.Kernels.Gpu;

namespace Daop.Cli;

/// <summary>
/// <c>daop bench gpu-ops</c>: on the first CUDA GPU (or the ILGPU CPU accelerator with --allow-cpu), every GPU kernel
/// against the CPU path (the GPU tests, for a machine without .NET), then the routed experts on the engine's path with
/// the generic and the generated kernels, a GEMV tuning sweep over kernel sets, and the model on the GPU against the CPU
/// with either (--part picks one); the block formats' checks, timings and models with --part quant (GpuOpsBenchCommand.Quant.cs).
/// Exit code 1 when a check or the model comparison fails.
/// </summary>
static partial class GpuOpsBenchCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var allowCpu = new Option<bool>("--allow-cpu") { Description = "Run on the ILGPU CPU accelerator when no CUDA GPU is present (slow; for checking the command)." };
        var small = new Option<bool>("--small") { Description = "Small shapes only (for the CPU accelerator)." };
        var part = new Option<string>("--part")
        {
            Description = "What to run: all, checks (every kernel against the CPU), models (the model on the GPU against the CPU, " +
                "with generic and with generated expert kernels), timings (engine expert path, GEMV sweep), or the block formats " +
                "(Q8_0, Q4_0, MXFP4): quant-checks, quant-timings (against bf16 in the same run), quant-models, quant (all three); " +
                "engine (batched decode and DAOP's approximate modes on the GPU against the CPU).",
            DefaultValueFactory = _ => "all",
        };
        part.AcceptOnlyFromAmong("all", "checks", "models", "timings", "quant", "quant-checks", "quant-timings", "quant-models", "engine");
        var cmd = new Command("gpu-ops", "Every GPU kernel checked against the CPU; generic vs generated expert kernels timed on the engine path.")
        {
            model, allowCpu, small, part,
        };
        cmd.SetAction(r => Run(r.GetValue(model), r.GetValue(allowCpu), r.GetValue(small), r.GetValue(part) ?? "all"));
        return cmd;
    }

    static int Run(string? modelDir, bool allowCpu, bool small, string part)
    {
        using var dev = DeviceChoice.BenchDevice(allowCpu);
        if (dev == null) return 2;
        var acc = dev.Gpu;
        bool ok = true;
        if (part is "all" or "checks") ok &= Checks(acc, small);
        if (part is "all" or "timings") Timings(acc, small);
        if (part is "all" or "models") ok &= CheckModel(acc, modelDir);
        if (part is "quant" or "quant-checks") ok &= QuantChecks(acc, small);
        if (part is "quant" or "quant-timings") QuantTimings(acc, small);
        if (part is "quant" or "quant-models") ok &= QuantModels(acc, modelDir ?? ModelLocator.Default());
        if (part is "all" or "engine") ok &= EngineChecks(acc, modelDir ?? ModelLocator.Default());
        return ok ? 0 : 1;
    }

    // Every kernel family on several kernel sets against the CPU path, a line each.
    static bool Checks(GpuContext acc, bool small)
    {
        var o = GpuKernels.For(acc).Options;
        Console.WriteLine($"default kernel set: lanes {o.Lanes}, attention lanes {o.AttentionLanes} x {o.AttentionTeams} teams, " +
            $"tensor cores {(o.TensorCores == true ? "on" : "off")}, GEMV unroll {o.GemvUnroll} group {o.GemvGroupSize}, " +
            $"MMA group {o.MmaGroupSize}, {o.GeneratedExperts?.Count(e => e.HasRoutedKernels) ?? 0} generated expert shapes");

        return PrintChecks("checks", report => GpuOpsCheck.Run(acc, small, report));
    }

    /// <summary>Runs a check suite with a line per family and a summary line headed <paramref name="suite"/>; false when one fails.</summary>
    static bool PrintChecks(string suite, Func<Action<GpuOpCheck>, IReadOnlyList<GpuOpCheck>> run)
    {
        var checks = run(c => Console.WriteLine(
            $"check {c.Name}: {c.Cases} cases, worst error/tolerance {c.Worst:F3} ({c.WorstCase}) {(c.Passed ? "ok" : "FAIL")}"));
        int failed = checks.Count(c => !c.Passed);
        Console.WriteLine($"{suite}: {checks.Count} families, {failed} failed");
        return failed == 0;
    }

    // Routed experts on the engine path, generic vs generated kernels; the GEMV over a sweep of kernel sets.
    static void Timings(GpuContext acc, bool small)
    {
        int iters = small ? 3 : 200;
        (string Name, int H, int I, int E, int K)[] shapes = small ? [("tiny-mixtral-code", 256, 256, 4, 2)] :
            [("Mixtral-8x7B", 4096, 14336, 8, 2), ("Qwen3-30B-A3B", 2048, 768, 128, 8), ("OLMoE-1B-7B", 2048, 1024, 64, 8),
             ("tiny-mixtral-code", 256, 256, 8, 2)];
        foreach (var (name, h, i, e, k) in shapes)
            foreach (int tokens in small ? [1, 2, 3] : new[] { 1, 2, 3, 4, 8, 16, 32 }) // decode batches too: 16 sequences are 16 tokens
            {
                var t = GpuExpertPathBench.Run(acc, DType.BF16, h, i, e, k, tokens, iters);
                Console.WriteLine($"engine experts {name} {h}x{i} bf16, {e} experts top-{k}, {tokens} token{(tokens > 1 ? "s" : "")}: " +
                    $"generic {t.GenericMicroseconds:F1} us, generated {t.GeneratedMicroseconds:F1} us " +
                    $"({t.GenericMicroseconds / t.GeneratedMicroseconds:F2}x), {t.GeneratedLaunchesPerCall:F0} generated launches/call, " +
                    $"{t.ExpertsPerCall:F1} experts read at {t.GeneratedGBps:F0} GB/s, max rel diff {t.MaxRelativeDifference:E1}");
            }

        var (rows, cols) = small ? (136, 80) : (14336, 4096);
        foreach (int unroll in new[] { 2, 4, 8 })
            foreach (int group in small ? [acc.WarpSize] : new[] { 64, 128, 256 })
            {
                var options = new GpuKernelOptions { GemvUnroll = unroll, GemvGroupSize = group };
                double gbps = GpuBench.GemvGBps(acc, DType.BF16, rows, cols, iters, options);
                Console.WriteLine($"GEMV bf16 {rows}x{cols} unroll {unroll} group {group}: {gbps:F0} GB/s");
            }
    }

    // The model on the GPU against the CPU path, with the generic and with the default (generated) expert kernels.
    static bool CheckModel(GpuContext acc, string? modelDir)
    {
        string dir = modelDir ?? ModelLocator.Default();
        var generic = GpuBench.CheckModel(dir, acc, options: new GpuKernelOptions { GeneratedExperts = [] });
        var generated = GpuBench.CheckModel(dir, acc);
        foreach (var (label, c) in new[] { ("generic", generic), ("generated", generated) })
            Console.WriteLine($"model {MoeModel.FolderName(dir)} decode, {label} expert kernels: {c.DecodeMilliseconds:F3} ms/token, " +
                $"max relative logit error {c.MaxRelativeError:E2}, {c.LaunchesPerToken} launches/token " +
                $"{(c.MaxRelativeError <= 1e-3 ? "ok" : "FAIL")}");
        Console.WriteLine($"model {MoeModel.FolderName(dir)} decode speed-up from generated kernels: " +
            $"{generic.DecodeMilliseconds / generated.DecodeMilliseconds:F2}x");
        return generic.MaxRelativeError <= 1e-3 && generated.MaxRelativeError <= 1e-3;
    }

    // Batched decode (resident, exact placement policies) and the approximate modes against the CPU, a line each.
    static bool EngineChecks(GpuContext acc, string dir)
    {
        static (string, Func<Daop.Engine.Placement.IPlacementPolicy>) P(string name) => (name, () => PolicyChoice.Create(name));
        var results = GpuEngineCheck.Run(dir, acc, [P("static-cpu"), P("lru-on-demand"), P("daop-exact-drift")],
            [P("daop"), P("daop-checked"), P("daop-checked-degrade")], 0.5,
            r => Console.WriteLine($"engine {MoeModel.FolderName(dir)} {r.Name}: {r.Calls} forward calls, max relative logit error " +
                $"{r.MaxRelativeError:E2} {(r.Passed ? "ok" : "FAIL")}"));
        int failed = results.Count(r => !r.Passed);
        Console.WriteLine($"engine checks: {results.Count}, {failed} failed");
        return failed == 0;
    }
}
