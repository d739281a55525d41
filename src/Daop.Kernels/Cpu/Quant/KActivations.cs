using System.Runtime.CompilerServices;

namespace Daop.Kernels.Cpu.Quant;

/// <summary>
/// Activations x [tokens, cols] quantized for the K-quant kernels: per block of 32, int8 values and an fp32 scale d by
/// <see cref="QuantizedActivations"/>'s rule (the same values and scales), kept in column order, with d·Σq per block (for
/// Q4_K/Q5_K's mins) and Σq per run of 16 (for Q6_K's offset of 32; int32, per super-block in <see cref="RunOrder"/>).
/// Per token: cols bytes of values, cols/32 scales, cols/32 d·Σq, cols/16 run sums. Columns are whole super-blocks of 256.
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
    static nint Stride(int cols) => cols + (nint)cols / 2; // values, then cols/8 + cols/8 + cols/4 bytes

    /// <summary>
    /// Where run <paramref name="k"/> (0..15) of a super-block sits among its 16 run sums: [0 2 4 6 1 3 5 7 | 8 10 12 14 9 11 13 15],
    /// the order in which the dot's reduction holds the runs.
    /// </summary>
    public static int RunOrder(int k) => (k & 8) | (k & 1) << 2 | (k & 7) >> 1;

    /// <summary>Token <paramref name="t"/>'s int8 values [cols].</summary>
    public sbyte* Values(int t) => (sbyte*)(_base + t * Stride(_cols));

    /// <summary>Token <paramref name="t"/>'s block scales [cols/32].</summary>
    public float* Scales(int t) => (float*)(_base + t * Stride(_cols) + _cols);

    /// <summary>Token <paramref name="t"/>'s d·Σq per block [cols/32].</summary>
    public float* ScaledSums(int t) => Scales(t) + _cols / 32;

    /// <summary>Token <paramref name="t"/>'s Σq per run of 16 [cols/16], in <see cref="RunOrder"/> per super-block.</summary>
    public int* RunSums(int t) => (int*)(ScaledSums(t) + _cols / 32);

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
            int* runs = a.RunSums(t);
            for (int b = 0; b < cols / 32; b++)
            {
                sbyte* qb = q + 32 * b;
                d[b] = QuantizedActivations.Block(x + t * xStride + 32 * b, qb, out int sum);
                ds[b] = d[b] * sum;
                int lo = 0;
                for (int i = 0; i < 16; i++) lo += qb[i];
                int k = 2 * (b & 7), o = 16 * (b >> 3);
                runs[o + RunOrder(k)] = lo;
                runs[o + RunOrder(k + 1)] = sum - lo;
            }
        }
        return a;
    }
}
