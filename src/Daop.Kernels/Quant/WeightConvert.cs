using System.Buffers;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using Daop.Kernels.Cpu;

namespace Daop.Kernels.Quant;

/// <summary>
/// Converts a weight matrix from one stored <see cref="DType"/> to another, row by row through fp32: F32/F16/BF16 into
/// any type (the block formats through <see cref="BlockQuant.QuantizeRow"/>, the same bits llama-quantize writes), and
/// the block formats back into F32/F16/BF16 (block into F32 is exact). One block format into another is refused: it would
/// quantize the first format's error again.
/// </summary>
public static unsafe class WeightConvert
{
    /// <summary>Whether <paramref name="from"/> converts into <paramref name="to"/>.</summary>
    public static bool CanConvert(DType from, DType to) => from == to || !from.IsBlock() || !to.IsBlock();

    /// <summary>Bytes of <paramref name="src"/> stored as <paramref name="to"/>.</summary>
    public static long ByteLength(in WeightMatrix src, DType to) => src.Rows * to.RowBytes(src.Cols);

    /// <summary>
    /// Converts rows [<paramref name="start"/>, start + <paramref name="count"/>) of <paramref name="src"/> into
    /// <paramref name="dst"/>, the whole converted matrix (<c>to.RowBytes(src.Cols)</c> bytes per row);
    /// <paramref name="row"/> is fp32 scratch of at least src.Cols floats.
    /// </summary>
    /// <exception cref="NotSupportedException">One block format into another.</exception>
    public static void Rows(in WeightMatrix src, byte* dst, DType to, int start, int count, Span<float> row)
    {
        if (!CanConvert(src.Type, to)) throw Refused(src.Type, to);
        ArgumentOutOfRangeException.ThrowIfLessThan(row.Length, src.Cols, nameof(row));
        int cols = src.Cols;
        long outRow = to.RowBytes(cols);
        var x = row[..cols];
        for (int r = start; r < start + count; r++)
        {
            var output = new Span<byte>(dst + r * outRow, (int)outRow);
            if (src.Type == to)
            {
                src.RowBytesSpan(r).CopyTo(output);
                continue;
            }
            Widen(src, r, x);
            Narrow(to, x, output);
        }
    }

    /// <summary>Converts the whole of <paramref name="src"/> into <paramref name="dst"/> on the CPU workers.</summary>
    /// <exception cref="NotSupportedException">One block format into another.</exception>
    public static void Matrix(in WeightMatrix src, byte* dst, DType to)
    {
        if (!CanConvert(src.Type, to)) throw Refused(src.Type, to);
        var job = new Job { Src = src, Dst = dst, To = to };
        CpuWorkers.For(src.Rows, RowsPerChunk(src.Cols), job);
    }

    /// <summary>Rows per parallel chunk: about 64K elements, so a chunk's work outweighs handing it out.</summary>
    public static int RowsPerChunk(int cols) => Math.Max(1, (1 << 16) / Math.Max(1, cols));

    static NotSupportedException Refused(DType from, DType to) => new(
        $"{from.Name()} weights cannot be converted to {to.Name()}: one block format into another would add the second format's " +
        "rounding to the first's; convert from the original F32/F16/BF16 weights");

    // Row r of src as fp32.
    static void Widen(in WeightMatrix src, int r, Span<float> x)
    {
        var bytes = src.RowBytesSpan(r);
        switch (src.Type)
        {
            case DType.F32: MemoryMarshal.Cast<byte, float>(bytes).CopyTo(x); break;
            case DType.BF16: Bf16.ToFloat(MemoryMarshal.Cast<byte, ushort>(bytes), x); break;
            case DType.F16: TensorPrimitives.ConvertToSingle(MemoryMarshal.Cast<byte, Half>(bytes), x); break;
            default: BlockQuant.DequantizeRow(src.Type, bytes, x); break;
        }
    }

    // x stored as one row of type `to`.
    static void Narrow(DType to, ReadOnlySpan<float> x, Span<byte> output)
    {
        switch (to)
        {
            case DType.F32: MemoryMarshal.AsBytes(x).CopyTo(output); break;
            case DType.F16: TensorPrimitives.ConvertToHalf(x, MemoryMarshal.Cast<byte, Half>(output)); break;
            case DType.BF16:
                var o = MemoryMarshal.Cast<byte, ushort>(output);
                for (int i = 0; i < x.Length; i++) o[i] = Bf16.FromFloat(x[i]);
                break;
            default: BlockQuant.QuantizeRow(to, x, output); break;
        }
    }

    struct Job : IParallelJob
    {
        public WeightMatrix Src;
        public byte* Dst;
        public DType To;

        public readonly void Execute(int start, int end)
        {
            float[] row = ArrayPool<float>.Shared.Rent(Src.Cols);
            try { Rows(Src, Dst, To, start, end - start, row); }
            finally { ArrayPool<float>.Shared.Return(row); }
        }
    }
}
