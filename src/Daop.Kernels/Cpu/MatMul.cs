using System.Numerics.Tensors;
using System.Runtime.InteropServices;

namespace Daop.Kernels.Cpu;

/// <summary>
/// y = x · Wᵀ for a stored-dtype weight W [rows, cols] and fp32 activations x [tokens, cols] → y [tokens, rows].
/// The workhorse of every linear layer.
/// </summary>
public static unsafe class MatMul
{
    /// <summary>Computes y[t, r] = Σ_c x[t, c]·W[r, c] for every token t.</summary>
    public static void Forward(in WeightMatrix w, ReadOnlySpan<float> x, Span<float> y, int tokens)
    {
        Check(w, x, y, tokens);
        var row = t_row is { } r && r.Length >= w.Cols ? r : (t_row = new float[w.Cols]);
        for (int rr = 0; rr < w.Rows; rr++)
        {
            WidenRow(w, rr, row);
            for (int t = 0; t < tokens; t++)
                y[t * w.Rows + rr] = TensorPrimitives.Dot(x.Slice(t * w.Cols, w.Cols), row.AsSpan(0, w.Cols));
        }
    }

    [ThreadStatic] static float[]? t_row;

    /// <summary>Scalar twin of <see cref="Forward"/>: the reference every fast path is tested against.</summary>
    public static void Scalar(in WeightMatrix w, ReadOnlySpan<float> x, Span<float> y, int tokens)
    {
        Check(w, x, y, tokens);
        var row = new float[w.Cols];
        for (int r = 0; r < w.Rows; r++)
        {
            WidenRow(w, r, row);
            for (int t = 0; t < tokens; t++)
            {
                var xt = x.Slice(t * w.Cols, w.Cols);
                float acc = 0;
                for (int c = 0; c < w.Cols; c++) acc += xt[c] * row[c];
                y[t * w.Rows + r] = acc;
            }
        }
    }

    /// <summary>Widens row <paramref name="r"/> of <paramref name="w"/> to fp32.</summary>
    public static void WidenRow(in WeightMatrix w, int r, Span<float> dst)
    {
        var bytes = w.RowBytesSpan(r);
        switch (w.Type)
        {
            case DType.F32: MemoryMarshal.Cast<byte, float>(bytes).CopyTo(dst); break;
            case DType.BF16: Bf16.ToFloat(MemoryMarshal.Cast<byte, ushort>(bytes), dst); break;
            case DType.F16: TensorPrimitives.ConvertToSingle(MemoryMarshal.Cast<byte, Half>(bytes), dst); break;
        }
    }

    static void Check(in WeightMatrix w, ReadOnlySpan<float> x, Span<float> y, int tokens)
    {
        if (x.Length < (long)tokens * w.Cols) throw new ArgumentException($"x holds {x.Length} floats, need {tokens}x{w.Cols}");
        if (y.Length < (long)tokens * w.Rows) throw new ArgumentException($"y holds {y.Length} floats, need {tokens}x{w.Rows}");
    }
}
