using Daop.Kernels;
using Daop.Kernels.Cpu;

namespace Daop.Tests.Kernels;

/// <summary>What the bf16 batch drivers (AMX tiles, AVX512-BF16 routines) must both satisfy, checked on either.</summary>
internal static unsafe class Bf16GemmChecks
{
    /// <summary>A driver's y = x·Wᵀ.</summary>
    public delegate void Forward(in WeightMatrix w, float* x, float* y, int tokens);

    /// <summary>A driver's fused g ← SiLU(x·Gateᵀ) ⊙ (x·Upᵀ), u ← x·Upᵀ.</summary>
    public delegate void GateUp(in WeightMatrix gate, in WeightMatrix up, float* x, float* g, float* u, int tokens);

    /// <summary>
    /// The fused gate/up equals the driver's own two products with SwiGLU applied: u exactly, g within 1e-5 relative.
    /// </summary>
    public static void GateUpAppliesSwiGlu(int inter, int hidden, int tokens, GateUp gateUp, Forward forward)
    {
        var gw = new ushort[inter * hidden];
        var uw = new ushort[inter * hidden];
        var gf = NativeWeights.Floats(gw.Length, seed: 1);
        var uf = NativeWeights.Floats(uw.Length, seed: 2);
        for (int i = 0; i < gw.Length; i++) { gw[i] = Bf16.FromFloat(gf[i]); uw[i] = Bf16.FromFloat(uf[i]); }
        var x = NativeWeights.Floats(tokens * hidden, seed: 3);
        var g1 = new float[tokens * inter];
        var u1 = new float[tokens * inter];
        var g2 = new float[tokens * inter];
        var u2 = new float[tokens * inter];
        fixed (ushort* pg = gw, pu = uw)
        fixed (float* px = x, a = g1, b = u1, c = g2, d = u2)
        {
            var gate = new WeightMatrix((byte*)pg, DType.BF16, inter, hidden);
            var up = new WeightMatrix((byte*)pu, DType.BF16, inter, hidden);
            gateUp(gate, up, px, a, b, tokens);
            forward(gate, px, c, tokens);
            forward(up, px, d, tokens);
        }
        Assert.Equal(u2, u1);
        for (int i = 0; i < g1.Length; i++)
        {
            float expected = g2[i] / (1 + MathF.Exp(-g2[i])) * u2[i];
            Assert.True(MathF.Abs(expected - g1[i]) <= 1e-5f * (MathF.Abs(expected) + 1e-3f), $"i={i}: {expected} vs {g1[i]}");
        }
    }

    /// <summary>
    /// fp32 math on x rounded to bf16, in double: a bf16 driver's <paramref name="actual"/> [tokens, rows] must match it
    /// up to fp32 summation (1e-6 of Σ|x·w|), and stay within <paramref name="exactBound"/> · Σ|x·w| (x's rounding) of the
    /// fp32-activation product.
    /// </summary>
    public static void AssertRoundedProduct(float[] wf, float[] x, float[] actual, int rows, int cols, int tokens, double exactBound, string what)
    {
        for (int t = 0; t < tokens; t++)
            for (int r = 0; r < rows; r++)
            {
                double rounded = 0, exact = 0, mag = 0;
                for (int c = 0; c < cols; c++)
                {
                    float xv = x[t * cols + c], w = wf[r * cols + c];
                    rounded += (double)Bf16.ToFloat(Bf16.FromFloat(xv)) * w;
                    exact += (double)xv * w;
                    mag += Math.Abs((double)xv * w);
                }
                float a = actual[t * rows + r];
                Assert.True(Math.Abs(a - rounded) <= 1e-6 * mag + 1e-7, $"{what} t={t} r={r}: {a} vs {rounded}");
                Assert.True(Math.Abs(a - exact) <= exactBound * mag + 1e-6 * mag, $"{what} t={t} r={r}: {a} vs fp32 {exact}");
            }
    }
}
