using ILGPU;
using ILGPU.Runtime;

namespace Daop.Kernels.Gpu;

public sealed partial class GpuKernels
{
    BiasedExpertOps? _biasedExperts;
    BiasedExpertOps BiasedExperts => _biasedExperts ??= new BiasedExpertOps(_launch);

    /// <inheritdoc cref="BiasedExpertKernels.Gather"/>
    public void GatherRows(GpuStream s, GpuView<float> x, GpuView<float> xs, GpuView<int> order, int start, int n, int width, int topK) =>
        BiasedExperts.Gather(s, x, xs, order, start, n, width, topK);

    /// <inheritdoc cref="BiasedExpertKernels.ClampedSwiGlu"/>
    public void ClampedSwiGlu(GpuStream s, GpuView<float> g, GpuView<float> u, int n, float alpha, float limit) =>
        BiasedExperts.ClampedSwiGlu(s, g, u, n, alpha, limit);

    /// <inheritdoc cref="BiasedExpertKernels.ScatterAdd"/>
    public void ScatterAddRows(GpuStream s, GpuView<float> y, GpuView<float> o, GpuView<int> order, GpuView<float> weights,
        int start, int n, int width, int topK) =>
        BiasedExperts.ScatterAdd(s, y, o, order, weights, start, n, width, topK);
}

/// <summary>Launchers of <see cref="BiasedExpertKernels"/>, loaded on first use (only GPT-OSS runs them).</summary>
internal sealed class BiasedExpertOps(GpuLaunch launch)
{
    readonly Action<GpuStream, KernelConfig, GpuView<float>, GpuView<float>, GpuView<int>, int, int, int, int> _gather =
        launch.Loader.Load("GatherRows", a => a.Bind<GpuView<float>, GpuView<float>, GpuView<int>, int, int, int, int>(BiasedExpertKernels.Gather));
    readonly Action<GpuStream, KernelConfig, GpuView<float>, GpuView<float>, int, float, float> _glu =
        launch.Loader.Load("ClampedSwiGlu", a => a.Bind<GpuView<float>, GpuView<float>, int, float, float>(BiasedExpertKernels.ClampedSwiGlu));
    readonly Action<GpuStream, KernelConfig, GpuView<float>, GpuView<float>, GpuView<int>, GpuView<float>, int, int, int, int> _scatter =
        launch.Loader.Load("ScatterAddRows", a => a.Bind<GpuView<float>, GpuView<float>, GpuView<int>, GpuView<float>, int, int, int, int>(
            BiasedExpertKernels.ScatterAdd));

    public void Gather(GpuStream s, GpuView<float> x, GpuView<float> xs, GpuView<int> order, int start, int n, int width, int topK)
    {
        if (n <= 0) return;
        _gather(s, launch.Elementwise((long)n * width), x, xs, order, start, n, width, topK);
    }

    public void ClampedSwiGlu(GpuStream s, GpuView<float> g, GpuView<float> u, int n, float alpha, float limit)
    {
        if (n <= 0) return;
        _glu(s, launch.Elementwise(n), g, u, n, alpha, limit);
    }

    public void ScatterAdd(GpuStream s, GpuView<float> y, GpuView<float> o, GpuView<int> order, GpuView<float> weights,
        int start, int n, int width, int topK)
    {
        if (n <= 0) return;
        _scatter(s, launch.Elementwise((long)n * width), y, o, order, weights, start, n, width, topK);
    }
}
