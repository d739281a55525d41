namespace Daop.Tests;

/// <summary>The comparison every logits test makes: max |expected − actual| ≤ tol · max(1, max |expected|).</summary>
static class LogitsAssert
{
    /// <summary>
    /// Fails when the largest error exceeds <paramref name="tol"/> · max(1, max |expected|), naming the worst element. A NaN
    /// anywhere (in either side) fails: it is kept as the worst error once seen, and NaN never passes the bound.
    /// </summary>
    public static void Close(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, string what, double tol = 1e-4)
    {
        Assert.Equal(expected.Length, actual.Length);
        double maxRef = 0, maxErr = 0;
        int at = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            maxRef = Math.Max(maxRef, Math.Abs(expected[i]));
            double err = Math.Abs(expected[i] - actual[i]);
            if (double.IsNaN(err) ? !double.IsNaN(maxErr) : err > maxErr) { maxErr = err; at = i; }
        }
        double limit = tol * Math.Max(1, maxRef);
        if (!(maxErr <= limit))
            Assert.Fail($"{what}: max error {maxErr:E3} at {at} (expected {expected[at]}, got {actual[at]}) exceeds {limit:E3}");
    }
}
