using System.Runtime.InteropServices;
using Daop.Engine.Load;
using Daop.Kernels;
using Daop.Kernels.Cpu;
using Daop.Kernels.Quant;

namespace Daop.Tests.Model;

/// <summary>
/// A checkpoint with its routed experts' matrices quantized in memory to a block format (BlockQuant's reference
/// quantizer), the rest passed through: a quantized model from any fixture without a GGUF file. With
/// <paramref name="dequantized"/> the experts are quantized and widened back to f32: the same weights for fp32 kernels.
/// </summary>
sealed unsafe class QuantizingSource(ITensorSource inner, DType type, bool dequantized = false) : ITensorSource
{
    readonly List<IntPtr> _blocks = [];

    public bool Contains(string name) => inner.Contains(name);

    public WeightMatrix Matrix(string name, int rows, int cols)
    {
        var m = inner.Matrix(name, rows, cols);
        if (!name.Contains(".experts.", StringComparison.Ordinal)) return m;
        int rowBytes = (int)type.RowBytes(cols);
        var p = (byte*)NativeMemory.AlignedAlloc((nuint)Math.Max(64, (long)rows * rowBytes), 64);
        _blocks.Add((IntPtr)p);
        var row = new float[cols];
        for (int r = 0; r < rows; r++)
        {
            MatMul.WidenRow(m, r, row);
            BlockQuant.QuantizeRow(type, row, new Span<byte>(p + (long)r * rowBytes, rowBytes));
        }
        if (!dequantized) return new WeightMatrix(p, type, rows, cols);
        var f = (float*)NativeMemory.AlignedAlloc((nuint)Math.Max(64, (long)rows * cols * 4), 64);
        _blocks.Add((IntPtr)f);
        for (int r = 0; r < rows; r++)
            BlockQuant.DequantizeRow(type, new ReadOnlySpan<byte>(p + (long)r * rowBytes, rowBytes), new Span<float>(f + (long)r * cols, cols));
        return new WeightMatrix((byte*)f, DType.F32, rows, cols);
    }

    public float[] Vector(string name, int length) => inner.Vector(name, length);

    public void Dispose()
    {
        foreach (var p in _blocks) NativeMemory.AlignedFree((void*)p);
        _blocks.Clear();
        inner.Dispose();
    }
}
