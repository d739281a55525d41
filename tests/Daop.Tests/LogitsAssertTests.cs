using Xunit.Sdk;

namespace Daop.Tests;

public class LogitsAssertTests
{
    [Fact]
    public void PassesWithinTheBoundAndOnExactMatches()
    {
        float[] want = [1, 2, 3, 4];
        LogitsAssert.Close(want, want, "exact");
        LogitsAssert.Close(want, [1, 2, 3, 4.0003f], "within 1e-4 · 4");
        LogitsAssert.Close([], [], "empty");
    }

    [Fact]
    public void FailsPastTheBoundNamingTheWorstElement()
    {
        var e = Assert.Throws<FailException>(() => LogitsAssert.Close([1, 2, 3, 4], [1, 2.001f, 3, 4], "x"));
        Assert.Contains("at 1", e.Message);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(2)]
    [InlineData(3)]
    public void ANanAnywhereFails(int at)
    {
        float[] want = [1, 2, 3, 4];
        var got = (float[])want.Clone();
        got[at] = float.NaN;
        if (at < 3) got[3] = 4.0001f; // a finite error after the NaN must not hide it
        var e = Assert.Throws<FailException>(() => LogitsAssert.Close(want, got, "nan"));
        Assert.Contains($"at {at}", e.Message);
        Assert.Throws<FailException>(() => LogitsAssert.Close(got, want, "nan in expected"));
    }
}
