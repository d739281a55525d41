using System.Runtime.InteropServices;
using Daop.Kernels;
using Daop.Kernels.Quant;

namespace Daop.Tests.Gpu;

/// <summary>
/// A random [rows, cols] matrix quantized row by row with <see cref="BlockQuant.QuantizeRow"/> into native memory (GGUF
/// blocks, as a loader hands them over), with its values as <see cref="BlockQuant.DequantizeRow"/> gives them: the
/// reference the GPU kernels must compute with.
/// </summary>
internal sealed unsafe class BlockWeights : IDisposable
{
    readonly float[][] _rows;

    public BlockWeights(DType type, int rows, int cols, int seed, float scale = 1f)
    {
        long rowBytes = type.RowBytes(cols);
        var p = (byte*)NativeMemory.AlignedAlloc((nuint)Math.Max(1, rows * rowBytes), 64);
        var rng = new Random(seed);
        var x = new float[cols];
        _rows = new float[rows][];
        for (int r = 0; r < rows; r++)
        {
            for (int c = 0; c < cols; c++) x[c] = (float)(rng.NextDouble() * 2 - 1) * scale;
            var dst = new Span<byte>(p + r * rowBytes, (int)rowBytes);
            BlockQuant.QuantizeRow(type, x, dst);
            _rows[r] = new float[cols];
            BlockQuant.DequantizeRow(type, dst, _rows[r]);
        }
        W = new WeightMatrix(p, type, rows, cols);
    }

    public WeightMatrix W { get; }

    /// <summary>Element [r, c] as the block's dequantized value.</summary>
    public float At(int r, int c) => _rows[r][c];

    /// <summary>The dequantized rows; the native memory now belongs to the caller (<see cref="W"/>'s data).</summary>
    internal float[][] DetachRows() => _rows;

    /// <summary>Row r dequantized.</summary>
    public float[] Row(int r) => _rows[r];

    public void Dispose() => NativeMemory.AlignedFree(W.Data);
}
