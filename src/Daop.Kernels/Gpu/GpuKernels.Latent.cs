using ILGPU;
using ILGPU.Runtime;

namespace Daop.Kernels.Gpu;

// Multi-head latent attention's launchers (DeepSeek MLA), kept apart from the other families' ops.
public sealed partial class GpuKernels
{
    LatentOps? _latent;
    LatentOps Latent => _latent ??= new LatentOps(_launch);

    /// <inheritdoc cref="LatentKernels.HeadMatMul"/>
    public void HeadMatMul(GpuStream s, GpuView<float> w, GpuView<float> x, GpuView<float> y, HeadMatMulArgs a) =>
        Latent.HeadMatMul(s, w, x, y, a);

    /// <inheritdoc cref="LatentKernels.Append"/>
    public void LatentAppend(GpuStream s, GpuView<float> q, GpuView<float> qc, GpuView<float> c, GpuView<float> kpe,
        GpuView<float> cache, GpuView<float> cos, GpuView<float> sin, LatentArgs a) => Latent.Append(s, q, qc, c, kpe, cache, cos, sin, a);

    /// <inheritdoc cref="LatentKernels.Attend"/>
    public void LatentAttend(GpuStream s, GpuView<float> qc, GpuView<float> cache, GpuView<float> o, LatentArgs a) =>
        Latent.Attend(s, qc, cache, o, a);
}
