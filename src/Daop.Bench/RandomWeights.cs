using System.Runtime.InteropServices;
using Daop.Kernels;
using Daop.Kernels.Cpu;

namespace Daop.Bench;

/// <summary>
/// The benchmarks' random inputs: deterministic for a seed (xorshift32), 64-byte aligned native memory that the caller
/// frees with <see cref="Free"/>. Speed does not depend on the values; only their scale matters (σ ≈ 1/√cols keeps
/// activations in range through a layer).
/// </summary>
public static unsafe class RandomWeights
{
    /// <summary>A [rows, cols] matrix of <paramref name="type"/> with values in [-1/√cols, 1/√cols).</summary>
    public static WeightMatrix Matrix(DType type, int rows, int cols, uint seed)
    {
        long n = (long)rows * cols;
        byte* p = (byte*)NativeMemory.AlignedAlloc((nuint)Math.Max(16, n * type.SizeOf()), 64);
        float scale = 1f / MathF.Sqrt(cols);
        uint state = Start(seed);
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
        return new WeightMatrix(p, type, rows, cols);
    }

    /// <summary><paramref name="n"/> floats in [-1, 1) (all zero for seed 0: output buffers).</summary>
    public static float* Floats(long n, uint seed)
    {
        float* p = (float*)NativeMemory.AlignedAlloc((nuint)Math.Max(1, n) * sizeof(float), 64);
        uint state = Start(seed);
        for (long i = 0; i < n; i++) p[i] = seed == 0 ? 0 : Next(ref state);
        return p;
    }

    /// <summary>A managed array of <paramref name="n"/> floats in [-1, 1), its length rounded up to a multiple of 4 (zeros past n).</summary>
    public static float[] FloatArray(int n, uint seed)
    {
        var a = new float[Math.Max(4, (n + 3) / 4 * 4)];
        uint state = Start(seed);
        for (int i = 0; i < n; i++) a[i] = Next(ref state);
        return a;
    }

    /// <summary>Frees what <see cref="Matrix"/> or <see cref="Floats"/> returned.</summary>
    public static void Free(void* p) => NativeMemory.AlignedFree(p);

    /// <summary>The generator's state for <paramref name="seed"/>.</summary>
    public static uint Start(uint seed) => seed * 2654435761u + 1;

    /// <summary>xorshift32 → [-1, 1).</summary>
    public static float Next(ref uint s)
    {
        s ^= s << 13; s ^= s >> 17; s ^= s << 5;
        return (s >> 8) * (2f / (1 << 24)) - 1f;
    }
}
