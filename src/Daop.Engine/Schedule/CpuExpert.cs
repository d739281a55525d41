using Daop.Engine.Load.Config;
using Daop.Engine.Model;
using Daop.Kernels.Cpu;
using Daop.Kernels.Generated;

namespace Daop.Engine.Schedule;

/// <summary>
/// One routed expert on host threads, as its layer's <see cref="Activation"/> says: SwiGLU on the scheduler's expert
/// kernel (generated for the shape, or generic), GPT-OSS's biased clamped SwiGLU on <see cref="BiasedExpertFfn"/>.
/// </summary>
static class CpuExpert
{
    /// <summary>y [T, H] = expert <paramref name="w"/> of x [T, H]; <paramref name="scratch"/> holds 2·T·I floats.</summary>
    public static void Forward(IExpertKernel kernel, Activation act, in ExpertWeights w, ReadOnlySpan<float> x, Span<float> y, int tokens,
        Span<float> scratch)
    {
        if (act is Activation.ClampedSwiGlu c) BiasedExpertFfn.Forward(w.Gate, w.Up, w.Down, w.Bias!.Value, c.Alpha, c.Limit, x, y, tokens, scratch);
        else kernel.Forward(w.Gate, w.Up, w.Down, x, y, tokens, scratch);
    }
}
