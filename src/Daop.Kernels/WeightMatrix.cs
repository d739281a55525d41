namespace Daop.Kernels;

/// <summary>
/// A row-major weight matrix [Rows, Cols] in its stored dtype, usually a view into a memory-mapped
/// checkpoint. The matrix does not own its memory; whoever created it keeps the mapping alive.
/// </summary>
public readonly unsafe struct WeightMatrix
{
    /// <summary>First element of row 0.</summary>
    public readonly byte* Data;
    /// <summary>Stored element type.</summary>
    public readonly DType Type;
    /// <summary>Output features (one dot product each).</summary>
    public readonly int Rows;
    /// <summary>Input features.</summary>
    public readonly int Cols;

    /// <summary>Wraps <paramref name="data"/> as [rows, cols] of <paramref name="type"/>.</summary>
    /// <exception cref="ArgumentException">A K-quant whose rows are not whole super-blocks of 256.</exception>
    public WeightMatrix(byte* data, DType type, int rows, int cols)
    {
        if (type.IsKQuant() && cols % 256 != 0)
            throw new ArgumentException($"{type.Name()} rows are whole super-blocks of 256 columns, not {cols}", nameof(cols));
        Data = data; Type = type; Rows = rows; Cols = cols;
    }

    /// <summary>Bytes of the whole matrix.</summary>
    public long ByteLength => Rows * Type.RowBytes(Cols);

    /// <summary>Bytes of one row.</summary>
    public int RowBytes => (int)Type.RowBytes(Cols);

    /// <summary>A view of rows [start, start+count).</summary>
    public WeightMatrix SliceRows(int start, int count) =>
        new(Data + (long)start * RowBytes, Type, count, Cols);

    /// <summary>Row <paramref name="r"/> as raw bytes.</summary>
    public ReadOnlySpan<byte> RowBytesSpan(int r) => new(Data + (long)r * RowBytes, RowBytes);
}
