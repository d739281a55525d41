using Daop.Kernels.Cpu;
using Daop.Kernels.Gpu;
using Daop.Tests.Kernels;
using ILGPU;
using ILGPU.Runtime;

namespace Daop.Tests.Gpu;

/// <summary>Multi-head latent attention's ILGPU kernels on the CPU accelerator against the CPU kernels.</summary>
[Collection(GpuCollection.Name)]
public class GpuLatentKernelTests(GpuFixture gpu)
{
    static ArrayView<float> At(MemoryBuffer1D<float, Stride1D.Dense> b, int offset) => ((ArrayView<float>)b.View).SubView(offset);

    [Theory]
    [InlineData(3, 5, 7, 33, 2, 3)]
    [InlineData(2, 4, 24, 16, 0, 8)]
    public void HeadMatMulMatchesCpu(int tokens, int heads, int rows, int cols, int xPad, int yPad)
    {
        int xStride = cols + xPad, yStride = rows + yPad, xOff = xPad / 2, yOff = yPad - yPad / 3;
        var w = NativeWeights.Floats(heads * rows * cols, 1);
        var x = NativeWeights.Floats(tokens * heads * xStride, 2);
        var want = NativeWeights.Floats(tokens * heads * yStride, 3);
        using var wb = gpu.Upload(w);
        using var xb = gpu.Upload(x);
        using var yb = gpu.Upload(want);
        LatentAttention.HeadMatMulScalar(w, x, xStride, xOff, want, yStride, yOff, tokens, heads, rows, cols);
        gpu.Kernels.HeadMatMul(gpu.Stream, wb.View, xb.View, yb.View, new HeadMatMulArgs
        {
            Tokens = tokens, Heads = heads, Rows = rows, Cols = cols, XStride = xStride, XOffset = xOff, YStride = yStride, YOffset = yOff,
        });
        var got = gpu.Read(yb, want.Length);
        for (int i = 0; i < want.Length; i++)
            Assert.True(Math.Abs(want[i] - got[i]) <= 1e-5 * (1 + Math.Abs(want[i])), $"[{i}] {want[i]} vs {got[i]}");
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void AppendAndAttendMatchCpu(bool interleaved)
    {
        const int nh = LatentAttentionTests.Case.NH, r = LatentAttentionTests.Case.R, dr = LatentAttentionTests.Case.Dr, dn = LatentAttentionTests.Case.Dn;
        var c = new LatentAttentionTests.Case(6);
        var a = c.Shape(interleaved);
        int w = a.Width;
        // The CPU kernels' cache and outputs after two calls (positions 0..3, then 4..5).
        var qc = NativeWeights.Floats(6 * nh * w, 21);
        var cache = new float[6 * w];
        var o = new float[6 * nh * r];
        using var qb = gpu.Upload(c.Q);
        using var qcb = gpu.Upload(qc);
        using var cb = gpu.Upload(c.C);
        using var kb = gpu.Upload(c.KPe);
        using var cacheb = gpu.Zeros(6 * w);
        using var ob = gpu.Zeros(6 * nh * r);
        using var cosb = gpu.Upload(c.Cos);
        using var sinb = gpu.Upload(c.Sin);
        foreach (var (start, n) in new[] { (0, 4), (4, 2) })
        {
            var q = c.Q.AsSpan(start * nh * (dn + dr));
            LatentAttention.Append(q, qc.AsSpan(start * nh * w), c.C.AsSpan(start * r), c.KPe.AsSpan(start * dr), cache, c.Cos, c.Sin, a, n, start);
            LatentAttention.Attend(qc.AsSpan(start * nh * w), cache, o.AsSpan(start * nh * r), a, n, start);
            var args = new LatentArgs
            {
                Tokens = n, StartPos = start, Heads = nh, Rank = r, RopeDim = dr, QStride = dn + dr, QRopeOffset = dn,
                Interleaved = interleaved ? 1 : 0, Scale = a.Scale,
            };
            gpu.Kernels.LatentAppend(gpu.Stream, At(qb, start * nh * (dn + dr)), At(qcb, start * nh * w), At(cb, start * r),
                At(kb, start * dr), cacheb.View, cosb.View, sinb.View, args);
            gpu.Kernels.LatentAttend(gpu.Stream, At(qcb, start * nh * w), cacheb.View, At(ob, start * nh * r), args);
        }
        Assert.Equal(qc, gpu.Read(qcb, qc.Length));                       // the same products and sums: bit for bit
        Assert.Equal(cache, gpu.Read(cacheb, cache.Length));
        var got = gpu.Read(ob, o.Length);
        for (int i = 0; i < o.Length; i++)
            Assert.True(Math.Abs(o[i] - got[i]) <= 1e-5 * (1 + Math.Abs(o[i])), $"[{i}] {o[i]} vs {got[i]}");
    }
}
