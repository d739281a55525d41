using System.Runtime.InteropServices;
using Daop.Kernels;
using Daop.Kernels.Cpu;
using Daop.Kernels.Quant;

namespace Daop.Tests.Kernels;

/// <summary>
/// A random <see cref="WeightMatrix"/> in native, 64-byte aligned memory, freed on dispose. Block formats are quantized
/// row by row with <see cref="BlockQuant.QuantizeRow"/> (GGUF blocks, as a loader hands them over) and read back as
/// <see cref="BlockQuant.DequantizeRow"/> gives them: the values the kernels must compute with.
/// </summary>
internal sealed unsafe class NativeWeights : IDisposable
{
    readonly float[][]? _blockRows;

    public WeightMatrix W { get; }

    public NativeWeights(DType type, int rows, int cols, int seed, float scale = 1f)
    {
        if (type.IsBlock())
        {
            var bw = new Gpu.BlockWeights(type, rows, cols, seed, scale);
            W = bw.W;
            _blockRows = bw.DetachRows();
            return;
        }
        long n = (long)rows * cols;
        var p = (byte*)NativeMemory.AlignedAlloc((nuint)Math.Max(1, n * type.SizeOf()), 64);
        var rng = new Random(seed);
        for (long i = 0; i < n; i++)
        {
            float v = (float)(rng.NextDouble() * 2 - 1) * scale;
            switch (type)
            {
                case DType.F32: ((float*)p)[i] = v; break;
                case DType.F16: ((Half*)p)[i] = (Half)v; break;
                default: ((ushort*)p)[i] = Bf16.FromFloat(v); break;
            }
        }
        W = new WeightMatrix(p, type, rows, cols);
    }

    /// <summary>Element [r, c] widened to fp32.</summary>
    public float At(int r, int c)
    {
        if (_blockRows != null) return _blockRows[r][c];
        long i = (long)r * W.Cols + c;
        return W.Type switch
        {
            DType.F32 => ((float*)W.Data)[i],
            DType.F16 => (float)((Half*)W.Data)[i],
            _ => Bf16.ToFloat(((ushort*)W.Data)[i]),
        };
    }

    public void Dispose() => NativeMemory.AlignedFree(W.Data);

    public static float[] Floats(int n, int seed, float scale = 1f)
    {
        var rng = new Random(seed);
        var a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float)(rng.NextDouble() * 2 - 1) * scale;
        return a;
    }
}
