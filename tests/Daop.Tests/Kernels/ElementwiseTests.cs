using Daop.Kernels.Cpu;

namespace Daop.Tests.Kernels;

public class ElementwiseTests
{
    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(16)]
    [InlineData(33)]
    [InlineData(511)]
    [InlineData(1000)]
    [InlineData(5000)]
    public void SwiGluMatchesScalar(int n)
    {
        var g = NativeWeights.Floats(n, n, 30f);
        var u = NativeWeights.Floats(n, n + 1, 3f);
        var expected = (float[])g.Clone();
        var actual = (float[])g.Clone();
        SwiGlu.Scalar(expected, u);
        SwiGlu.Forward(actual, u);
        for (int i = 0; i < n; i++)
        {
            // Measured worst case ≈ 3e-7 relative (a few fp32 ulps); the absolute slack covers results below
            // ~1e-36, where fp32 exp(−g) overflows (g < −88.7) and the fast path returns ±0.
            double tol = 1e-6 * Math.Abs(expected[i]) + 1e-36;
            Assert.True(Math.Abs(expected[i] - actual[i]) <= tol, $"i={i} g={g[i]}: expected {expected[i]}, got {actual[i]}");
        }
    }

    [Fact]
    public void SwiGluExtremes()
    {
        float[] g = [0f, -0f, 1e-30f, -1e-30f, 16.6f, -16.6f, 86.6f, -86.6f, 88f, -88f, 88.72f, -88.72f, 100f, -100f, float.MaxValue, -float.MaxValue];
        var u = Enumerable.Repeat(1.5f, g.Length).ToArray();
        var expected = (float[])g.Clone();
        var actual = (float[])g.Clone();
        SwiGlu.Scalar(expected, u);
        SwiGlu.Forward(actual, u);
        for (int i = 0; i < g.Length; i++)
            Assert.True(expected[i] == actual[i] || Math.Abs(expected[i] - actual[i]) <= 1e-6 * Math.Abs(expected[i]) + 1e-36,
                $"g={g[i]}: expected {expected[i]}, got {actual[i]}");
    }

    [Theory]
    [InlineData(1, 64, 32)]
    [InlineData(4, 128, 64)]
    [InlineData(3, 80, 24)]   // partial rotary, half not a multiple of the vector width
    [InlineData(2, 6, 3)]
    public void RopeIsBitIdenticalToScalar(int heads, int headDim, int half)
    {
        var x = NativeWeights.Floats(heads * headDim, 1, 4f);
        var cos = NativeWeights.Floats(half, 2);
        var sin = NativeWeights.Floats(half, 3);
        var expected = (float[])x.Clone();
        var actual = (float[])x.Clone();
        Rope.Scalar(expected, cos, sin, heads, headDim);
        Rope.Apply(actual, cos, sin, heads, headDim);
        Assert.Equal(expected, actual);
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(3, 17)]
    [InlineData(2, 4096)]
    public void RmsNormMatchesScalar(int rows, int n)
    {
        var x = NativeWeights.Floats(rows * n, n, 5f);
        var w = NativeWeights.Floats(n, n + 1);
        var expected = new float[rows * n];
        var actual = new float[rows * n];
        RmsNorm.Scalar(x, w, 1e-6f, expected);
        RmsNorm.Forward(x, w, 1e-6f, actual);
        // Single-precision vs double-precision sum of squares: a few ulps of the scale factor.
        for (int i = 0; i < expected.Length; i++) Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-5 * Math.Abs(expected[i]) + 1e-6);
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(3, 17)]
    [InlineData(2, 4096)]
    public void LayerNormMatchesScalar(int rows, int n)
    {
        var x = NativeWeights.Floats(rows * n, n, 5f);
        var w = NativeWeights.Floats(n, n + 1);
        var b = NativeWeights.Floats(n, n + 2);
        var expected = new float[rows * n];
        var actual = new float[rows * n];
        LayerNorm.Scalar(x, w, b, 1e-5f, expected);
        LayerNorm.Forward(x, w, b, 1e-5f, actual);
        // Mean and variance in fp32 vs double: relative 1e-5 of the normalised value, absolute for values near 0.
        for (int i = 0; i < expected.Length; i++) Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-5 * Math.Abs(expected[i]) + 1e-5);
    }
}
