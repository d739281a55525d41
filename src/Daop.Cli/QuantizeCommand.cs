using System.CommandLine;
using System.Globalization;
using Daop.Engine.Model;
using Daop.Kernels;
using Daop.Kernels.Cpu;

namespace Daop.Cli;

/// <summary>
/// <c>daop quantize MODEL OUT --expert-dtype q4_0 [--dense-dtype q8_0]</c>: writes a checkpoint folder whose routed experts
/// (and dense matrices) are stored in a block format, which later loads memory-mapped with no work at start-up
/// (<see cref="QuantizedCheckpoint"/> describes the files).
/// </summary>
static class QuantizeCommand
{
    public static Command Create()
    {
        var model = new Argument<string>("model") { Description = "The model folder to read (F32/F16/BF16 weights)." };
        var output = new Argument<string>("out") { Description = "The folder to write (new or empty)." };
        var experts = CommonOptions.ExpertDType();
        var dense = CommonOptions.DenseDType();
        var shard = new Option<long>("--max-shard-size")
        {
            Description = "Largest weight file: bytes, or with K/M/G/T or KiB/MiB/GiB/TiB; more weights go to numbered shards with an index.",
            DefaultValueFactory = _ => QuantizedCheckpoint.DefaultShardBytes,
        };
        var threads = CommonOptions.Threads();
        var cmd = new Command("quantize", "Write a copy of a model whose experts (and dense matrices) are stored quantized (q4_0, q8_0, mxfp4).")
        {
            model, output, experts, dense, shard, threads,
        };
        cmd.SetAction((r, cancel) => CliErrors.Run(() =>
        {
            var e = WeightTypes.Parse(r.GetValue(experts));
            var d = WeightTypes.Parse(r.GetValue(dense));
            if (e == null && d == null) throw new ArgumentException("give --expert-dtype, --dense-dtype or both");
            if (r.GetValue(threads) is { } t) CpuWorkers.Configure(t);
            string src = r.GetValue(model)!, dst = r.GetValue(output)!;
            var report = QuantizedCheckpoint.Write(src, dst, e, d, r.GetValue(shard), line => Console.Error.WriteLine($"[daop] {line}"));
            // The folder must load as it is: config, index and every tensor's size checked, nothing converted.
            using (var check = MoeModel.Load(dst, new ModelOptions { ContextLength = 1 }))
                if (check.Conversion != null) throw new InvalidOperationException($"{dst}: loading converted weights again");
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"wrote {dst}: {report.Tensors} tensors, {report.Converted} converted ({Format(report)}) from {report.SourceBytes / 1048576.0:F1} MiB " +
                $"to {report.Bytes / 1048576.0:F1} MiB; {report.TotalBytes / 1048576.0:F1} MiB in {string.Join(", ", report.Files)}, {report.Seconds:F2} s"));
            return Task.FromResult(0);
        }));
        return cmd;
    }

    static string Format(QuantizeReport r) => r.Quantization is { } q
        ? string.Join(", ", new[] { q.Experts is { } e ? $"experts {e.Name()}" : null, q.Dense is { } d ? $"dense {d.Name()}" : null }.OfType<string>())
        : "no block format";
}
