using Daop.Engine.Device.Cpu;
using Daop.Kernels;
using Daop.Kernels.Cpu;
using Daop.Kernels.Gpu;
using Daop.Tests.Kernels;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;

namespace Daop.Tests.Gpu;

/// <summary>Norms, RoPE, attention, embedding and element-wise kernels on the CPU accelerator against the CPU kernels.</summary>
[Collection(GpuCollection.Name)]
public class GpuVectorKernelTests(GpuFixture gpu)
{
    static void Close(float want, float got, double tol, string what)
    {
        if (!(Math.Abs(want - got) <= tol)) Assert.Fail($"{what}: expected {want}, got {got} (tol {tol:E2})");
    }

    /// <summary>Tolerance 2e-5 · (|y| + |x|·inv·|w|) (+ the mean's share for LayerNorm): fp32 sums of ≤ 136 squares.</summary>
    [Theory]
    [InlineData(1, 1, 1, false)]
    [InlineData(3, 7, 1, false)]
    [InlineData(2, 80, 1, true)]
    [InlineData(5, 136, 1, false)]
    [InlineData(3, 33, 2, true)]
    [InlineData(3, 80, 4, false)]
    [InlineData(4, 16, 4, true)]
    [InlineData(1, 7, 4, true)]
    [InlineData(1, 256, 1, false)]   // wide rows: a group per row (NormRows), Float4s ...
    [InlineData(3, 1024, 1, true)]
    [InlineData(2, 257, 1, false)]   // ... or floats
    [InlineData(5, 330, 1, true)]
    public void NormMatchesScalar(int rows, int n, int lanes, bool layer)
    {
        var x = NativeWeights.Floats(rows * n, n + rows, 3f);
        for (int i = 0; i < x.Length; i++) x[i] += 0.5f; // a non-zero mean
        var w = NativeWeights.Floats(n, 2);
        var b = NativeWeights.Floats(n, 4);
        var want = new float[rows * n];
        if (layer) LayerNorm.Scalar(x, w, b, 1e-5f, want);
        else RmsNorm.Scalar(x, w, 1e-5f, want);
        using var xb = gpu.Upload(x);
        using var wb = gpu.Upload(w);
        using var bb = gpu.Upload(b);
        gpu.WithLanes(lanes, 1, () => gpu.Kernels.Norm(gpu.Stream, xb.View, xb.View, wb.View, layer ? bb.View : null, rows, n, 1e-5f));
        var got = gpu.Read(xb, rows * n);
        for (int r = 0; r < rows; r++)
        {
            double mean = layer ? x.Skip(r * n).Take(n).Average() : 0;
            double var = x.Skip(r * n).Take(n).Select(v => (v - mean) * (v - mean)).Average();
            double inv = 1 / Math.Sqrt(var + 1e-5);
            for (int i = 0; i < n; i++)
            {
                int k = r * n + i;
                double tol = 2e-5 * (Math.Abs(want[k]) + (Math.Abs(x[k]) + Math.Abs(mean)) * inv * Math.Abs(w[i])) + 1e-6 * Math.Abs(b[i]);
                Close(want[k], got[k], tol, $"rows={rows} n={n} lanes={lanes} layer={layer} [{r},{i}]");
            }
        }
    }

    /// <summary>x, residual r, weight, bias [rows, n] from <paramref name="seed"/>, x + r, and the CPU norm of x + r.</summary>
    internal static (float[] X, float[] R, float[] W, float[] B, float[] Sum, float[] Want) ResidualNormCase(int rows, int n, bool layer, int seed)
    {
        var x = NativeWeights.Floats(rows * n, seed, 3f);
        var r = NativeWeights.Floats(rows * n, seed + 1, 2f);
        var w = NativeWeights.Floats(n, seed + 2);
        var b = NativeWeights.Floats(n, seed + 3);
        var sum = x.Zip(r, (p, q) => p + q).ToArray();
        var want = new float[rows * n];
        if (layer) LayerNorm.Scalar(sum, w, b, 1e-5f, want);
        else RmsNorm.Scalar(sum, w, 1e-5f, want);
        return (x, r, w, b, sum, want);
    }

    /// <summary>With a residual: x += r is kept in x, and y is the norm of the sum (the add before a norm, fused).</summary>
    [Theory]
    [InlineData(3, 33, 1, false)]
    [InlineData(2, 80, 4, false)]
    [InlineData(3, 17, 4, true)]
    [InlineData(2, 1024, 1, false)]
    [InlineData(3, 258, 1, true)]
    public void NormAddsTheResidualFirst(int rows, int n, int lanes, bool layer)
    {
        var (x, r, w, b, sum, want) = ResidualNormCase(rows, n, layer, n + rows);
        using var xb = gpu.Upload(x);
        using var rb = gpu.Upload(r);
        using var yb = gpu.Zeros(rows * n);
        using var wb = gpu.Upload(w);
        using var bb = gpu.Upload(b);
        gpu.WithLanes(lanes, 1, () => gpu.Kernels.Norm(gpu.Stream, xb.View, yb.View, wb.View, layer ? bb.View : null, rows, n, 1e-5f, rb.View));
        var gotX = gpu.Read(xb, rows * n);
        var got = gpu.Read(yb, rows * n);
        for (int i = 0; i < rows * n; i++)
        {
            Assert.Equal(sum[i], gotX[i]);
            Close(want[i], got[i], 1e-5 * (Math.Abs(want[i]) + 4), $"rows={rows} n={n} lanes={lanes} layer={layer} [{i}]");
        }
    }

    /// <summary>q and k rotated in one launch equal two single launches.</summary>
    [Theory]
    [InlineData(1, 4, 2, 16, 8, 3)]
    [InlineData(3, 5, 1, 6, 3, 0)]
    [InlineData(2, 2, 2, 16, 4, 9)]    // partial rotary
    public void RopeOfQAndKInOneLaunch(int tokens, int heads, int kvHeads, int headDim, int half, int startPos)
    {
        using var r = gpu.Rope(startPos + tokens, half, tokens, heads, kvHeads, headDim);
        using var at = gpu.UploadStep((0, startPos, tokens, 0));
        gpu.Kernels.Rope(gpu.Stream, r.Q1.View, r.Cos.View, r.Sin.View, tokens, heads, headDim, half, at.View);
        gpu.Kernels.Rope(gpu.Stream, r.K1.View, r.Cos.View, r.Sin.View, tokens, kvHeads, headDim, half, at.View);
        gpu.Kernels.Rope(gpu.Stream, r.Q2.View, r.Cos.View, r.Sin.View, tokens, heads, headDim, half, at.View, r.K2.View, kvHeads);
        r.AssertSame();
    }

    [Theory]
    [InlineData(1, 4, 16, 8, 0)]
    [InlineData(3, 2, 16, 8, 5)]
    [InlineData(2, 5, 16, 4, 7)]   // partial rotary: only the first 8 of 16 dims turn
    [InlineData(4, 1, 6, 3, 1)]
    public void RopeMatchesScalar(int tokens, int heads, int headDim, int half, int startPos)
    {
        int positions = startPos + tokens;
        var cos = NativeWeights.Floats(positions * half, 1);
        var sin = NativeWeights.Floats(positions * half, 2);
        var x = NativeWeights.Floats(tokens * heads * headDim, 3);
        var want = (float[])x.Clone();
        for (int t = 0; t < tokens; t++)
            Rope.Scalar(want.AsSpan(t * heads * headDim, heads * headDim), cos.AsSpan((startPos + t) * half, half),
                sin.AsSpan((startPos + t) * half, half), heads, headDim);
        using var xb = gpu.Upload(x);
        using var cb = gpu.Upload(cos);
        using var sb = gpu.Upload(sin);
        using var at = gpu.UploadStep((0, startPos, tokens, 0));
        gpu.Kernels.Rope(gpu.Stream, xb.View, cb.View, sb.View, tokens, heads, headDim, half, at.View);
        var got = gpu.Read(xb, x.Length);
        for (int i = 0; i < x.Length; i++) Close(want[i], got[i], 1e-6 * (Math.Abs(want[i]) + 2), $"rope [{i}]");
    }

    /// <summary>
    /// Causal GQA with the fused K/V append against <see cref="CpuAttention"/>: outputs within 1e-5 · max|v|
    /// (softmax weights differ by a few ulps), cache rows appended exactly.
    /// </summary>
    [Theory]
    [InlineData(1, 0, 4, 2, 16, 0, 1, 1)]
    [InlineData(1, 6, 4, 2, 16, 0, 1, 1)]
    [InlineData(3, 0, 5, 1, 16, 0, 1, 1)]
    [InlineData(4, 6, 4, 2, 16, 3, 1, 1)]
    [InlineData(5, 2, 2, 2, 6, 0, 1, 1)]
    [InlineData(1, 9, 4, 2, 16, 4, 1, 1)]
    [InlineData(1, 0, 4, 2, 16, 0, 1, 4)]
    [InlineData(1, 13, 4, 2, 16, 0, 1, 4)]
    [InlineData(4, 6, 4, 2, 6, 3, 1, 3)]
    [InlineData(3, 10, 5, 1, 16, 5, 1, 2)]
    [InlineData(1, 6, 4, 2, 16, 0, 4, 1)]
    [InlineData(4, 6, 4, 2, 6, 3, 4, 1)]
    [InlineData(3, 5, 5, 1, 16, 0, 4, 1)]
    [InlineData(6, 3, 4, 2, 16, 0, 1, 2, 4)]   // chunks of 4 (Llama-4): queries on both sides of two chunk starts
    [InlineData(5, 6, 4, 2, 6, 3, 4, 1, 4)]    // a window and chunks
    public void AttentionMatchesCpu(int tokens, int startPos, int heads, int kvHeads, int d, int window, int lanes, int teams, int chunk = 0)
    {
        int cap = startPos + tokens + 2, kvDim = kvHeads * d, qDim = heads * d;
        var q = NativeWeights.Floats(tokens * qDim, 1, 2f);
        var k = NativeWeights.Floats(tokens * kvDim, 2);
        var v = NativeWeights.Floats(tokens * kvDim, 3);
        var kc = NativeWeights.Floats(cap * kvDim, 4);
        var vc = NativeWeights.Floats(cap * kvDim, 5);
        for (int i = (startPos + tokens) * kvDim; i < cap * kvDim; i++) { kc[i] = float.NaN; vc[i] = float.NaN; } // never read

        var wantK = (float[])kc.Clone();
        var wantV = (float[])vc.Clone();
        k.CopyTo(wantK, startPos * kvDim);
        v.CopyTo(wantV, startPos * kvDim);
        var want = new float[tokens * qDim];
        CpuAttention.Causal(q, wantK, wantV, want, tokens, startPos, heads, kvHeads, d, window > 0 ? window : null, chunk: chunk);

        using var qb = gpu.Upload(q);
        using var kb = gpu.Upload(k);
        using var vb = gpu.Upload(v);
        using var kcb = gpu.Upload(kc);
        using var vcb = gpu.Upload(vc);
        using var ob = gpu.Zeros(tokens * qDim);
        using var at = gpu.UploadStep((0, startPos, tokens, 0));
        gpu.WithLanes(1, lanes, () => gpu.Kernels.Attention(gpu.Stream, qb.View, kb.View, vb.View, kcb.View, vcb.View, ob.View,
            at.View, tokens, cap, heads, kvHeads, d, window, chunk: chunk), teams);
        var got = gpu.Read(ob, want.Length);
        for (int i = 0; i < want.Length; i++) Close(want[i], got[i], 1e-5, $"o[{i}] T={tokens} start={startPos} window={window} lanes={lanes} teams={teams}");
        var gotK = gpu.Read(kcb, (startPos + tokens) * kvDim);
        var gotV = gpu.Read(vcb, (startPos + tokens) * kvDim);
        Assert.Equal(wantK.AsSpan(0, gotK.Length).ToArray(), gotK);
        Assert.Equal(wantV.AsSpan(0, gotV.Length).ToArray(), gotV);
    }

    [Theory]
    [InlineData(DType.BF16, 33, 7)]
    [InlineData(DType.F16, 33, 80)]
    [InlineData(DType.F32, 5, 7)]
    [InlineData(DType.BF16, 389, 80)]
    public void EmbedMatchesWiden(DType type, int rows, int cols)
    {
        using var w = new NativeWeights(type, rows, cols, rows);
        int[] ids = [0, rows - 1, rows / 2, 1 % rows];
        var (tb, table) = gpu.Upload(w.W);
        using var _ = tb;
        using var ib = gpu.Upload(ids);
        using var xb = gpu.Zeros(ids.Length * cols);
        gpu.Kernels.Embed(gpu.Stream, table, ib.View, xb.View, ids.Length);
        var got = gpu.Read(xb, ids.Length * cols);
        var want = new float[ids.Length * cols];
        for (int t = 0; t < ids.Length; t++) MatMul.WidenRow(w.W, ids[t], want.AsSpan(t * cols, cols));
        Assert.Equal(want, got);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(33)]
    [InlineData(1000)]
    public void ElementwiseMatchCpu(int n)
    {
        var a = NativeWeights.Floats(n, 1, 4f);
        var x = NativeWeights.Floats(n, 2, 4f);
        using var ab = gpu.Upload(a);
        using var xb = gpu.Upload(x);
        gpu.Kernels.Add(gpu.Stream, ab.View, xb.View, n);
        Assert.Equal(a.Zip(x, (p, q) => p + q).ToArray(), gpu.Read(ab, n));
        gpu.Kernels.Clamp(gpu.Stream, xb.View, n, 1.5f);
        Assert.Equal(x.Select(v => Math.Clamp(v, -1.5f, 1.5f)).ToArray(), gpu.Read(xb, n));
        gpu.Kernels.Scale(gpu.Stream, ab.View, n, 0.22f);
        Assert.Equal(a.Zip(x, (p, q) => (p + q) * 0.22f).ToArray(), gpu.Read(ab, n));
        var scaled = gpu.Read(ab, n);
        int w = n >= 3 ? n / 3 : 1, rows = n / w;
        var rowScales = Enumerable.Range(0, rows).Select(r => 0.5f + r).ToArray();
        using var sb = gpu.Upload(rowScales);
        gpu.Kernels.ScaleRows(gpu.Stream, ab.View, sb.View, rows, w);
        Assert.Equal(scaled.Select((v, i) => i < rows * w ? v * rowScales[i / w] : v).ToArray(), gpu.Read(ab, n));

        int tokens = n >= 2 ? 2 : 1, width = n / tokens;
        var gate = new[] { 0.3f, -2f };
        using var acc = gpu.Upload(a);
        using var xs = gpu.Upload(x);
        using var gb = gpu.Upload(gate);
        gpu.Kernels.AddSigmoidScaled(gpu.Stream, acc.View, xs.View, gb.View, tokens, width);
        var got = gpu.Read(acc, n);
        for (int i = 0; i < n; i++)
        {
            float s = i < tokens * width ? 1f / (1f + MathF.Exp(-gate[i / width])) : 0f;
            Close(a[i] + s * x[i], got[i], 1e-6 * (Math.Abs(a[i]) + Math.Abs(x[i])), $"sigmoid-scaled [{i}]");
        }
    }

    [Fact]
    public void CombineSumsSlotsPerToken()
    {
        const int tokens = 3, topK = 3, width = 5;
        var yk = NativeWeights.Floats(tokens * topK * width, 9);
        using var ykb = gpu.Upload(yk);
        using var yb = gpu.Zeros(tokens * width);
        gpu.Kernels.Combine(gpu.Stream, ykb.View, yb.View, tokens, topK, width);
        var got = gpu.Read(yb, tokens * width);
        for (int t = 0; t < tokens; t++)
            for (int c = 0; c < width; c++)
            {
                float s = 0;
                for (int j = 0; j < topK; j++) s += yk[(t * topK + j) * width + c];
                Assert.Equal(s, got[t * width + c]);
            }
    }

    [Fact]
    public void HalfToFloatIsExactForEveryBitPattern()
    {
        for (int b = 0; b < 65536; b++)
        {
            float want = (float)BitConverter.UInt16BitsToHalf((ushort)b), got = GpuMath.HalfToFloat((uint)b);
            if (float.IsNaN(want)) Assert.True(float.IsNaN(got), $"0x{b:X4}");
            else Assert.Equal(BitConverter.SingleToInt32Bits(want), BitConverter.SingleToInt32Bits(got));
        }
    }

    [Fact]
    public void ExpIsWithinFewUlps()
    {
        for (float x = -103f; x < 88.7f; x += 0.0137f)
        {
            double want = Math.Exp(x), got = GpuMath.Exp(x);
            double tol = want < 1.2e-38 ? 3e-45 : 4e-7 * want; // subnormals: absolute
            Assert.True(Math.Abs(want - got) <= tol, $"exp({x}) = {want}, got {got}");
        }
        Assert.Equal(0f, GpuMath.Exp(-200f));
        Assert.Equal(0f, GpuMath.Exp(float.NegativeInfinity));
        Assert.Equal(float.PositiveInfinity, GpuMath.Exp(100f));
        Assert.Equal(1f, GpuMath.Exp(0f));
    }
}

/// <summary>The wide-row norm's group reduction across several warps (the shared fixture's groups are one warp).</summary>
public class GpuNormRowsWarpsTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void GroupOfFourWarpsMatchesScalar(bool layer)
    {
        const int rows = 3, n = 264;
        using var ctx = ILGPU.Context.Create(b => b.CPU(GpuKernels.CpuDevice(warpSize: 4, warpsPerGroup: 4)).Optimize(ILGPU.OptimizationLevel.O1));
        using var acc = ctx.GetCPUDevice(0).CreateCPUAccelerator(ctx, ILGPU.Runtime.CPU.CPUAcceleratorMode.Parallel);
        var k = GpuKernels.For(acc);
        Assert.Equal(16, acc.MaxNumThreadsPerGroup);
        var (x, r, w, bias, _, want) = GpuVectorKernelTests.ResidualNormCase(rows, n, layer, 11);
        using var xb = acc.Allocate1D(x);
        using var rb = acc.Allocate1D(r);
        using var wb = acc.Allocate1D(w);
        using var bb = acc.Allocate1D(bias);
        using var yb = acc.Allocate1D<float>(rows * n);
        k.Norm(acc.DefaultStream, xb.View, yb.View, wb.View, layer ? bb.View : null, rows, n, 1e-5f, rb.View);
        acc.Synchronize();
        var got = yb.GetAsArray1D();
        for (int i = 0; i < got.Length; i++)
            Assert.True(Math.Abs(want[i] - got[i]) <= 1e-5 * (Math.Abs(want[i]) + 4), $"[{i}]: expected {want[i]}, got {got[i]}");
    }
}
