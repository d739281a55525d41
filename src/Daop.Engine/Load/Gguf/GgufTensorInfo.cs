namespace Daop.Engine.Load.Gguf;

/// <summary>
/// One tensor of a GGUF file: its ggml type, its dimensions in ggml order (<see cref="Dims"/>[0] is the row width, the
/// fastest-varying index) and where its bytes lie in the file.
/// </summary>
/// <param name="Name">Tensor name ("blk.0.attn_q.weight").</param>
/// <param name="Type">Element type.</param>
/// <param name="Dims">ne[0..n): ggml order, row width first.</param>
/// <param name="Offset">First byte, from the start of the file.</param>
/// <param name="ByteLength">Bytes of the tensor.</param>
public sealed record GgufTensorInfo(string Name, GgmlType Type, long[] Dims, long Offset, long ByteLength)
{
    /// <summary>The shape in row-major (numpy, PyTorch) order: the reverse of <see cref="Dims"/>; [rows, cols] for a matrix.</summary>
    public long[] Shape => Dims.Reverse().ToArray();

    /// <summary>The shape as "[a, b]" in row-major order.</summary>
    public string ShapeText => "[" + string.Join(", ", Shape) + "]";

    /// <summary>Number of elements.</summary>
    public long ElementCount => Dims.Aggregate(1L, (a, b) => a * b);

    /// <summary>Bytes of one row (Dims[0] elements).</summary>
    public long RowBytes => Dims.Length == 0 ? ByteLength : Dims[0] / Type.BlockSize() * Type.BlockBytes();
}
