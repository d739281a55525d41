using Daop.Engine.Device.Gpu;
using Daop.Engine.Device;
using Daop.Engine.Model;
using Daop.Engine.Schedule;

namespace Daop.Cli;

/// <summary>The device asked for on the command line is not available here.</summary>
sealed class DeviceUnavailableException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>Maps <c>--device</c> to model options.</summary>
static class DeviceChoice
{
    /// <summary>The values of <c>--device</c>.</summary>
    public static readonly string[] Names = ["cpu", "cuda", "ilgpu-cpu"];

    /// <summary>
    /// Options for <paramref name="device"/>. On CUDA, experts are all resident unless a cache ratio or a VRAM budget
    /// (bytes for the whole model on the GPU) asks for offloading with <paramref name="policy"/>.
    /// </summary>
    public static ModelOptions Options(string device, int? context, double? ratio = null, long? vramBudget = null, string policy = "static-cpu",
        int sequences = 1, OffloadOptions? offload = null, float maxDrift = float.PositiveInfinity)
    {
        if (ratio != null && vramBudget != null) throw new ArgumentException("give --expert-cache-ratio or --vram-budget, not both");
        return device switch
        {
            "cpu" when ratio != null || vramBudget != null =>
                throw new ArgumentException("--expert-cache-ratio and --vram-budget place experts on a GPU: use them with --device cuda"),
            "cpu" => new ModelOptions { ContextLength = context },
            "cuda" or "ilgpu-cpu" => new ModelOptions
            {
                ContextLength = context,
                Device = _ => device == "cuda" ? Cuda() : IlgpuCpu(),
                Experts = Experts(ratio, vramBudget, policy, sequences, offload, maxDrift),
                WarmUp = Environment.GetEnvironmentVariable("DAOP_WARMUP") != "0", // 0: measure the cold first tokens
            },
            _ => throw new ArgumentException($"--device must be 'cpu', 'cuda' or 'ilgpu-cpu', got '{device}'"),
        };
    }

    /// <summary>
    /// The expert scheduler factory for a ratio / budget / policy choice on a GPU device; a budget counts
    /// <paramref name="sequences"/> KV caches (<c>--parallel</c>); <paramref name="offload"/> for the offloaded scheduler;
    /// <paramref name="maxDrift"/> bounds a checked approximate policy (<c>--precalc-max-drift</c>).
    /// </summary>
    public static Func<MoeModel, IDevice, IExpertScheduler> Experts(double? ratio, long? vramBudget, string policy, int sequences = 1,
        OffloadOptions? offload = null, float maxDrift = float.PositiveInfinity) =>
        ratio is { } r ? (m, d) => OffloadedExpertScheduler.FromRatio(m, d, PolicyChoice.Create(policy, maxDrift: maxDrift), r, options: offload)
        : vramBudget is { } b ? (m, d) => OffloadedExpertScheduler.FromVramBudget(m, d, PolicyChoice.Create(policy, maxDrift: maxDrift), b, 256,
            options: offload, sequences: sequences)
        : (m, d) => new GpuExpertScheduler(m, d);

    /// <summary>
    /// The GPU for <c>bench gpu</c> and <c>bench gpu-ops</c>, its name printed: the CUDA GPU, else (with
    /// <paramref name="allowCpu"/>, <c>--allow-cpu</c>) ILGPU's CPU accelerator; null, with the reason on stderr, when
    /// there is no CUDA GPU and the CPU accelerator was not allowed.
    /// </summary>
    public static GpuDevice? BenchDevice(bool allowCpu)
    {
        var dev = GpuDevice.Create(preferCuda: true);
        Console.WriteLine($"device: {dev.Name}");
        if (allowCpu || dev.Name.StartsWith("cuda", StringComparison.Ordinal)) return dev;
        Console.Error.WriteLine("daop: no CUDA GPU found (pass --allow-cpu to run on the ILGPU CPU accelerator)");
        dev.Dispose();
        return null;
    }

    static GpuDevice Cuda() => GpuDevice.CreateCuda();

    static GpuDevice IlgpuCpu()
    {
        // Constant false in the ahead-of-time compiled binary, so the compiler drops ILGPU's run-time compiler with it.
        if (!System.Runtime.CompilerServices.RuntimeFeature.IsDynamicCodeSupported)
            throw new DeviceUnavailableException("--device ilgpu-cpu needs the JIT build of daop (ILGPU compiles its kernels at run time); this binary is ahead-of-time compiled");
        return GpuDevice.Create(preferCuda: false);
    }
}
