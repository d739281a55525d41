using Daop.Engine.Device.Gpu;
using Daop.Engine.Model;

namespace Daop.Cli;

/// <summary>The device asked for on the command line is not available here.</summary>
sealed class DeviceUnavailableException(string message) : Exception(message);

/// <summary>Maps <c>--device</c> to model options.</summary>
static class DeviceChoice
{
    public static ModelOptions Options(string device, int? context) => device switch
    {
        "cpu" => new ModelOptions { ContextLength = context },
        "cuda" => new ModelOptions
        {
            ContextLength = context,
            Device = _ => Cuda(),
            Experts = (m, d) => new GpuExpertScheduler(m, d),
        },
        _ => throw new ArgumentException($"--device must be 'cpu' or 'cuda', got '{device}'"),
    };

    static GpuDevice Cuda()
    {
        if (!System.Runtime.CompilerServices.RuntimeFeature.IsDynamicCodeSupported)
            throw new DeviceUnavailableException("--device cuda needs the JIT build of daop (ILGPU generates code at run time); this binary is ahead-of-time compiled");
        var dev = GpuDevice.Create(preferCuda: true);
        if (dev.Name.StartsWith("cuda", StringComparison.Ordinal)) return dev;
        dev.Dispose();
        throw new DeviceUnavailableException("--device cuda: no CUDA GPU was found (ILGPU saw none); use --device cpu");
    }
}
