using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Daop.Kernels.Cpu.Quant;

/// <summary>
/// Activations x [tokens, cols] quantized per block of 32 to int8 with an fp32 scale (Q8_0-style, as llama.cpp's
/// vec_dot_*_q8_0 take them), laid out for the int8 kernels of one block format. Blocks are grouped in quads of four
/// (the last one zero-padded); per token, <see cref="Quads"/> × 128 bytes of values in <see cref="Quad.XByte{TB}"/>
/// order (for the biased signed formats, <see cref="Quad.Biased{TB}"/>, each as the unsigned byte q + 128), then 64 bytes of lane data per quad: 8 fp32 lanes of the block scales d (lane l holds the d of block
/// <see cref="Quad.LaneBlock{TB}"/>(l)), and for the unsigned formats 8 more lanes: int32 −(Offset/2)·Σq of the lane's
/// block (two lanes per block, so together they remove the Offset from Σ (v + Offset)·q), or for the formats with a
/// min fp32 d·Σq/2 (together d·Σq, which the block's min multiplies).
/// </summary>
/// <remarks>
/// Per block: amax = max |x|, d = amax / 127, q = round-half-even(x · (1/d)). A block whose d is below 2^−126 (amax
/// under about 1.5e−36) quantizes to zero: 1/d would overflow, and its products with any weight scale underflow fp32
/// anyway. <see cref="ScaleOf"/> is shared by the vector and scalar paths, so both produce the same bits.
/// </remarks>
internal readonly unsafe struct QuantizedActivations
{
    /// <summary>Token 0's values.</summary>
    public readonly byte* Base;
    /// <summary>Bytes per token (192 per quad).</summary>
    public readonly nint Stride;
    /// <summary>Quads per token.</summary>
    public readonly int Quads;

    QuantizedActivations(byte* b, nint stride, int quads)
    {
        Base = b; Stride = stride; Quads = quads;
    }

    /// <summary>Token <paramref name="t"/>'s values (quad k at +128·k).</summary>
    public byte* Values(int t) => Base + t * Stride;

    /// <summary>Token <paramref name="t"/>'s lane data (quad k at +64·k: 8 scales, then 8 corrections).</summary>
    public byte* Lanes(int t) => Base + t * Stride + 128 * (nint)Quads;

    /// <summary>Floats of scratch that <see cref="Quantize{TB}"/> needs for <paramref name="tokens"/> × <paramref name="cols"/>.</summary>
    public static nint Floats(int tokens, int cols) => (nint)tokens * 192 * QuadsOf(cols) / sizeof(float);

    static int QuadsOf(int cols) => (cols + 127) / 128;

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
    /// (<see cref="Floats"/> floats, 64-byte aligned) in <typeparamref name="TB"/>'s layout.
    /// </summary>
    public static QuantizedActivations Quantize<TB>(float* x, nint xStride, int tokens, int cols, float* buffer) where TB : struct, IBlockFormat
    {
        int quads = QuadsOf(cols), blocks = (cols + 31) / 32;
        var qa = new QuantizedActivations((byte*)buffer, 192 * (nint)quads, quads);
        float* tail = stackalloc float[32];
        sbyte* q = stackalloc sbyte[32];
        for (int t = 0; t < tokens; t++)
        {
            float* xt = x + t * xStride;
            byte* values = qa.Values(t), lanes = qa.Lanes(t);
            if ((blocks & 3) != 0)
            {
                new Span<byte>(values + 128 * (nint)(quads - 1), 128).Fill(Quad.Biased<TB>() ? (byte)0x80 : (byte)0); // q = 0
                new Span<byte>(lanes + 64 * (nint)(quads - 1), 64).Clear();
            }
            for (int b = 0; b < blocks; b++)
            {
                float* src = xt + b * 32;
                int n = Math.Min(32, cols - b * 32);
                if (n < 32)
                {
                    new Span<float>(tail, 32).Clear();
                    new ReadOnlySpan<float>(src, n).CopyTo(new Span<float>(tail, n));
                    src = tail;
                }
                float d = Block(src, q, out int sum);
                int k = b & 3;
                byte* vq = values + 128 * (nint)(b >> 2);
                if (Quad.Halves<TB>())
                {
                    if (Quad.Biased<TB>()) (Vector256.Load((byte*)q) ^ Vector256.Create((byte)0x80)).Store((byte*)q); // q + 128
                    Unsafe.CopyBlockUnaligned(vq + Quad.XByte<TB>(k, 0), q, 16);
                    Unsafe.CopyBlockUnaligned(vq + Quad.XByte<TB>(k, 16), q + 16, 16);
                }
                else Unsafe.CopyBlockUnaligned(vq + 32 * k, q, 32);
                float* dx = (float*)(lanes + 64 * (nint)(b >> 2));
                int* aux = (int*)(dx + 8);
                // The block's two lanes: [a a c c b b d d] or [a b c d a b c d].
                int l0 = Quad.Halves<TB>() ? (k & 1) << 2 | (k & 2) : k, l1 = Quad.Halves<TB>() ? l0 + 1 : k + 4;
                dx[l0] = dx[l1] = d;
                if (TB.HasMin) dx[8 + l0] = dx[8 + l1] = 0.5f * d * sum;
                else if (TB.Offset != 0) aux[l0] = aux[l1] = -(TB.Offset / 2) * sum;
            }
        }
        return qa;
    }

    /// <summary>One block of 32 floats → 32 int8 at <paramref name="q"/> and their sum; returns its scale d.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float Block(float* src, sbyte* q, out int sum)
    {
        if (!Avx2.IsSupported)
        {
            float amax = 0;
            for (int j = 0; j < 32; j++) amax = MathF.Max(amax, MathF.Abs(src[j]));
            float ds = ScaleOf(amax, out float invs);
            sum = 0;
            for (int j = 0; j < 32; j++) sum += q[j] = (sbyte)MathF.Round(src[j] * invs);
            return ds;
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
        sum = Vector256.Sum(i0 + i1 + i2 + i3);
        // Pack to bytes (vpackssdw/vpacksswb work per 128-bit lane; the permute restores column order).
        var s01 = Avx2.PackSignedSaturate(i0, i1); var s23 = Avx2.PackSignedSaturate(i2, i3);
        Avx2.PermuteVar8x32(Avx2.PackSignedSaturate(s01, s23).AsInt32(), Vector256.Create(0, 4, 1, 5, 2, 6, 3, 7)).AsSByte().Store(q);
        return d;
    }

    /// <summary>
    /// The scalar twin's quantization of one row: <paramref name="q"/> [blocks·32] and <paramref name="d"/> [blocks],
    /// the values and scales <see cref="Quantize{TB}"/> lays out.
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
