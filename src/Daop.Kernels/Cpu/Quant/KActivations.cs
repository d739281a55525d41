using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Daop.Kernels.Cpu.Quant;

/// <summary>
/// Activations x [tokens, cols] quantized for the K-quant kernels per super-block of 256 (as llama.cpp's q8_K): int8
/// values in column order and one fp32 scale d per 256, with the exact sums of the values per run of 16 (for Q6_K's
/// offset of 32) and per sub-block of 32 (for Q4_K/Q5_K's mins), both int16 (|Σ| ≤ 32·127).
/// Per token: cols bytes of values, cols/256 scales, cols/16 run sums, cols/32 sub-block sums. Columns are whole super-blocks.
/// </summary>
/// <remarks>
/// Rounding, per 256: amax = max |x|, d = amax / 127, q = round-half-even(x · (1/d)) (<see cref="QuantizedActivations.ScaleOf"/>'s
/// rule, zero below 2^−126), the same bits on the vector and scalar paths (<see cref="QuantizeRow"/> is the scalar twin's).
/// One scale per super-block makes the dot's sub-block arithmetic integer: Σ_j s_j·Σ q·x_q in int32, one fp32 multiply by
/// d·d_x per super-block.
/// </remarks>
internal readonly unsafe struct KActivations
{
    readonly byte* _base;
    // byte offsets within a token: its scales, run sums and sub-block sums follow its cols values
    readonly nint _stride, _runs, _sums;
    readonly int _cols;

    KActivations(byte* b, int cols)
    {
        _base = b; _cols = cols;
        _stride = StrideOf(cols);
        _runs = cols + (nint)cols / 64;
        _sums = _runs + (nint)cols / 8;
    }

    /// <summary>Bytes per token: values, then cols/64 + cols/8 + cols/16 bytes (a multiple of 4, as cols is of 256).</summary>
    static nint StrideOf(int cols) => cols + (nint)cols / 64 + (nint)cols / 8 + (nint)cols / 16;

    /// <summary>Bytes from one token's data to the next's: each accessor's pointer for token t + 1 is t's plus this.</summary>
    public nint Stride => _stride;

    /// <summary>Token <paramref name="t"/>'s int8 values [cols].</summary>
    public sbyte* Values(int t) => (sbyte*)(_base + t * _stride);

    /// <summary>Token <paramref name="t"/>'s super-block scales [cols/256].</summary>
    public float* Scales(int t) => (float*)(_base + t * _stride + _cols);

    /// <summary>Token <paramref name="t"/>'s Σq per run of 16 [cols/16], in column order.</summary>
    public short* RunSums(int t) => (short*)(_base + t * _stride + _runs);

    /// <summary>Token <paramref name="t"/>'s Σq per sub-block of 32 [cols/32].</summary>
    public short* BlockSums(int t) => (short*)(_base + t * _stride + _sums);

    /// <summary>Floats of scratch that <see cref="Quantize"/> needs.</summary>
    public static nint Floats(int tokens, int cols) => tokens * StrideOf(cols) / sizeof(float);

    /// <summary>Quantizes x [tokens, cols] (<paramref name="xStride"/> floats per token) into <paramref name="buffer"/>.</summary>
    [SkipLocalsInit]
    public static KActivations Quantize(float* x, nint xStride, int tokens, int cols, float* buffer)
    {
        var a = new KActivations((byte*)buffer, cols);
        for (int t = 0; t < tokens; t++)
        {
            sbyte* q = a.Values(t);
            float* d = a.Scales(t);
            short* runs = a.RunSums(t), blocks = a.BlockSums(t);
            for (int b = 0; b < cols / 256; b++)
                d[b] = Super(x + t * xStride + 256 * b, q + 256 * b, runs + 16 * b, blocks + 8 * b);
        }
        return a;
    }

    /// <summary>One super-block of 256 floats → 256 int8 at <paramref name="q"/>, its run and sub-block sums; returns its scale.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float Super(float* src, sbyte* q, short* runs, short* blocks)
    {
        if (!Avx2.IsSupported)
        {
            float amax = 0;
            for (int j = 0; j < 256; j++) amax = MathF.Max(amax, MathF.Abs(src[j]));
            float ds = QuantizedActivations.ScaleOf(amax, out float invs);
            for (int k = 0; k < 16; k++)
            {
                int sum = 0;
                for (int j = 16 * k; j < 16 * k + 16; j++) sum += q[j] = (sbyte)MathF.Round(src[j] * invs);
                runs[k] = (short)sum;
            }
            for (int j = 0; j < 8; j++) blocks[j] = (short)(runs[2 * j] + runs[2 * j + 1]);
            return ds;
        }
        var m = Vector256.Abs(Vector256.Load(src));
        for (int i = 8; i < 256; i += 8) m = Vector256.MaxNative(m, Vector256.Abs(Vector256.Load(src + i)));
        var m4 = Vector128.MaxNative(m.GetLower(), m.GetUpper());
        m4 = Vector128.MaxNative(m4, Vector128.Shuffle(m4, Vector128.Create(2, 3, 0, 1)));
        m4 = Vector128.MaxNative(m4, Vector128.Shuffle(m4, Vector128.Create(1, 0, 3, 2)));
        float d = QuantizedActivations.ScaleOf(m4.ToScalar(), out float inv);
        var iv = Vector256.Create(inv);
        for (int j = 0; j < 8; j++)
        {
            float* s = src + 32 * j;
            var i0 = Vector256.ConvertToInt32(Vector256.Round(Vector256.Load(s) * iv));
            var i1 = Vector256.ConvertToInt32(Vector256.Round(Vector256.Load(s + 8) * iv));
            var i2 = Vector256.ConvertToInt32(Vector256.Round(Vector256.Load(s + 16) * iv));
            var i3 = Vector256.ConvertToInt32(Vector256.Round(Vector256.Load(s + 24) * iv));
            int lo = Vector256.Sum(i0 + i1), hi = Vector256.Sum(i2 + i3);
            runs[2 * j] = (short)lo;
            runs[2 * j + 1] = (short)hi;
            blocks[j] = (short)(lo + hi);
            // pack to bytes (vpackssdw/vpacksswb work per 128-bit lane; the permute restores column order)
            var s01 = Avx2.PackSignedSaturate(i0, i1); var s23 = Avx2.PackSignedSaturate(i2, i3);
            Avx2.PermuteVar8x32(Avx2.PackSignedSaturate(s01, s23).AsInt32(), Vector256.Create(0, 4, 1, 5, 2, 6, 3, 7)).AsSByte().Store(q + 32 * j);
        }
        return d;
    }

    /// <summary>
    /// The scalar twin's quantization of one row (cols a multiple of 256): <paramref name="q"/> [cols] and <paramref name="d"/>
    /// [cols/256], the values and scales <see cref="Quantize"/> lays out.
    /// </summary>
    public static void QuantizeRow(ReadOnlySpan<float> x, Span<sbyte> q, Span<float> d)
    {
        for (int b = 0; b < x.Length / 256; b++)
        {
            var xb = x.Slice(b * 256, 256);
            float amax = 0;
            foreach (float v in xb) amax = MathF.Max(amax, MathF.Abs(v));
            d[b] = QuantizedActivations.ScaleOf(amax, out float inv);
            for (int j = 0; j < 256; j++) q[b * 256 + j] = (sbyte)MathF.Round(xb[j] * inv);
        }
    }
}
