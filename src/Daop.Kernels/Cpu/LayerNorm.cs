using System.Numerics.Tensors;

namespace Daop.Kernels.Cpu;

/// <summary>y = (x − mean) / sqrt(var + eps) · weight + bias, per row (PhiMoE's norm).</summary>
public static class LayerNorm
{
    /// <summary>Normalises each row of <paramref name="x"/> [rows, n] into <paramref name="y"/> (may alias x).</summary>
    public static void Forward(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias, float eps, Span<float> y)
    {
        int n = weight.Length;
        for (int o = 0; o + n <= x.Length; o += n)
        {
            var xr = x.Slice(o, n);
            var yr = y.Slice(o, n);
            float mean = TensorPrimitives.Sum(xr) / n;
            TensorPrimitives.Subtract(xr, mean, yr);
            float var = TensorPrimitives.SumOfSquares(yr) / n;
            TensorPrimitives.Multiply(yr, 1f / MathF.Sqrt(var + eps), yr);
            TensorPrimitives.FusedMultiplyAdd(yr, weight, bias, yr);
        }
    }

    /// <summary>Scalar twin.</summary>
    public static void Scalar(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias, float eps, Span<float> y)
    {
        int n = weight.Length;
        for (int o = 0; o + n <= x.Length; o += n)
        {
            double mean = 0, var = 0;
            for (int i = 0; i < n; i++) mean += x[o + i];
            mean /= n;
            for (int i = 0; i < n; i++) var += (x[o + i] - mean) * (x[o + i] - mean);
            var /= n;
            double inv = 1.0 / Math.Sqrt(var + eps);
            for (int i = 0; i < n; i++) y[o + i] = (float)((x[o + i] - mean) * inv) * weight[i] + bias[i];
        }
    }
}
