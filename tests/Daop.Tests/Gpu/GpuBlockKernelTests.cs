using Daop.Engine.Device.Gpu;
using Daop.Engine.Model;
using Daop.Engine.Model.Layers;
using Daop.Engine.Schedule;
using Daop.Kernels;
using Daop.Kernels.Gpu;
using Daop.Tests.Kernels;
using ILGPU.Runtime;

namespace Daop.Tests.Gpu;

/// <summary>
/// Every kernel on the block formats (Q8_0, Q4_0, MXFP4, Q4_K, and the GGUF formats the device holds as Q8_0) on the ILGPU CPU accelerator against a double-precision
/// reference computed from <see cref="Daop.Kernels.Quant.BlockQuant"/>-dequantized weights: the decode GEMV, the
/// few-token row kernel and the batched tile kernel (Linear), routed experts through <see cref="GpuExpertScheduler"/>
/// (fused down-and-combine, grouped row kernels, batched tiles), the dense FFN and the embedding lookup. Shapes cover a
/// row of whole 256-column groups, blocks past the last group and a partial last block. Tolerances are the dense
/// kernels': 1e-5 · Σ|x·w| per Linear output, 2e-5 · M per expert output (M as in <see cref="GpuExpertTests"/>): the GPU
/// sums exactly the same products (every code widened exactly, scales exact) in another order.
/// </summary>
[Collection(GpuCollection.Name)]
public class GpuBlockKernelTests(GpuFixture gpu)
{
    static readonly DType[] Formats = [DType.Q8_0, DType.Q4_0, DType.MXFP4];

    public static TheoryData<DType, int, int, int, int, int> GemvCases()
    {
        var data = new TheoryData<DType, int, int, int, int, int>();
        // 40: one whole block and a partial one; 256: one whole group; 296: a group, a block and a partial block.
        foreach (var t in Formats)
        {
            foreach (var (rows, cols) in new[] { (5, 40), (3, 256), (6, 296) })
                foreach (int tokens in new[] { 1, 3, 5 })   // decode GEMV (two rows a team), row kernel, tile kernel
                    data.Add(t, rows, cols, tokens, 1, 2);
            data.Add(t, 6, 296, 1, 4, 2);                   // warp-wide teams: the shuffle reduction
            data.Add(t, 5, 296, 1, 4, 1);                   // one row a team
            data.Add(t, 3, 520, 2, 4, 2);
        }
        // Q4_K (rows of whole 256-column super-blocks, a scale and a min per 32-block).
        foreach (var (rows, cols) in new[] { (5, 256), (3, 512) })
            foreach (int tokens in new[] { 1, 3, 5 })
                data.Add(DType.Q4_K, rows, cols, tokens, 1, 2);
        data.Add(DType.Q4_K, 6, 512, 1, 4, 2);
        data.Add(DType.Q4_K, 5, 256, 1, 4, 1);
        // The formats the device holds as Q8_0, requantized at upload.
        data.Add(DType.Q6_K, 3, 256, 1, 1, 2);
        data.Add(DType.Q5_K, 3, 512, 5, 4, 2);
        data.Add(DType.Q2_K, 4, 256, 3, 1, 2);
        data.Add(DType.Q5_0, 6, 296, 1, 4, 2);
        data.Add(DType.IQ4_NL, 5, 40, 5, 1, 2);
        return data;
    }

    [Theory]
    [MemberData(nameof(GemvCases))]
    public void GemvMatchesDequantizedReference(DType type, int rows, int cols, int tokens, int lanes, int blockRows) =>
        CheckGemv(gpu, type, rows, cols, tokens, lanes, blockRows);

    /// <summary>Linear (with a bias) on <paramref name="gpu"/>'s kernels against the double reference, within tol · Σ|x·w|.</summary>
    internal static void CheckGemv(GpuFixture gpu, DType type, int rows, int cols, int tokens, int lanes, int blockRows, double tol = 1e-5)
    {
        using var w = new BlockWeights(type, rows, cols, seed: rows * 31 + cols, scale: 0.5f);
        var x = NativeWeights.Floats(tokens * cols, seed: 7);
        var bias = NativeWeights.Floats(rows, seed: 9);
        var want = new float[tokens * rows];
        var mag = new float[tokens * rows];
        for (int t = 0; t < tokens; t++)
            for (int r = 0; r < rows; r++)
            {
                double s = 0, a = 0;
                for (int c = 0; c < cols; c++) { double p = (double)x[t * cols + c] * w.At(r, c); s += p; a += Math.Abs(p); }
                want[t * rows + r] = (float)(s + bias[r]);
                mag[t * rows + r] = (float)(a + Math.Abs(bias[r]));
            }
        var (wb, gm) = gpu.Upload(w.W);
        using var _ = wb;
        Assert.Equal(GpuMatrix.DeviceType(type), gm.Type);
        using var xb = gpu.Upload(x);
        using var yb = gpu.Zeros(tokens * rows);
        using var bb = gpu.Upload(bias);
        var k = GpuKernels.For(gpu.Accelerator, gpu.Kernels.Options with { Lanes = lanes, BlockRows = blockRows });
        k.Gemv(gpu.Stream, gm, xb.View, yb.View, tokens, bb.View);
        GpuRowKernelTests.AssertClose(want, gpu.Read(yb, tokens * rows), mag, $"{type} {rows}x{cols} T={tokens} lanes={lanes} rows/team={blockRows}", tol);
    }

    /// <summary>
    /// Routed experts (hidden 264: a group and a partial block; inter 256: one group) through the scheduler: 1–2 tokens the
    /// fused gate/up + down-and-combine (two or one down rows a team), 3 the grouped row kernels, 12 over 2 experts the
    /// batched tile kernels.
    /// </summary>
    [Theory]
    [InlineData(DType.Q8_0, 1, 1, 2, 264)]
    [InlineData(DType.Q4_0, 1, 1, 2, 264)]
    [InlineData(DType.MXFP4, 1, 1, 2, 264)]
    [InlineData(DType.Q4_0, 1, 4, 1, 264)]
    [InlineData(DType.Q4_0, 2, 4, 2, 264)]
    [InlineData(DType.MXFP4, 2, 4, 1, 264)]
    [InlineData(DType.MXFP4, 3, 1, 2, 264)]
    [InlineData(DType.Q8_0, 3, 4, 2, 264)]
    [InlineData(DType.Q4_0, 12, 1, 2, 264)]
    [InlineData(DType.Q8_0, 12, 1, 2, 264)]
    [InlineData(DType.MXFP4, 12, 1, 2, 264)]
    [InlineData(DType.Q4_0, 1, 4, 2, 265)]   // odd rows of down (a pair's second row absent); unaligned gate/up input
    [InlineData(DType.Q4_K, 1, 1, 2, 256)]
    [InlineData(DType.Q4_K, 2, 4, 1, 256)]
    [InlineData(DType.Q4_K, 3, 4, 2, 512)]
    [InlineData(DType.Q4_K, 12, 1, 2, 256)]
    [InlineData(DType.Q6_K, 2, 1, 2, 256)]
    public void RoutedExpertsMatchDequantizedReference(DType type, int tokens, int lanes, int blockRows, int hidden) =>
        GpuExpertTests.CheckRoutedExperts(gpu, type, tokens, topK: 2, numExperts: tokens > 4 ? 2 : 4, lanes, launches: null,
            hidden: hidden, inter: 256, blockRows: blockRows);

    /// <summary>A quantized dense FFN (a shared expert) through <see cref="GpuDevice.Ffn"/>: row kernels, then the tiles.</summary>
    [Theory]
    [InlineData(DType.Q4_0, 1)]
    [InlineData(DType.MXFP4, 2)]
    [InlineData(DType.Q8_0, 5)]
    public void DenseFfnMatchesDequantizedReference(DType type, int tokens)
    {
        const int hidden = 72, inter = 296;
        using var ex = new GpuExpertTests.Expert(type, hidden, inter, 41);
        var x = NativeWeights.Floats(tokens * hidden, 3);
        using var dev = new GpuDevice(gpu.Accelerator, gpu.Kernels.Options);
        var xb = dev.Allocate(tokens * hidden);
        var yb = dev.Allocate(tokens * hidden);
        ((GpuBuffer)xb).View.SubView(0, x.Length).CopyFromCPU(dev.Stream, x);
        dev.Ffn(ex.W, xb, yb, tokens);
        var got = new float[tokens * hidden];
        dev.CopyToHost(yb, 0, got);
        for (int t = 0; t < tokens; t++)
        {
            var (y, m) = ex.Reference(x.AsSpan(t * hidden, hidden));
            GpuExpertTests.AssertClose(y, m, got.AsSpan(t * hidden, hidden).ToArray(), $"{type} FFN T={tokens} token {t}");
        }
    }

    /// <summary>
    /// One expert whose down matrix has another format than gate and up (block or bf16), as mixed-precision files store
    /// them; decode, row and tile kernels. Gate and up of different row layouts are refused, not misread.
    /// </summary>
    [Theory]
    [InlineData(DType.Q4_0, DType.Q4_0, DType.Q8_0, 1)]
    [InlineData(DType.MXFP4, DType.MXFP4, DType.BF16, 1)]
    [InlineData(DType.BF16, DType.BF16, DType.Q4_0, 3)]
    [InlineData(DType.Q8_0, DType.Q8_0, DType.MXFP4, 6)]
    public void MixedFormatExpertMatchesDequantizedReference(DType gateType, DType upType, DType downType, int tokens)
    {
        const int hidden = 264, inter = 296;
        using var gate = new Weights(gateType, inter, hidden, 51, 1f / MathF.Sqrt(hidden));
        using var up = new Weights(upType, inter, hidden, 52, 1f / MathF.Sqrt(hidden));
        using var down = new Weights(downType, hidden, inter, 53, 1f / MathF.Sqrt(inter));
        var x = NativeWeights.Floats(tokens * hidden, 3);
        using var dev = new GpuDevice(gpu.Accelerator, gpu.WithRowLanes(gpu.Accelerator.WarpSize));
        var xb = dev.Allocate(tokens * hidden);
        var yb = dev.Allocate(tokens * hidden);
        ((GpuBuffer)xb).View.SubView(0, x.Length).CopyFromCPU(dev.Stream, x);
        dev.Ffn(new ExpertWeights(gate.W, up.W, down.W), xb, yb, tokens);
        var got = new float[tokens * hidden];
        dev.CopyToHost(yb, 0, got);
        for (int t = 0; t < tokens; t++)
        {
            var h = new double[inter];
            var hm = new double[inter];
            for (int c = 0; c < inter; c++)
            {
                double g = 0, u = 0, mg = 0, mu = 0;
                for (int i = 0; i < hidden; i++)
                {
                    double xi = x[t * hidden + i];
                    g += xi * gate.At(c, i); mg += Math.Abs(xi * gate.At(c, i));
                    u += xi * up.At(c, i); mu += Math.Abs(xi * up.At(c, i));
                }
                double sg = 1 / (1 + Math.Exp(-g)), silu = g * sg, dsilu = sg * (1 + g * (1 - sg));
                h[c] = silu * u;
                hm[c] = Math.Abs(h[c]) + Math.Abs(dsilu * u) * mg + Math.Abs(silu) * mu;
            }
            var want = new double[hidden];
            var mag = new double[hidden];
            for (int r = 0; r < hidden; r++)
                for (int c = 0; c < inter; c++) { want[r] += down.At(r, c) * h[c]; mag[r] += Math.Abs(down.At(r, c)) * hm[c]; }
            GpuExpertTests.AssertClose(want, mag, got.AsSpan(t * hidden, hidden).ToArray(), $"{gateType}/{upType}/{downType} T={tokens} token {t}");
        }
    }

    [Fact]
    public void GateAndUpOfDifferentLayoutsAreRefused()
    {
        using var gate = new Weights(DType.Q4_0, 8, 64, 1, 0.1f);
        using var up = new Weights(DType.Q8_0, 8, 64, 2, 0.1f);
        using var down = new Weights(DType.Q4_0, 64, 8, 3, 0.1f);
        using var dev = new GpuDevice(gpu.Accelerator, gpu.Kernels.Options);
        var xb = dev.Allocate(64);
        var yb = dev.Allocate(64);
        var e = Assert.Throws<NotSupportedException>(() => dev.Ffn(new ExpertWeights(gate.W, up.W, down.W), xb, yb, 1));
        Assert.Contains("one row stride", e.Message);
    }

    // A block-format or bf16 matrix with its reference values.
    sealed class Weights(DType type, int rows, int cols, int seed, float scale) : IDisposable
    {
        readonly BlockWeights? _block = type.IsBlock() ? new BlockWeights(type, rows, cols, seed, scale) : null;
        readonly NativeWeights? _dense = type.IsBlock() ? null : new NativeWeights(type, rows, cols, seed, scale);
        public WeightMatrix W => _block?.W ?? _dense!.W;
        public float At(int r, int c) => _block?.At(r, c) ?? _dense!.At(r, c);
        public void Dispose() { _block?.Dispose(); _dense?.Dispose(); }
    }

    /// <summary>A quantized embedding table: rows widened to exactly the dequantized values.</summary>
    [Theory]
    [InlineData(DType.Q8_0, 296)]
    [InlineData(DType.Q4_0, 296)]
    [InlineData(DType.MXFP4, 296)]
    [InlineData(DType.Q4_K, 512)]
    [InlineData(DType.Q6_K, 256)]
    public void EmbedReadsDequantizedRows(DType type, int cols)
    {
        using var table = new BlockWeights(type, 7, cols, seed: 3);
        var (tb, tm) = gpu.Upload(table.W);
        using var _ = tb;
        int[] tokens = [6, 0, 3];
        using var ib = gpu.Upload(tokens);
        using var xb = gpu.Zeros(tokens.Length * cols);
        gpu.Kernels.Embed(gpu.Stream, tm, ib.View, xb.View, tokens.Length);
        var got = gpu.Read(xb, tokens.Length * cols);
        for (int t = 0; t < tokens.Length; t++)
            Assert.Equal(table.Row(tokens[t]), got.AsSpan(t * cols, cols).ToArray());
    }
}
