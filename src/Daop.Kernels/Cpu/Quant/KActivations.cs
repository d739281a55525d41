using System.Runtime.CompilerServices;

namespace Daop.Kernels.Cpu.Quant;

/// <summary>
/// Activations x [tokens, cols] quantized for the K-quant kernels: per block of 32, int8 values and an fp32 scale d by
/// <see cref="QuantizedActivations"/>'s rule (the same values and scales), kept in column order, with d·Σq per block (for
/// Q4_K/Q5_K's mins) and Σq per run of 16 (for Q6_K's offset of 32). Per token: cols bytes of values, cols/32 scales,
/// cols/32 d·Σq, cols/16 int16 sums. Columns are whole super-blocks of 256.
/// </summary>
internal readonly unsafe struct KActivations
{
    readonly byte* _base;
    readonly int _cols;

    KActivations(byte* b, int cols)
    {
        _base = b; _cols = cols;
    }

    /// <summary>Bytes per token.</summary>
    static nint Stride(int cols) => cols + 3 * (nint)cols / 8;

    /// <summary>Token <paramref name="t"/>'s int8 values [cols].</summary>
    public sbyte* Values(int t) => (sbyte*)(_base + t * Stride(_cols));

    /// <summary>Token <paramref name="t"/>'s block scales [cols/32].</summary>
    public float* Scales(int t) => (float*)(_base + t * Stride(_cols) + _cols);

    /// <summary>Token <paramref name="t"/>'s d·Σq per block [cols/32].</summary>
    public float* ScaledSums(int t) => Scales(t) + _cols / 32;

    /// <summary>Token <paramref name="t"/>'s Σq per run of 16 [cols/16].</summary>
    public short* RunSums(int t) => (short*)(ScaledSums(t) + _cols / 32);

    /// <summary>Floats of scratch that <see cref="Quantize"/> needs.</summary>
    public static nint Floats(int tokens, int cols) => tokens * Stride(cols) / sizeof(float);

    /// <summary>Quantizes x [tokens, cols] (<paramref name="xStride"/> floats per token) into <paramref name="buffer"/>.</summary>
    [SkipLocalsInit]
    public static KActivations Quantize(float* x, nint xStride, int tokens, int cols, float* buffer)
    {
        var a = new KActivations((byte*)buffer, cols);
        for (int t = 0; t < tokens; t++)
        {
            sbyte* q = a.Values(t);
            float* d = a.Scales(t), ds = a.ScaledSums(t);
            short* runs = a.RunSums(t);
            for (int b = 0; b < cols / 32; b++)
            {
                sbyte* qb = q + 32 * b;
                d[b] = QuantizedActivations.Block(x + t * xStride + 32 * b, qb, out int sum);
                ds[b] = d[b] * sum;
                int lo = 0;
                for (int i = 0; i < 16; i++) lo += qb[i];
                runs[2 * b] = (short)lo;
                runs[2 * b + 1] = (short)(sum - lo);
            }
        }
        return a;
    }
}
