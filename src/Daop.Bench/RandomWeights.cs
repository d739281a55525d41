using System.Runtime.InteropServices;
using Daop.Kernels;
using Daop.Kernels.Cpu;

namespace Daop.Bench;

/// <summary>
/// The benchmarks' and GPU checks' random inputs, deterministic for a seed (xorshift32). An instance owns one random
/// [rows, cols] <see cref="WeightMatrix"/> in native, 64-byte aligned memory, freed on dispose; the static helpers make
/// the rest. Speed does not depend on the values, only their scale (σ ≈ 1/√cols keeps activations in range).
/// </summary>
public sealed unsafe class RandomWeights : IDisposable
{
    /// <summary>A random matrix of <paramref name="type"/> with values in ±<paramref name="scale"/> (default 1/√cols).</summary>
    public RandomWeights(DType type, int rows, int cols, uint seed, float? scale = null) => W = Matrix(type, rows, cols, seed, scale);

    /// <summary>The matrix.</summary>
    public WeightMatrix W { get; }

    /// <summary>Row <paramref name="r"/> widened to fp32.</summary>
    public float[] Row(int r)
    {
        var row = new float[W.Cols];
        MatMul.WidenRow(W, r, row);
        return row;
    }

    /// <inheritdoc />
    public void Dispose() => NativeMemory.AlignedFree(W.Data);

    /// <summary>A [rows, cols] matrix that the caller frees with <see cref="Free"/>; values in ±scale (default 1/√cols).</summary>
    public static WeightMatrix Matrix(DType type, int rows, int cols, uint seed, float? scale = null)
    {
        if (type.IsBlock()) return BlockMatrix(type, rows, cols, seed, scale ?? 1f / MathF.Sqrt(cols));
        long n = (long)rows * cols;
        byte* p = (byte*)NativeMemory.AlignedAlloc((nuint)Math.Max(16, n * type.SizeOf()), 64);
        float s = scale ?? 1f / MathF.Sqrt(cols);
        uint state = Start(seed);
        for (long i = 0; i < n; i++)
        {
            float v = Next(ref state) * s;
            switch (type)
            {
                case DType.F32: ((float*)p)[i] = v; break;
                case DType.F16: ((Half*)p)[i] = (Half)v; break;
                default: ((ushort*)p)[i] = Bf16.FromFloat(v); break;
            }
        }
        return new WeightMatrix(p, type, rows, cols);
    }

    /// <summary>
    /// A block-format matrix made directly from random bytes (quantizing fp32 at benchmark sizes would take minutes):
    /// every block gets the scale that maps its format's integer range onto ±scale (roughly, for the K-quants), and random
    /// integers. Parallel.
    /// </summary>
    static WeightMatrix BlockMatrix(DType type, int rows, int cols, uint seed, float scale)
    {
        long rowBytes = type.RowBytes(cols), bytes = rows * rowBytes;
        byte* p = (byte*)NativeMemory.AlignedAlloc((nuint)Math.Max(64, bytes), 64);
        int bb = type.BlockBytes();
        long blocks = bytes / bb;
        ushort d16 = BitConverter.HalfToUInt16Bits((Half)(scale / type switch { DType.Q8_0 or DType.IQ4_NL => 127, DType.Q5_0 or DType.Q5_1 => 16, _ => 8 }));
        byte e8 = (byte)Math.Clamp((int)MathF.Floor(MathF.Log2(scale)) - 2 + 127, 0, 254);
        // K-quants: random 4-bit (Q2_K), 6-bit (Q3_K, Q4_K, Q5_K) or int8 (Q6_K) sub-block scales times random integers
        ushort k16 = BitConverter.HalfToUInt16Bits((Half)(scale / (type switch { DType.Q6_K => 64 * 32, DType.Q3_K => 32 * 4, DType.Q2_K => 16 * 4, _ => 32 * 16 })));
        const long Chunk = 1 << 16;
        Parallel.For(0, (blocks + Chunk - 1) / Chunk, c =>
        {
            uint state = Start(seed + (uint)c * 0x9E3779B9u);
            for (long b = c * Chunk; b < Math.Min(blocks, (c + 1) * Chunk); b++)
            {
                byte* block = p + b * bb;
                for (int j = 0; j < bb; j++)
                {
                    state ^= state << 13; state ^= state >> 17; state ^= state << 5;
                    block[j] = (byte)(state >> 24);
                }
                if (type == DType.MXFP4) block[0] = e8;
                else if (type == DType.Q6_K) *(ushort*)(block + 208) = k16;
                else if (type == DType.Q3_K) *(ushort*)(block + 108) = k16;
                else if (type == DType.Q2_K) *(uint*)(block + 80) = k16 * 0x10001u; // d and dmin
                else if (type.IsKQuant()) *(uint*)block = k16 * 0x10001u; // d and dmin
                else if (type is DType.Q4_1 or DType.Q5_1) *(uint*)block = d16 | (uint)BitConverter.HalfToUInt16Bits((Half)(-scale)) << 16; // d, m
                else *(ushort*)block = d16;
            }
        });
        return new WeightMatrix(p, type, rows, cols);
    }

    /// <summary><paramref name="n"/> floats in [-scale, scale).</summary>
    public static float[] Floats(int n, uint seed, float scale = 1f)
    {
        var a = new float[n];
        uint state = Start(seed);
        for (int i = 0; i < n; i++) a[i] = Next(ref state) * scale;
        return a;
    }

    /// <summary><paramref name="n"/> native floats in [-1, 1) (all zero for seed 0: output buffers), freed with <see cref="Free"/>.</summary>
    public static float* NativeFloats(long n, uint seed)
    {
        float* p = (float*)NativeMemory.AlignedAlloc((nuint)Math.Max(1, n) * sizeof(float), 64);
        uint state = Start(seed);
        for (long i = 0; i < n; i++) p[i] = seed == 0 ? 0 : Next(ref state);
        return p;
    }

    /// <summary>Frees what <see cref="Matrix"/> or <see cref="NativeFloats"/> returned.</summary>
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
