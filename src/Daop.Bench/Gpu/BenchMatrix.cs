using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Daop.Kernels;
using Daop.Kernels.Quant;

namespace Daop.Bench.Gpu;

/// <summary>
/// A random host matrix of any dtype for the GPU checks and timings, freed on dispose: the unblocked dtypes from
/// <see cref="RandomWeights.Matrix"/>; the block formats as random GGUF blocks (uniform codes, scales so that values
/// reach about ±scale), which is fast at Mixtral's shapes and covers every code (the K-quants from
/// <see cref="RandomWeights.Matrix"/>). <see cref="Row"/> is the reference: <see cref="BlockQuant.DequantizeRow"/> for the
/// block formats.
/// </summary>
public sealed unsafe class BenchMatrix : IDisposable
{
    BenchMatrix(WeightMatrix w) => W = w;

    /// <summary>The matrix.</summary>
    public WeightMatrix W { get; }

    /// <summary>A random [rows, cols] matrix of <paramref name="type"/> with values within about ±<paramref name="scale"/>.</summary>
    public static BenchMatrix Random(DType type, int rows, int cols, uint seed, float scale)
    {
        if (!type.IsBlock() || type.IsKQuant()) return new BenchMatrix(RandomWeights.Matrix(type, rows, cols, seed, scale));
        long rowBytes = type.RowBytes(cols);
        var p = (byte*)NativeMemory.AlignedAlloc((nuint)Math.Max(16, rows * rowBytes), 64);
        int blocks = (cols + 31) / 32, bb = type.BlockBytes();
        Parallel.For(0, rows, r =>
        {
            var rng = new Random((int)seed * 7919 + r);
            var row = new Span<byte>(p + r * rowBytes, (int)rowBytes);
            rng.NextBytes(row);
            for (int b = 0; b < blocks; b++)
            {
                var block = row.Slice(b * bb, bb);
                float u = 0.5f + 0.5f * rng.NextSingle();
                if (type == DType.MXFP4) block[0] = (byte)(127 + (int)MathF.Round(MathF.Log2(scale * u / 6)));
                else BinaryPrimitives.WriteUInt16LittleEndian(block, BitConverter.HalfToUInt16Bits((Half)(scale * u / (type == DType.Q8_0 ? 127 : 8))));
                int valid = Math.Min(32, cols - 32 * b);
                if (valid < 32) ZeroPast(type, block, valid);
            }
        });
        return new BenchMatrix(new WeightMatrix(p, type, rows, cols));
    }

    // A partial last block holds zeros past the row, as the quantizer writes it.
    static void ZeroPast(DType type, Span<byte> block, int valid)
    {
        for (int j = valid; j < 32; j++)
        {
            if (type == DType.Q8_0) { block[2 + j] = 0; continue; }
            int o = type == DType.Q4_0 ? 2 : 1;
            byte code = type == DType.Q4_0 ? (byte)8 : (byte)0;
            ref byte q = ref block[o + j % 16];
            q = j < 16 ? (byte)(q & 0xF0 | code) : (byte)(q & 0x0F | code << 4);
        }
    }

    /// <summary>Row <paramref name="r"/> widened to fp32 (dequantized for the block formats).</summary>
    public float[] Row(int r)
    {
        var row = new float[W.Cols];
        if (W.Type.IsBlock()) BlockQuant.DequantizeRow(W.Type, W.RowBytesSpan(r), row);
        else Daop.Kernels.Cpu.MatMul.WidenRow(W, r, row);
        return row;
    }

    /// <inheritdoc />
    public void Dispose() => RandomWeights.Free(W.Data);
}
