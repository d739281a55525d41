using System.Runtime.InteropServices;
using Daop.Kernels;
using Daop.Kernels.Quant;

namespace Daop.Tests.Kernels;

/// <summary>
/// A random block-format <see cref="WeightMatrix"/> in native memory (exactly rows · RowBytes bytes), quantized from
/// fp32 with <see cref="BlockQuant"/> (or, for the 32-blocks Daop only reads, random integers under random finite fp16
/// scales and mins), freed on dispose.
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
            var dst = new Span<byte>(p + r * type.RowBytes(cols), (int)type.RowBytes(cols));
            if (type.IsGgufOnly()) RandomBlocks(type, rng, rs, dst);
            else
            {
                for (int c = 0; c < cols; c++) row[c] = (float)(rng.NextDouble() * 2 - 1) * rs;
                BlockQuant.QuantizeRow(type, row, dst);
            }
        }
        W = new WeightMatrix(p, type, rows, cols);
    }

    // Q4_1, Q5_0, Q5_1, IQ4_NL: random bytes, then the fp16 d (about rs/16, rs/127 for IQ4_NL's ±127 values, either sign)
    // and for Q4_1/Q5_1 the min (about rs).
    static void RandomBlocks(DType type, Random rng, float rs, Span<byte> dst)
    {
        if (type.IsKQuant()) throw new ArgumentException("K-quants: KQuantMatMulTests.Random", nameof(type));
        rng.NextBytes(dst);
        int bb = type.BlockBytes();
        for (int o = 0; o < dst.Length; o += bb)
        {
            BitConverter.TryWriteBytes(dst[o..], BitConverter.HalfToUInt16Bits((Half)((rng.NextDouble() * 2 - 1) * rs / (type == DType.IQ4_NL ? 127 : 16))));
            if (type is DType.Q4_1 or DType.Q5_1)
                BitConverter.TryWriteBytes(dst[(o + 2)..], BitConverter.HalfToUInt16Bits((Half)((rng.NextDouble() * 2 - 1) * rs)));
        }
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
