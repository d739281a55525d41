// TEMPORARY (s19 merge): replaced by the helpers' CudaGpu.cs and EmbeddedKernels.cs.
using Daop.Kernels.Gpu;
namespace Daop.Engine.Device.Gpu;
internal sealed class CudaGpu
{
    public static GpuContext Create(int ordinal, Func<string, PtxImage?> kernels) => throw new NotImplementedException();
}
internal static class EmbeddedKernels
{
    public static PtxImage? Find(string key) => null;
}
