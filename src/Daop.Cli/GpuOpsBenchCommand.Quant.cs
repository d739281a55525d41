using Daop.Bench.Gpu;
using Daop.Engine.Model;
using Daop.Kernels;
using Daop.Kernels.Gpu;
using ILGPU.Runtime;

namespace Daop.Cli;

// `daop bench gpu-ops --part quant`: the block formats (Q8_0, Q4_0, MXFP4) on the GPU: every kernel family against the
// CPU path on their dequantized values, the decode GEMV and one routed expert timed in GB/s of weight bytes read next to
// bf16 in the same run, and models whose experts are quantized in memory against the CPU.
static partial class GpuOpsBenchCommand
{
    static readonly DType[] WithBf16 = [DType.BF16, .. GpuOpsCheck.BlockTypes];

    /// <summary>Each check family, a line each; false when one fails.</summary>
    static bool QuantChecks(GpuContext acc, bool small) =>
        PrintChecks("quant checks", report => GpuOpsCheck.RunBlockFormats(acc, small, report));

    /// <summary>GEMV and routed-expert timings per format with bf16 first, a GEMV launch sweep, the engine path and a prefill batch.</summary>
    static void QuantTimings(GpuContext acc, bool small)
    {
        int iters = small ? 3 : 200;
        var (rows, cols) = small ? (136, 296) : (14336, 4096);
        var (hidden, inter) = small ? (264, 296) : (4096, 14336);
        double bf16Gemv = 0, bf16Expert = 0;
        foreach (var type in WithBf16)
        {
            var t = GpuQuantBench.Gemv(acc, type, rows, GpuOpsCheck.Whole(type, cols), iters);
            if (type == DType.BF16) bf16Gemv = t.Microseconds;
            Console.WriteLine($"GEMV {rows}x{GpuOpsCheck.Whole(type, cols)} {type.Name()}: {t.Microseconds:F1} us, {t.Bytes / 1e6:F1} MB read, {t.GBps:F0} GB/s" +
                (type == DType.BF16 ? "" : $", {bf16Gemv / t.Microseconds:F2}x bf16's speed"));
        }
        foreach (var type in GpuOpsCheck.BlockTypes)
            foreach (int blockRows in new[] { 2, 1 })
                foreach (int unroll in new[] { 2, 4 })
                    foreach (int group in small ? [acc.WarpSize] : new[] { 128, 256 })
                    {
                        var t = GpuQuantBench.Gemv(acc, type, rows, GpuOpsCheck.Whole(type, cols), iters,
                            new GpuKernelOptions { GemvUnroll = unroll, GemvGroupSize = group, BlockRows = blockRows });
                        Console.WriteLine($"GEMV {rows}x{GpuOpsCheck.Whole(type, cols)} {type.Name()} rows/warp {blockRows} unroll {unroll} group {group}: " +
                            $"{t.Microseconds:F1} us, {t.GBps:F0} GB/s");
                    }
        foreach (var type in WithBf16)
            foreach (var (label, options) in type == DType.BF16
                ? new[] { ("generic", new GpuKernelOptions { GeneratedExperts = [] }), ("default", GpuKernelOptions.Default) }
                : [("default", GpuKernelOptions.Default), ("rows/warp 1", new GpuKernelOptions { BlockRows = 1 })])
            {
                var e = GpuQuantBench.Expert(acc, type, GpuOpsCheck.Whole(type, hidden), GpuOpsCheck.Whole(type, inter), iters, options);
                if (type == DType.BF16 && label == "default") bf16Expert = e.Both.Microseconds;
                Console.WriteLine($"routed expert {GpuOpsCheck.Whole(type, hidden)}x{GpuOpsCheck.Whole(type, inter)} {type.Name()} [{label}], 1 token: gate/up {e.GateUp.Microseconds:F1} us " +
                    $"({e.GateUp.GBps:F0} GB/s), down+combine {e.Down.Microseconds:F1} us ({e.Down.GBps:F0} GB/s), both {e.Both.Microseconds:F1} us " +
                    $"({e.Both.Bytes / 1e6:F1} MB, {e.Both.GBps:F0} GB/s)" + (type == DType.BF16 ? "" : $", {bf16Expert / e.Both.Microseconds:F2}x bf16's speed"));
            }
        var (name, eh, ei, ne, k) = small ? ("tiny-mixtral-code", 256, 256, 4, 2) : ("Mixtral-8x7B", 4096, 14336, 8, 2);
        foreach (var type in WithBf16)
        {
            var t = GpuExpertPathBench.Run(acc, type, eh, ei, ne, k, 1, iters);
            long bytes = k * new Daop.Engine.Device.Gpu.ExpertLayout(type, type, type, eh, ei).ExpertBytes;
            Console.WriteLine($"engine experts {name} {eh}x{ei} {type.Name()}, {ne} experts top-{k}, 1 token: {t.GeneratedMicroseconds:F1} us " +
                $"({bytes / (t.GeneratedMicroseconds * 1e-6) / 1e9:F0} GB/s of {bytes / 1e6:F0} MB)");
        }
        int prefill = small ? 9 : 128;
        foreach (var type in WithBf16)
        {
            var (us, bytes, _) = GpuBench.BatchedExperts(acc, type, eh, ei, ne, prefill, k, small ? 2 : 20);
            Console.WriteLine($"prefill experts {name} {type.Name()}, {prefill} tokens top-{k}: {us:F0} us ({bytes / 1e6:F0} MB of weights, " +
                $"{prefill * k * 6.0 * eh * ei / (us * 1e-6) / 1e12:F1} TFLOP/s)");
        }
    }

    /// <summary>The model with its experts quantized in memory, all resident and half offloaded, against the CPU on the same values.</summary>
    static bool QuantModels(GpuContext acc, string dir)
    {
        bool ok = true;
        foreach (var type in GpuOpsCheck.BlockTypes.Where(t => !t.IsGgufOnly())) // quantized in memory: the formats Daop writes
            foreach (double ratio in new[] { 1.0, 0.5 })
            {
                var c = GpuBench.CheckQuantizedModel(dir, acc, type, ratio);
                bool pass = c.MaxRelativeError <= 1e-3;
                ok &= pass;
                Console.WriteLine($"model {MoeModel.FolderName(dir)} experts {type.Name()} {(ratio < 1 ? $"offloaded ({ratio:P0} in slots, LRU)" : "resident")}: " +
                    $"{c.DecodeMilliseconds:F3} ms/token, max relative logit error {c.MaxRelativeError:E2}, {c.DeviceBytes / 1e6:F1} MB on device " +
                    $"{(pass ? "ok" : "FAIL")}");
            }
        return ok;
    }
}
