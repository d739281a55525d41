using System.Runtime.InteropServices;
using Daop.Engine.Load;
using Daop.Engine.Model;
using Daop.Kernels;
using Daop.Kernels.Cpu;
using Daop.Kernels.Quant;

namespace Daop.Bench.Gpu;

/// <summary>
/// An <see cref="ITensorSource"/> over another whose routed expert matrices (names with ".experts.") — or all matrices —
/// come out quantized in memory, row by row with <see cref="BlockQuant.QuantizeRow"/>: a model with quantized experts
/// from any checkpoint. With <paramref name="dequantize"/> they come out as fp32 holding the quantized values instead
/// (<see cref="BlockQuant.DequantizeRow"/>), so the CPU path computes the same model with its fp32 kernels. Every other
/// tensor passes through. Owns and disposes the inner source.
/// </summary>
/// <param name="inner">The checkpoint.</param>
/// <param name="type">Block format.</param>
/// <param name="dequantize">Hand out fp32 with the quantized values rather than the blocks.</param>
/// <param name="allMatrices">Quantize every matrix (attention, shared experts, embedding, LM head), not only routed experts.</param>
public sealed unsafe class QuantizingSource(ITensorSource inner, DType type, bool dequantize = false, bool allMatrices = false) : ITensorSource
{
    readonly List<IntPtr> _blocks = [];

    /// <summary>The model in <paramref name="dir"/> with its routed experts (or all matrices) in <paramref name="type"/>, or their fp32 values.</summary>
    public static MoeModel Load(string dir, DType type, bool dequantize, ModelOptions options, bool allMatrices = false) =>
        MoeModel.FromSource(MoeModel.FolderName(dir), Path.Combine(dir, "config.json"),
            new QuantizingSource(Daop.Engine.Load.Safetensors.TensorStore.OpenDirectory(dir), type, dequantize, allMatrices), options);

    /// <summary>Whether <paramref name="name"/> is a routed expert's matrix.</summary>
    public static bool IsRoutedExpert(string name) => name.Contains(".experts.", StringComparison.Ordinal);

    /// <inheritdoc />
    public bool Contains(string name) => inner.Contains(name);

    /// <inheritdoc />
    public WeightMatrix Matrix(string name, int rows, int cols)
    {
        var m = inner.Matrix(name, rows, cols);
        if (!allMatrices && !IsRoutedExpert(name)) return m;
        long rowBytes = dequantize ? 4L * cols : type.RowBytes(cols);
        var p = (byte*)NativeMemory.AlignedAlloc((nuint)Math.Max(16, rows * rowBytes), 64);
        lock (_blocks) _blocks.Add((IntPtr)p);
        var src = new float[cols];
        var q = new byte[type.RowBytes(cols)];
        for (int r = 0; r < rows; r++)
        {
            MatMul.WidenRow(m, r, src);
            BlockQuant.QuantizeRow(type, src, q);
            if (dequantize) BlockQuant.DequantizeRow(type, q, new Span<float>(p + r * rowBytes, cols));
            else q.CopyTo(new Span<byte>(p + r * rowBytes, (int)rowBytes));
        }
        return new WeightMatrix(p, dequantize ? DType.F32 : type, rows, cols);
    }

    /// <inheritdoc />
    public float[] Vector(string name, int length) => inner.Vector(name, length);

    /// <inheritdoc />
    public void Dispose()
    {
        lock (_blocks)
        {
            foreach (var p in _blocks) NativeMemory.AlignedFree((void*)p);
            _blocks.Clear();
        }
        inner.Dispose();
    }
}
