namespace Daop.Kernels.Quant;

/// <summary>
/// The Hugging Face hub's MXFP4 layout (transformers' mxfp4 integration, GPT-OSS) into <see cref="DType.MXFP4"/>: the hub
/// stores a row's blocks as 16 code bytes each ([..., cols/32, 16], codes 2j and 2j+1 in the low and high nibble of byte j)
/// and their E8M0 exponents in a separate tensor ([..., cols/32]); Daop's block is the exponent then 16 bytes with codes j
/// and j+16 in byte j (GGUF's order). The E2M1 codes and the exponents themselves are the same, so repacking is exact.
/// </summary>
public static unsafe class HubMxfp4
{
    /// <summary>Bytes of codes per hub block.</summary>
    public const int CodeBytes = 16;

    /// <summary>One row of <paramref name="blocks"/> hub blocks (codes and exponents) as <see cref="DType.MXFP4"/> blocks at <paramref name="dst"/> (17 bytes each).</summary>
    public static void Row(byte* codes, byte* scales, byte* dst, int blocks)
    {
        for (int b = 0; b < blocks; b++) Block(codes + b * CodeBytes, scales[b], dst + b * 17);
    }

    /// <summary>One block: <paramref name="dst"/>[0] = the exponent, dst[1 + j] = code j | code (j+16) &lt;&lt; 4.</summary>
    public static void Block(byte* codes, byte scale, byte* dst)
    {
        dst[0] = scale;
        for (int j = 0; j < 16; j++)
        {
            int shift = (j & 1) * 4;                           // code j sits in byte j/2, low nibble when j is even
            int lo = (codes[j >> 1] >> shift) & 15, hi = (codes[8 + (j >> 1)] >> shift) & 15;
            dst[1 + j] = (byte)(lo | hi << 4);
        }
    }

    /// <summary>Scalar twin: the 32 weights of one hub block, decoded straight from the hub layout (2^(e−127) · E2M1).</summary>
    public static void Dequantize(ReadOnlySpan<byte> codes, byte scale, Span<float> dst)
    {
        float s = MathF.Pow(2, scale - 127);
        for (int k = 0; k < 32; k++) dst[k] = s * E2M1[(codes[k / 2] >> (k % 2 * 4)) & 15];
    }

    static readonly float[] E2M1 = [0f, 0.5f, 1f, 1.5f, 2f, 3f, 4f, 6f, -0f, -0.5f, -1f, -1.5f, -2f, -3f, -4f, -6f];
}
