using System.Runtime.InteropServices;
using Daop.Kernels;
using Daop.Kernels.Quant;

namespace Daop.Tests.Kernels;

/// <summary>
/// A random block-format <see cref="WeightMatrix"/> in native memory (exactly rows · RowBytes bytes), quantized from
/// fp32 with <see cref="BlockQuant"/>, freed on dispose.
/// </summary>
internal sealed unsafe class BlockWeights : IDisposable
{
    public WeightMatrix W { get; }

    public BlockWeights(DType type, int rows, int cols, int seed, float scale = 1f)
    {
        var p = (byte*)NativeMemory.AlignedAlloc((nuint)Math.Max(1, rows * type.RowBytes(cols)), 64);
        var row = new float[cols];
        var rng = new Random(seed);
        for (int r = 0; r < rows; r++)
        {
            // Each row a different magnitude, so block scales vary along a column too.
            float rs = scale * (float)Math.Pow(2, rng.Next(-3, 4));
            for (int c = 0; c < cols; c++) row[c] = (float)(rng.NextDouble() * 2 - 1) * rs;
            BlockQuant.QuantizeRow(type, row, new Span<byte>(p + r * type.RowBytes(cols), (int)type.RowBytes(cols)));
        }
        W = new WeightMatrix(p, type, rows, cols);
    }

    /// <summary>Wraps raw block bytes (copied), for hand-made extreme blocks.</summary>
    public BlockWeights(DType type, int rows, int cols, ReadOnlySpan<byte> bytes)
    {
        var p = (byte*)NativeMemory.AlignedAlloc((nuint)Math.Max(1, rows * type.RowBytes(cols)), 64);
        bytes.CopyTo(new Span<byte>(p, (int)(rows * type.RowBytes(cols))));
        W = new WeightMatrix(p, type, rows, cols);
    }

    /// <summary>The matrix dequantized by <see cref="BlockQuant.DequantizeRow"/>, [rows, cols].</summary>
    public float[] Dequantized()
    {
        var all = new float[W.Rows * W.Cols];
        for (int r = 0; r < W.Rows; r++) BlockQuant.DequantizeRow(W.Type, W.RowBytesSpan(r), all.AsSpan(r * W.Cols, W.Cols));
        return all;
    }

    public void Dispose() => NativeMemory.AlignedFree(W.Data);
}
