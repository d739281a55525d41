using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Daop.Kernels.Cpu.Quant;

/// <summary>
/// Activations x [tokens, cols] quantized per block of 32 to int8 with an fp32 scale (Q8_0-style, as llama.cpp's
/// vec_dot_*_q8_0 take them), laid out for the int8 kernels. Each token has three planes of <see cref="Stride"/>
/// bytes, 32 bytes per block (block b at byte 32·b of each):
/// <list type="bullet">
/// <item><b>q</b>: the 32 int8 values; columns past cols are 0.</item>
/// <item><b>aux</b>: for a format with an offset, 8 int32 lanes, lane i = −Offset·(q[4i] + … + q[4i+3]), the
/// correction that turns Σ (v + Offset)·q into Σ v·q; for the signed Q8_0, the 32 values negated.</item>
/// <item><b>dx</b>: the block's scale d, eight times (one per int32 lane of the block).</item>
/// </list>
/// Token t's q plane starts at <c>Base + t·Stride</c>; its aux and dx planes are <see cref="PlaneDistance"/> and twice
/// that further on. Tokens are padded to an even number of blocks so every plane row starts on 64 bytes.
/// </summary>
/// <remarks>
/// Per block: amax = max |x|, d = amax / 127, q = round-half-even(x · (1/d)). A block whose d is below 2^−126 (amax
/// under about 1.5e−36) quantizes to zero: 1/d would overflow, and its products with any weight scale underflow fp32
/// anyway. <see cref="ScaleOf"/> is shared by the vector and scalar paths, so both produce the same bits.
/// </remarks>
internal readonly unsafe struct QuantizedActivations
{
    /// <summary>Token 0's q plane.</summary>
    public readonly byte* Base;
    /// <summary>Bytes per token in each plane (32 per block, blocks rounded up to even).</summary>
    public readonly nint Stride;
    /// <summary>Bytes from a token's q plane to its aux plane, and from aux to dx.</summary>
    public readonly nint PlaneDistance;
    /// <summary>Blocks per token.</summary>
    public readonly int Blocks;

    QuantizedActivations(byte* b, nint stride, nint planes, int blocks)
    {
        Base = b; Stride = stride; PlaneDistance = planes; Blocks = blocks;
    }

    /// <summary>Floats of scratch that <see cref="Quantize{TB}"/> needs for <paramref name="tokens"/> × <paramref name="cols"/>.</summary>
    public static nint Floats(int tokens, int cols) => 3 * (nint)tokens * StrideOf(cols) / sizeof(float);

    static nint StrideOf(int cols) => (((nint)cols + 63) / 64) * 64;

    /// <summary>The block scale d and its reciprocal for a block of largest magnitude <paramref name="amax"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ScaleOf(float amax, out float inverse)
    {
        float d = amax / 127f;
        inverse = d >= 1.17549435e-38f ? 1f / d : 0f;
        return d;
    }

    /// <summary>
    /// Quantizes x [tokens, cols] (<paramref name="xStride"/> floats per token) into <paramref name="buffer"/>
    /// (<see cref="Floats"/> floats, 64-byte aligned) with the aux plane for <typeparamref name="TB"/>.
    /// </summary>
    public static QuantizedActivations Quantize<TB>(float* x, nint xStride, int tokens, int cols, float* buffer) where TB : struct, IBlockFormat
    {
        nint stride = StrideOf(cols);
        var qa = new QuantizedActivations((byte*)buffer, stride, tokens * stride, (cols + 31) / 32);
        float* tail = stackalloc float[32];
        for (int t = 0; t < tokens; t++)
        {
            float* xt = x + t * xStride;
            byte* q = qa.Base + t * stride;
            for (int b = 0; b < qa.Blocks; b++)
            {
                float* src = xt + b * 32;
                int n = Math.Min(32, cols - b * 32);
                if (n < 32)
                {
                    new Span<float>(tail, 32).Clear();
                    new ReadOnlySpan<float>(src, n).CopyTo(new Span<float>(tail, n));
                    src = tail;
                }
                Block<TB>(src, q + b * 32, qa.PlaneDistance);
            }
            // The padding block of an odd count: zero values, zero correction, zero scale.
            if ((qa.Blocks & 1) != 0)
                for (nint p = 0; p < 3; p++) new Span<byte>(q + p * qa.PlaneDistance + qa.Blocks * 32, 32).Clear();
        }
        return qa;
    }

    /// <summary>One block of 32 floats at <paramref name="src"/> → its q, aux and dx entries (aux at q + pd, dx at q + 2·pd).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Block<TB>(float* src, byte* q, nint pd) where TB : struct, IBlockFormat
    {
        if (!Avx2.IsSupported)
        {
            BlockScalar<TB>(src, q, pd);
            return;
        }
        var a = Vector256.Load(src); var b = Vector256.Load(src + 8);
        var c = Vector256.Load(src + 16); var e = Vector256.Load(src + 24);
        var m = Vector256.MaxNative(Vector256.MaxNative(Vector256.Abs(a), Vector256.Abs(b)), Vector256.MaxNative(Vector256.Abs(c), Vector256.Abs(e)));
        var m4 = Vector128.MaxNative(m.GetLower(), m.GetUpper());
        m4 = Vector128.MaxNative(m4, Vector128.Shuffle(m4, Vector128.Create(2, 3, 0, 1)));
        m4 = Vector128.MaxNative(m4, Vector128.Shuffle(m4, Vector128.Create(1, 0, 3, 2)));
        float d = ScaleOf(m4.ToScalar(), out float inv);
        var iv = Vector256.Create(inv);
        var i0 = Vector256.ConvertToInt32(Vector256.Round(a * iv)); var i1 = Vector256.ConvertToInt32(Vector256.Round(b * iv));
        var i2 = Vector256.ConvertToInt32(Vector256.Round(c * iv)); var i3 = Vector256.ConvertToInt32(Vector256.Round(e * iv));
        // Pack to bytes (vpackssdw/vpacksswb work per 128-bit lane; the permute restores column order).
        var s01 = Avx2.PackSignedSaturate(i0, i1); var s23 = Avx2.PackSignedSaturate(i2, i3);
        var bytes = Avx2.PermuteVar8x32(Avx2.PackSignedSaturate(s01, s23).AsInt32(), Vector256.Create(0, 4, 1, 5, 2, 6, 3, 7)).AsSByte();
        bytes.Store((sbyte*)q);
        Vector256.Create(d).Store((float*)(q + 2 * pd));
        if (TB.Offset == 0) (-bytes).Store((sbyte*)(q + pd));
        else
        {
            var sums = Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(Vector256.Create((byte)1), bytes), Vector256.Create((short)1));
            (sums * -TB.Offset).Store((int*)(q + pd));
        }
    }

    static void BlockScalar<TB>(float* src, byte* q, nint pd) where TB : struct, IBlockFormat
    {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = MathF.Max(amax, MathF.Abs(src[j]));
        float d = ScaleOf(amax, out float inv);
        for (int j = 0; j < 32; j++) q[j] = (byte)(sbyte)MathF.Round(src[j] * inv);
        for (int l = 0; l < 8; l++) ((float*)(q + 2 * pd))[l] = d;
        if (TB.Offset == 0)
            for (int j = 0; j < 32; j++) q[pd + j] = (byte)(sbyte)-(sbyte)q[j];
        else
            for (int l = 0; l < 8; l++)
                ((int*)(q + pd))[l] = -TB.Offset * ((sbyte)q[4 * l] + (sbyte)q[4 * l + 1] + (sbyte)q[4 * l + 2] + (sbyte)q[4 * l + 3]);
    }

    /// <summary>
    /// The scalar twin's quantization of one row: <paramref name="q"/> [blocks·32] and <paramref name="d"/> [blocks],
    /// the bits <see cref="Quantize{TB}"/> writes to the q and dx planes.
    /// </summary>
    public static void QuantizeRow(ReadOnlySpan<float> x, Span<sbyte> q, Span<float> d)
    {
        int blocks = (x.Length + 31) / 32;
        q.Slice(0, blocks * 32).Clear();
        for (int b = 0; b < blocks; b++)
        {
            var xb = x.Slice(b * 32, Math.Min(32, x.Length - b * 32));
            float amax = 0;
            foreach (float v in xb) amax = MathF.Max(amax, MathF.Abs(v));
            d[b] = ScaleOf(amax, out float inv);
            for (int j = 0; j < xb.Length; j++) q[b * 32 + j] = (sbyte)MathF.Round(xb[j] * inv);
        }
    }
}
