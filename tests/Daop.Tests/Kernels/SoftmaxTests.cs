using Daop.Kernels.Cpu;

namespace Daop.Tests.Kernels;

public class SoftmaxTests
{
    [Theory]
    [InlineData(1, 1f, 1f)]
    [InlineData(7, 5f, 1f)]
    [InlineData(33, 100f, 1f)]      // raw logits above 88.7: exp(x) overflows without the max subtracted
    [InlineData(1000, 1000f, 1f)]
    [InlineData(151_936, 30f, 0.05f)] // a real vocabulary at low temperature: x / T reaches 600
    [InlineData(64, 3e38f, 1f)]     // near float.MaxValue, where x − max itself can overflow to −∞
    [InlineData(64, 10f, 1e-30f)]
    public void MatchesScalarAndSumsToOne(int n, float amplitude, float temperature)
    {
        var rnd = new Random(n);
        var x = Enumerable.Range(0, n).Select(_ => (float)(rnd.NextDouble() * 2 - 1) * amplitude).ToArray();
        var want = new float[n];
        var got = new float[n];
        Softmax.Scalar(x, want, temperature);
        Softmax.Forward(x, got, temperature);
        double sum = 0;
        for (int i = 0; i < n; i++)
        {
            Assert.True(float.IsFinite(got[i]), $"y[{i}] = {got[i]} for x = {x[i]}");
            Assert.True(Math.Abs(want[i] - got[i]) <= 1e-5 * Math.Max(want[i], 1e-6), $"y[{i}]: {got[i]} vs {want[i]}");
            sum += got[i];
        }
        Assert.Equal(1, sum, 1e-4);
    }

    [Fact]
    public void NegativeInfinityGetsZeroAndAllMaskedGivesZeros()
    {
        float[] x = [float.NegativeInfinity, 500f, float.NegativeInfinity, 499f];
        var y = new float[4];
        Softmax.Forward(x, y);
        Assert.Equal([0f, (float)(1 / (1 + Math.Exp(-1))), 0f, (float)(Math.Exp(-1) / (1 + Math.Exp(-1)))], y, (a, b) => Math.Abs(a - b) < 1e-6);
        Softmax.Forward([float.NegativeInfinity, float.NegativeInfinity], y);
        Assert.Equal(0f, y[0]);
        Assert.Equal(0f, y[1]);
    }

    [Fact]
    public void SubnormalTemperatureIsOneHotAtTheMaximum()
    {
        float[] x = [1f, 3f, 2f];
        var y = new float[3];
        Softmax.Forward(x, y, float.Epsilon);
        Assert.Equal([0f, 1f, 0f], y);
    }

    [Fact]
    public void RejectsNonPositiveTemperature()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Softmax.Forward([1f], new float[1], 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => Softmax.Forward([1f], new float[1], float.NaN));
    }
}

public class NonFiniteTests
{
    [Theory]
    [InlineData(0, -1)]
    [InlineData(5, 3)]
    [InlineData(16, 15)]
    [InlineData(17, 16)]
    [InlineData(100, 40)]
    [InlineData(1000, -1)]
    public void FindsTheFirstNonFiniteValue(int n, int at)
    {
        foreach (float bad in new[] { float.NaN, float.PositiveInfinity, float.NegativeInfinity })
        {
            var x = Enumerable.Range(0, n).Select(i => (float)Math.Sin(i) * 3e38f).ToArray();
            if (at >= 0) { x[at] = bad; if (at + 3 < n) x[at + 3] = float.NaN; }
            Assert.Equal(NonFinite.Scalar(x), NonFinite.IndexOf(x));
            Assert.Equal(at, NonFinite.IndexOf(x));
        }
    }
}
