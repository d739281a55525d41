using System.Runtime.InteropServices;
using Daop.Kernels;
using Daop.Kernels.Quant;

namespace Daop.Tests.Gpu;

/// <summary>
/// A random [rows, cols] matrix quantized row by row with <see cref="BlockQuant.QuantizeRow"/> into native memory (GGUF
/// blocks, as a loader hands them over), with its values as <see cref="BlockQuant.DequantizeRow"/> gives them: the
/// reference the GPU kernels must compute with. The formats Daop only reads (<see cref="DTypes.IsGgufOnly"/>) are random
/// blocks (<see cref="Kernels.BlockWeights"/>, <see cref="Kernels.KQuantMatMulTests.Random"/>); where the device holds them
/// as Q8_0 (<see cref="Daop.Kernels.Gpu.GpuMatrix.DeviceType"/>) the reference is the row requantized as the upload does it.
/// </summary>
internal sealed unsafe class BlockWeights : IDisposable
{
    readonly float[][] _rows;

    public BlockWeights(DType type, int rows, int cols, int seed, float scale = 1f)
    {
        long rowBytes = type.RowBytes(cols);
        var p = (byte*)NativeMemory.AlignedAlloc((nuint)Math.Max(1, rows * rowBytes), 64);
        _rows = new float[rows][];
        if (type.IsGgufOnly())
        {
            using var src = type.IsKQuant() ? Kernels.KQuantMatMulTests.Random(type, rows, cols, seed) : new Kernels.BlockWeights(type, rows, cols, seed, scale);
            new ReadOnlySpan<byte>(src.W.Data, (int)(rows * rowBytes)).CopyTo(new Span<byte>(p, (int)(rows * rowBytes)));
            var device = Daop.Kernels.Gpu.GpuMatrix.DeviceType(type);
            var q8 = new byte[DType.Q8_0.RowBytes(cols)];
            for (int r = 0; r < rows; r++)
            {
                _rows[r] = new float[cols];
                BlockQuant.DequantizeRow(type, new ReadOnlySpan<byte>(p + r * rowBytes, (int)rowBytes), _rows[r]);
                if (device == type) continue;
                BlockQuant.QuantizeRow(device, _rows[r], q8);
                BlockQuant.DequantizeRow(device, q8, _rows[r]);
            }
            W = new WeightMatrix(p, type, rows, cols);
            return;
        }
        var rng = new Random(seed);
        var x = new float[cols];
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
