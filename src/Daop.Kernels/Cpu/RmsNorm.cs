using System.Numerics.Tensors;

namespace Daop.Kernels.Cpu;

/// <summary>y = x / sqrt(mean(x²) + eps) · weight, per row of length weight.Length.</summary>
public static class RmsNorm
{
    /// <summary>Normalises each row of <paramref name="x"/> [rows, n] into <paramref name="y"/> (may alias x).</summary>
    public static void Forward(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, float eps, Span<float> y)
    {
        int n = weight.Length;
        for (int o = 0; o + n <= x.Length; o += n)
        {
            var xr = x.Slice(o, n);
            var yr = y.Slice(o, n);
            float ms = TensorPrimitives.SumOfSquares(xr) / n;
            float inv = 1f / MathF.Sqrt(ms + eps);
            TensorPrimitives.Multiply(xr, inv, yr);
            TensorPrimitives.Multiply(yr, weight, yr);
        }
    }

    /// <summary>Scalar twin.</summary>
    public static void Scalar(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, float eps, Span<float> y)
    {
        int n = weight.Length;
        for (int o = 0; o + n <= x.Length; o += n)
        {
            double ss = 0;
            for (int i = 0; i < n; i++) ss += (double)x[o + i] * x[o + i];
            float inv = (float)(1.0 / Math.Sqrt(ss / n + eps));
            for (int i = 0; i < n; i++) y[o + i] = x[o + i] * inv * weight[i];
        }
    }
}
