// TEMPORARY (s19 merge): replaced by the helper's EmbeddedKernels.cs.
using Daop.Kernels.Gpu;
namespace Daop.Engine.Device.Gpu.Cuda;
internal static class EmbeddedKernels
{
    public static PtxImage? Find(string key) => null;
}
