using System.Numerics.Tensors;

namespace Daop.Kernels.Cpu;

/// <summary>
/// y = softmax(x / T) computed as exp((x − max x) / T) / Σ, so no exponent is positive and the result is finite for any
/// finite input and any T &gt; 0 (TensorPrimitives.SoftMax exponentiates x itself: x above ~88.7 overflows to ∞ and the
/// quotient to NaN). Entries of −∞ get probability 0. A NaN in x gives NaN outputs (the caller's finiteness checks report it).
/// </summary>
public static class Softmax
{
    /// <summary>Writes softmax(<paramref name="x"/> / <paramref name="temperature"/>) into <paramref name="y"/> (may alias x).</summary>
    /// <remarks>When every entry is −∞ (nothing allowed) the result is all zeros rather than 0/0.</remarks>
    public static void Forward(ReadOnlySpan<float> x, Span<float> y, float temperature = 1)
    {
        Check(x, y, temperature);
        if (x.IsEmpty) return;
        y = y[..x.Length];
        float max = TensorPrimitives.Max(x);
        if (float.IsNegativeInfinity(max)) { y.Clear(); return; }
        // (x − max) ≤ 0 stays ≤ 0 after dividing by T, so exp never overflows; a finite x − max may round to −∞, which is fine.
        TensorPrimitives.Subtract(x, max, y);
        if (temperature != 1) TensorPrimitives.Divide(y, temperature, y); // not · 1/T: a subnormal T makes 1/T = ∞ and 0·∞ = NaN
        TensorPrimitives.Exp(y, y);
        float sum = TensorPrimitives.Sum(y);
        TensorPrimitives.Multiply(y, 1 / sum, y);
    }

    /// <summary>Scalar twin of <see cref="Forward"/> in double precision (the tests' reference).</summary>
    public static void Scalar(ReadOnlySpan<float> x, Span<float> y, float temperature = 1)
    {
        Check(x, y, temperature);
        if (x.IsEmpty) return;
        double max = double.NegativeInfinity;
        foreach (float v in x) max = Math.Max(max, v);
        if (double.IsNegativeInfinity(max)) { y[..x.Length].Clear(); return; }
        double sum = 0;
        Span<double> e = x.Length <= 1024 ? stackalloc double[x.Length] : new double[x.Length];
        for (int i = 0; i < x.Length; i++) sum += e[i] = Math.Exp(((double)x[i] - max) / temperature);
        for (int i = 0; i < x.Length; i++) y[i] = (float)(e[i] / sum);
    }

    static void Check(ReadOnlySpan<float> x, Span<float> y, float temperature)
    {
        if (y.Length < x.Length) throw new ArgumentException($"y holds {y.Length} floats, need {x.Length}", nameof(y));
        if (!(temperature > 0) || float.IsPositiveInfinity(temperature))
            throw new ArgumentOutOfRangeException(nameof(temperature), temperature, "must be a positive finite number");
    }
}
