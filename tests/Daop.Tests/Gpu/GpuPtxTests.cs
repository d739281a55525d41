using System.Text.RegularExpressions;
using Daop.Kernels.Gpu;
using ILGPU.Runtime.Cuda;

namespace Daop.Tests.Gpu;

/// <summary>
/// CI has no GPU, but ILGPU's PTX backend runs anywhere: every kernel must compile to PTX for Ampere and Hopper (the
/// block formats' instantiations too, which widen codes without int-to-float conversions),
/// the weight rows must be read with 16-byte vector loads, and nothing may spill to local memory — except the
/// tensor-core kernels' epilogues, where ILGPU copies the inline-PTX accumulators out through local slots; their
/// k-loops (the bf16 mma, and the block formats' dequantization feeding it) must not touch local memory.
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
                // DAOP_PTX_OUT=DIR keeps every kernel's PTX there, for reading register and local-memory use.
                if (Environment.GetEnvironmentVariable("DAOP_PTX_OUT") is { Length: > 0 } dir) File.WriteAllText(Path.Combine(dir, $"{name}.{arch}.ptx"), code);
                Assert.Contains(".entry", code);
                if (name.StartsWith("Mma", StringComparison.Ordinal) && !name.StartsWith("MmaSplit", StringComparison.Ordinal))
                {
                    Assert.Contains("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32", code);
                    // The accumulators live in asm-declared registers: no local memory from the first mma to the last.
                    int first = code.IndexOf("mma.sync", StringComparison.Ordinal), last = code.LastIndexOf("mma.sync", StringComparison.Ordinal);
                    Assert.DoesNotContain(".local", code[first..last]);
                }
                else Assert.DoesNotContain(".local", code);
            }
            foreach (var name in new[] { "Gemv", "Gemv1", "Gemv1.F16", "GateUp", "Down", "DownCombine", "TileLinear", "TileGateUp", "TileDown" })
            {
                Assert.Matches(new Regex(@"ld(\.global)?\.v4\.b32"), ptx[name]); // 16-byte weight chunks
                Assert.Matches(new Regex(@"ld(\.global)?\.v4\.f32"), ptx[name]); // Float4 activations
                if (!name.StartsWith("Tile", StringComparison.Ordinal)) Assert.Contains("shfl.sync.bfly", ptx[name]); // team reductions
            }
            foreach (var name in new[] { "Attention", "NormRows" })
            {
                Assert.Contains("shfl.sync.bfly", ptx[name]);                    // lanes reduce over head dims / the row
                Assert.Matches(new Regex(@"ld(\.global)?\.v4\.f32"), ptx[name]); // Float4 rows
            }
            Assert.Contains("shfl.sync.bfly", ptx["RouteSoftmaxTopK"]);
            // Block formats: 16-byte value and scale chunks, Float4 activations, codes widened without int-to-float conversions.
            foreach (var name in ptx.Keys.Where(n => n.EndsWith(".Q8_0", StringComparison.Ordinal) || n.EndsWith(".Q4_0", StringComparison.Ordinal)
                || n.EndsWith(".MXFP4", StringComparison.Ordinal) || n.EndsWith(".Q4_K", StringComparison.Ordinal)))
            {
                bool mma = name.StartsWith("Mma", StringComparison.Ordinal);
                if (!name.StartsWith("MmaSplit", StringComparison.Ordinal)) Assert.Matches(new Regex(@"ld(\.global)?\.v4\.b32"), ptx[name]);
                // The tensor-core kernels read the split activations as 16-byte bf16 chunks, not Float4s.
                if (!mma || name.StartsWith("MmaSplit", StringComparison.Ordinal)) Assert.Matches(new Regex(@"ld(\.global)?\.v4\.f32"), ptx[name]);
                if (!name.StartsWith("MmaSplit", StringComparison.Ordinal)) Assert.Contains("cvt.f32.f16", ptx[name]);
                Assert.DoesNotMatch(new Regex(@"cvt\.rn\.f32\.[su](8|16|32)"), ptx[name]);
                if (!name.StartsWith("Tile", StringComparison.Ordinal) && !mma) Assert.Contains("shfl.sync.bfly", ptx[name]);
            }
        }
    }
}
