using System.Text.RegularExpressions;
using Daop.Engine.Device.Gpu.Cuda;

namespace Daop.Tests.Gpu;

/// <summary>
/// CI has no GPU, but the build compiles every kernel of the catalog to PTX (sm_80, run forward on sm_89/sm_90) and embeds
/// it: the weight rows must be read with 16-byte vector loads, and nothing may spill to local memory — except the
/// tensor-core kernels' epilogues, where ILGPU copies the inline-PTX accumulators out through local slots; their
/// k-loops (the bf16 mma, and the block formats' dequantization feeding it) must not touch local memory. The block
/// formats' instantiations widen codes without int-to-float conversions.
/// </summary>
public class GpuPtxTests
{
    static string Ptx(string key) => EmbeddedKernels.Find(key)?.Ptx ?? throw new Xunit.Sdk.XunitException($"kernel {key} is not in the embedded pack");

    [Fact]
    public void EveryKernelIsPtxWithoutLocalMemoryOutsideTheMmaEpilogues()
    {
        foreach (var key in EmbeddedKernels.Keys)
        {
            var code = Ptx(key);
            // DAOP_PTX_OUT=DIR keeps every kernel's PTX there, for reading register and local-memory use.
            if (Environment.GetEnvironmentVariable("DAOP_PTX_OUT") is { Length: > 0 } dir) File.WriteAllText(Path.Combine(dir, $"{key}.ptx"), code);
            if (key.StartsWith("Mma", StringComparison.Ordinal) && !key.StartsWith("MmaSplit", StringComparison.Ordinal))
            {
                Assert.Contains("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32", code);
                // The accumulators live in asm-declared registers: no local memory from the first mma to the last.
                int first = code.IndexOf("mma.sync", StringComparison.Ordinal), last = code.LastIndexOf("mma.sync", StringComparison.Ordinal);
                Assert.DoesNotContain(".local", code[first..last]);
            }
            else Assert.False(code.Contains(".local", StringComparison.Ordinal), $"{key} uses local memory");
        }
    }

    [Fact]
    public void RowAndTileKernelsReadSixteenByteChunksAndReduceInWarps()
    {
        foreach (var key in new[] { "Gemv.BF16", "Gemv1.4.BF16", "Gemv1.4.F16", "GateUp.BF16", "Down.BF16", "DownCombine.BF16", "TileLinear.BF16", "TileGateUp.BF16", "TileDown.BF16" })
        {
            Assert.Matches(new Regex(@"ld(\.global)?\.v4\.b32"), Ptx(key)); // 16-byte weight chunks
            Assert.Matches(new Regex(@"ld(\.global)?\.v4\.f32"), Ptx(key)); // Float4 activations
            if (!key.StartsWith("Tile", StringComparison.Ordinal)) Assert.Contains("shfl.sync.bfly", Ptx(key)); // team reductions
        }
        foreach (var key in new[] { "Attention", "NormRows" })
        {
            Assert.Contains("shfl.sync.bfly", Ptx(key));                    // lanes reduce over head dims / the row
            Assert.Matches(new Regex(@"ld(\.global)?\.v4\.f32"), Ptx(key)); // Float4 rows
        }
        Assert.Contains("shfl.sync.bfly", Ptx("RouteSoftmaxTopK"));
    }

    [Fact]
    public void BlockFormatKernelsWidenCodesWithoutIntToFloatConversions()
    {
        var keys = EmbeddedKernels.Keys.Where(k => k.EndsWith(".Q8_0", StringComparison.Ordinal) || k.EndsWith(".Q4_0", StringComparison.Ordinal)
            || k.EndsWith(".MXFP4", StringComparison.Ordinal) || k.EndsWith(".Q4_K", StringComparison.Ordinal)).ToList();
        Assert.True(keys.Count >= 4 * 13, $"{keys.Count} block-format kernels");
        foreach (var key in keys)
        {
            var code = Ptx(key);
            bool mma = key.StartsWith("Mma", StringComparison.Ordinal), split = key.StartsWith("MmaSplit", StringComparison.Ordinal);
            if (!split) Assert.Matches(new Regex(@"ld(\.global)?\.v4\.b32"), code);
            // The tensor-core kernels read the split activations as 16-byte bf16 chunks, not Float4s.
            if (!mma || split) Assert.Matches(new Regex(@"ld(\.global)?\.v4\.f32"), code);
            if (!split) Assert.Contains("cvt.f32.f16", code);
            Assert.DoesNotMatch(new Regex(@"cvt\.rn\.f32\.[su](8|16|32)"), code);
            if (!key.StartsWith("Tile", StringComparison.Ordinal) && !mma) Assert.Contains("shfl.sync.bfly", code);
        }
    }
}
