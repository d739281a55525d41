using Daop.Kernels;
using Daop.Kernels.Cpu;
using Daop.Kernels.Generated;

namespace Daop.Tests.Kernels;

/// <summary>The expert FFN on block weights, against <see cref="ExpertFfn.Scalar"/> on the dequantized weights.</summary>
public class QuantExpertFfnTests
{
    public static TheoryData<DType, int, int> Cases()
    {
        var data = new TheoryData<DType, int, int>();
        foreach (var t in new[] { DType.Q8_0, DType.Q4_0, DType.MXFP4 })
            foreach (var (h, i) in new[] { (80, 136), (64, 48), (256, 352), (4096, 96) }) data.Add(t, h, i);
        return data;
    }

    /// <summary>
    /// The tolerance is derived, not tuned. Below the batch threshold the int8 path quantizes x (each element moves by
    /// at most d/2 of its block), so gate and up move by at most E = Σ_b (d_b/2)·Σ|w| per output; h = SiLU(g)·u then
    /// moves by at most 1.1·E_g·|u| + |SiLU(g)|·E_u + 1.1·E_g·E_u (|SiLU'| ≤ 1.1), and the down projection adds
    /// Σ|down|·Δh plus the quantization of h itself (d_h/2 per element, d_h from |h| + Δh). On top: the fp32 matmul
    /// tolerance (2e-5 of Σ|terms|), widened as in <see cref="ExpertFfnTests"/> for SwiGLU's rounding.
    /// </summary>
    [Theory]
    [MemberData(nameof(Cases))]
    public void ForwardIsWithinTheQuantizationBoundOfTheDequantizedScalar(DType type, int hidden, int inter)
    {
        using var gate = new BlockWeights(type, inter, hidden, 1, 0.5f);
        using var up = new BlockWeights(type, inter, hidden, 2, 0.5f);
        using var down = new BlockWeights(type, hidden, inter, 3, 0.5f);
        float[] gf = gate.Dequantized(), uf = up.Dequantized(), df = down.Dequantized();
        foreach (int tokens in hidden <= 256 ? new[] { 1, 3, 5, 17, 40 } : new[] { 1, 5 })
        {
            var x = NativeWeights.Floats(tokens * hidden, 10 + tokens);
            var expected = new float[tokens * hidden];
            var scratch = new float[2 * tokens * inter];
            ExpertFfn.Scalar(gate.W, up.W, down.W, x, expected, tokens, scratch);
            var tol = Tolerance(gf, uf, df, hidden, inter, x, tokens, int8: tokens < QuantMatMul.OuterMinTokens(type));
            var actual = new float[tokens * hidden];
            actual.AsSpan().Fill(float.NaN);
            scratch.AsSpan().Fill(float.NaN);
            ExpertFfn.Forward(gate.W, up.W, down.W, x, actual, tokens, scratch);
            for (int i = 0; i < expected.Length; i++)
                Assert.True(Math.Abs(expected[i] - actual[i]) <= tol[i],
                    $"{type} {hidden}x{inter} tokens={tokens} [{i}]: expected {expected[i]}, got {actual[i]} (tol {tol[i]})");
        }
    }

    static double[] Tolerance(float[] gf, float[] uf, float[] df, int hidden, int inter, float[] x, int tokens, bool int8)
    {
        var tol = new double[tokens * hidden];
        var h = new double[inter];
        var eh = new double[inter];
        for (int t = 0; t < tokens; t++)
        {
            var xt = x.AsSpan(t * hidden, hidden);
            for (int r = 0; r < inter; r++)
            {
                double g = 0, u = 0, mg = 0, mu = 0, eg = 0, eu = 0;
                for (int c = 0; c < hidden; c++)
                {
                    g += (double)gf[r * hidden + c] * xt[c];
                    u += (double)uf[r * hidden + c] * xt[c];
                    mg += Math.Abs((double)gf[r * hidden + c] * xt[c]);
                    mu += Math.Abs((double)uf[r * hidden + c] * xt[c]);
                    if (int8)
                    {
                        double half = BlockAmax(xt, c) / 254;
                        eg += Math.Abs(gf[r * hidden + c]) * half;
                        eu += Math.Abs(uf[r * hidden + c]) * half;
                    }
                }
                // fp32 rounding of the two projections, as the plain-format tests allow.
                eg += 2e-5 * mg;
                eu += 2e-5 * mu;
                double s = g / (1 + Math.Exp(-g));
                h[r] = s * u;
                eh[r] = 1.1 * eg * Math.Abs(u) + Math.Abs(s) * eu + 1.1 * eg * eu + 1e-5 * Math.Abs(h[r]);
            }
            for (int r = 0; r < hidden; r++)
            {
                double m = 0, e = 0;
                for (int c = 0; c < inter; c++)
                {
                    double w = Math.Abs(df[r * inter + c]);
                    m += w * Math.Abs(h[c]);
                    e += w * eh[c];
                    if (int8) e += w * BlockAmax(h, eh, c) / 254;
                }
                tol[t * hidden + r] = 1.05 * e + 1e-4 * m + 1e-30;
            }
        }
        return tol;
    }

    /// <summary>Largest |x| in the block of column <paramref name="c"/>.</summary>
    static double BlockAmax(ReadOnlySpan<float> x, int c)
    {
        double m = 0;
        for (int j = c / 32 * 32; j < Math.Min(x.Length, c / 32 * 32 + 32); j++) m = Math.Max(m, Math.Abs(x[j]));
        return m;
    }

    /// <summary>Largest |h| + Δh in the block of column <paramref name="c"/>.</summary>
    static double BlockAmax(double[] h, double[] eh, int c)
    {
        double m = 0;
        for (int j = c / 32 * 32; j < Math.Min(h.Length, c / 32 * 32 + 32); j++) m = Math.Max(m, Math.Abs(h[j]) + eh[j]);
        return m;
    }

    [Theory]
    [InlineData(DType.Q8_0)]
    [InlineData(DType.Q4_0)]
    [InlineData(DType.MXFP4)]
    public void RegistryGivesBlockFormatsTheGenericKernel(DType type)
    {
        // The shapes the model configs generate bf16 kernels for.
        foreach (var (h, i) in new[] { (4096, 14336), (2048, 768), (2048, 1024) })
        {
            Assert.NotSame(GenericExpertKernel.Instance, ExpertKernelRegistry.Select(h, i, DType.BF16));
            Assert.Same(GenericExpertKernel.Instance, ExpertKernelRegistry.Select(h, i, type));
        }
    }
}
