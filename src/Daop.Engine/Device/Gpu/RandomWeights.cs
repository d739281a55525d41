using System.Runtime.InteropServices;
using Daop.Kernels;
using Daop.Kernels.Cpu;

namespace Daop.Engine.Device.Gpu;

/// <summary>
/// A random [rows, cols] <see cref="WeightMatrix"/> in native, 64-byte aligned host memory (values in roughly
/// ±scale, stored in its dtype), freed on dispose: the inputs of the GPU kernel checks and benchmarks.
/// </summary>
internal sealed unsafe class RandomWeights : IDisposable
{
    public RandomWeights(DType type, int rows, int cols, uint seed, float scale)
    {
        long n = (long)rows * cols;
        byte* p = (byte*)NativeMemory.AlignedAlloc((nuint)Math.Max(16, n * type.SizeOf()), 64);
        uint state = seed * 2654435761u + 1;
        for (long i = 0; i < n; i++)
        {
            float v = Next(ref state) * scale;
            switch (type)
            {
                case DType.F32: ((float*)p)[i] = v; break;
                case DType.F16: ((Half*)p)[i] = (Half)v; break;
                default: ((ushort*)p)[i] = Bf16.FromFloat(v); break;
            }
        }
        W = new WeightMatrix(p, type, rows, cols);
    }

    public WeightMatrix W { get; }

    /// <summary>Row <paramref name="r"/> widened to fp32.</summary>
    public float[] Row(int r)
    {
        var row = new float[W.Cols];
        MatMul.WidenRow(W, r, row);
        return row;
    }

    public void Dispose() => NativeMemory.AlignedFree(W.Data);

    /// <summary><paramref name="n"/> random floats in [-scale, scale).</summary>
    public static float[] Floats(int n, uint seed, float scale = 1f)
    {
        var a = new float[n];
        uint state = seed * 2654435761u + 1;
        for (int i = 0; i < n; i++) a[i] = Next(ref state) * scale;
        return a;
    }

    // xorshift32 → [-1, 1)
    static float Next(ref uint s)
    {
        s ^= s << 13; s ^= s >> 17; s ^= s << 5;
        return (s >> 8) * (2f / (1 << 24)) - 1f;
    }
}
