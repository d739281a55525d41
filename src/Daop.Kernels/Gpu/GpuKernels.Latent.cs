using ILGPU;
using ILGPU.Runtime;

namespace Daop.Kernels.Gpu;

// Multi-head latent attention's launchers (DeepSeek MLA), kept apart from the other families' ops.
public sealed partial class GpuKernels
{
    LatentOps? _latent;
    LatentOps Latent => _latent ??= new LatentOps(_launch);

    /// <inheritdoc cref="LatentKernels.HeadMatMul"/>
    public void HeadMatMul(AcceleratorStream s, ArrayView<float> w, ArrayView<float> x, ArrayView<float> y, HeadMatMulArgs a) =>
        Latent.HeadMatMul(s, w, x, y, a);

    /// <inheritdoc cref="LatentKernels.Append"/>
    public void LatentAppend(AcceleratorStream s, ArrayView<float> q, ArrayView<float> qc, ArrayView<float> c, ArrayView<float> kpe,
        ArrayView<float> cache, ArrayView<float> cos, ArrayView<float> sin, LatentArgs a) => Latent.Append(s, q, qc, c, kpe, cache, cos, sin, a);

    /// <inheritdoc cref="LatentKernels.Attend"/>
    public void LatentAttend(AcceleratorStream s, ArrayView<float> qc, ArrayView<float> cache, ArrayView<float> o, LatentArgs a) =>
        Latent.Attend(s, qc, cache, o, a);
}
