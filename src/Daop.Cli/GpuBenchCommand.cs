using System.CommandLine;
using Daop.Engine.Device.Gpu;
using Daop.Engine.Load;
using Daop.Engine.Model;
using Daop.Kernels;
using Daop.Bench.Gpu;
using Daop.Kernels.Gpu;

namespace Daop.Cli;

/// <summary>
/// <c>daop bench gpu</c>: on the first CUDA GPU (or the ILGPU CPU accelerator with --allow-cpu): bf16 GEMV
/// bandwidth, single-token expert FFN time for the common expert shapes, and the model on the GPU checked
/// against the CPU path (logit error, kernel launches per token, decode time).
/// </summary>
static class GpuBenchCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var allowCpu = new Option<bool>("--allow-cpu") { Description = "Run on the ILGPU CPU accelerator when no CUDA GPU is present (slow; for checking the command)." };
        var small = new Option<bool>("--small") { Description = "Small shapes only (for the CPU accelerator)." };
        var cmd = new Command("gpu", "GPU kernel bandwidth, expert FFN time and model check on the GPU.") { model, allowCpu, small };
        cmd.SetAction(r => Run(r.GetValue(model), r.GetValue(allowCpu), r.GetValue(small)));
        return cmd;
    }

    static int Run(string? modelDir, bool allowCpu, bool small)
    {
        using var dev = DeviceChoice.BenchDevice(allowCpu);
        if (dev == null) return 2;
        var acc = dev.Gpu;
        (int Rows, int Cols)[] gemv = small ? [(136, 80)] : [(14336, 4096), (4096, 14336)];
        foreach (var (rows, cols) in gemv)
            Console.WriteLine($"GEMV bf16 {rows}x{cols}: {GpuBench.GemvGBps(acc, DType.BF16, rows, cols, small ? 3 : 200):F0} GB/s");
        (string Name, int H, int I)[] shapes = small ? [("odd", 80, 136)] :
            [("Mixtral-8x7B", 4096, 14336), ("Qwen3-30B-A3B", 2048, 768), ("OLMoE-1B-7B", 2048, 1024)];
        var generic = new GpuKernelOptions { GeneratedExperts = [] };
        foreach (var (name, h, i) in shapes)
        {
            int iters = small ? 3 : 200;
            double us = GpuBench.ExpertFfnMicroseconds(acc, DType.BF16, h, i, iters, generic);
            double? gus = GpuBench.GeneratedExpertFfnMicroseconds(acc, DType.BF16, h, i, iters);
            // The launchers' default kernel set: the generated routed kernels when the shape has them.
            double? rus = GpuKernels.For(acc).GeneratedExpertFor(h, i, DType.BF16) != null
                ? GpuBench.ExpertFfnMicroseconds(acc, DType.BF16, h, i, iters) : null;
            Console.WriteLine($"expert FFN {name} {h}x{i} bf16, one token: generic {us:F1} us = {3.0 * h * i * 2 / us / 1e3:F0} GB/s" +
                (gus is { } g ? $"; generated {g:F1} us = {3.0 * h * i * 2 / g / 1e3:F0} GB/s" : "; no generated kernel") +
                (rus is { } rg ? $"; generated routed (engine launcher) {rg:F1} us = {3.0 * h * i * 2 / rg / 1e3:F0} GB/s" : ""));
        }
        if (!small)
        {
            var t = OffloadBench.Transfers(acc, DType.BF16, 4096, 14336, HostCopyMode.Staged, 8);
            Console.WriteLine($"expert copy host→device, Mixtral-8x7B, page-locked: {t.GBps:F1} GB/s ({(t.IsAsync ? "asynchronous" : "synchronous")})");
            var c = OffloadBench.HostContention(acc, DType.BF16, 4096, 14336);
            Console.WriteLine($"host memory, Mixtral-8x7B experts: CPU FFN alone {c.CpuAloneGBps:F1} GB/s, copies alone {c.CopyAloneGBps:F1} GB/s; " +
                $"together CPU {c.CpuBothGBps:F1} + copies {c.CopyBothGBps:F1} GB/s = {c.Gain:F2}x the CPU alone");
        }
        string dir = modelDir ?? ModelLocator.Default();
        var check = GpuBench.CheckModel(dir, acc);
        Console.WriteLine($"model {MoeModel.FolderName(dir)} on GPU vs CPU: max relative logit error {check.MaxRelativeError:E2}, " +
            $"{check.LaunchesPerToken} launches/token, decode {check.DecodeMilliseconds:F3} ms/token ({1000 / check.DecodeMilliseconds:F0} tok/s), " +
            $"{check.DeviceBytes / 1e6:F1} MB on the device");
        return check.MaxRelativeError <= 1e-3 ? 0 : 1;
    }
}
