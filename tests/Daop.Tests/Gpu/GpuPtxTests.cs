using System.Text.RegularExpressions;
using Daop.Kernels.Gpu;
using ILGPU.Runtime.Cuda;

namespace Daop.Tests.Gpu;

/// <summary>
/// CI has no GPU, but ILGPU's PTX backend runs anywhere: every kernel must compile to PTX for Ampere and Hopper,
/// the weight rows must be read with 16-byte vector loads, and nothing may spill to local memory.
/// </summary>
[Collection(GpuCollection.Name)]
public class GpuPtxTests
{
    [Fact]
    public void EveryKernelCompilesToPtx()
    {
        foreach (var (arch, isa) in new[] { (CudaArchitecture.SM_80, CudaInstructionSet.ISA_80), (CudaArchitecture.SM_90, CudaInstructionSet.ISA_80) })
        {
            var ptx = GpuKernels.CompilePtx(arch, isa);
            Assert.Equal(GpuKernels.KernelMethods.Keys.Order(), ptx.Keys.Order());
            foreach (var (name, code) in ptx)
            {
                Assert.Contains(".entry", code);
                Assert.DoesNotContain(".local", code);
            }
            foreach (var name in new[] { "Gemv", "GateUp", "Down", "DownCombine" })
            {
                Assert.Matches(new Regex(@"ld(\.global)?\.v4\.b32"), ptx[name]); // 16-byte weight chunks
                Assert.Matches(new Regex(@"ld(\.global)?\.v4\.f32"), ptx[name]); // Float4 activations
                Assert.Contains("shfl.sync.bfly", ptx[name]);
            }
            Assert.Contains("shfl.sync.idx", ptx["Attention"]);
        }
    }
}
