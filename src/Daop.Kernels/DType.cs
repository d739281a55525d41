namespace Daop.Kernels;

/// <summary>
/// Element type of a weight tensor as stored. Activations are always fp32. The block formats store a row as blocks of
/// <see cref="DTypes.BlockSize"/> columns, each <see cref="DTypes.BlockBytes"/> bytes, in GGUF's layout (so a GGUF file's
/// bits are read as they are); a row whose width is not a whole number of blocks ends in a zero-padded block.
/// </summary>
public enum DType : byte
{
    /// <summary>IEEE binary32.</summary>
    F32,
    /// <summary>IEEE binary16.</summary>
    F16,
    /// <summary>bfloat16: the top 16 bits of a binary32.</summary>
    BF16,
    /// <summary>Blocks of 32: an fp16 scale d, then 32 int8 q; x = d·q (GGUF Q8_0, 34 bytes).</summary>
    Q8_0,
    /// <summary>Blocks of 32: an fp16 scale d, then 16 bytes of 4-bit q, element j in the low nibble of byte j and element
    /// j+16 in its high nibble; x = d·(q − 8) (GGUF Q4_0, 18 bytes).</summary>
    Q4_0,
    /// <summary>Blocks of 32: an E8M0 scale e, then 16 bytes of E2M1 codes laid out as in <see cref="Q4_0"/>;
    /// x = 2^(e−127) · fp4(q) (OCP microscaling MXFP4, GGUF MXFP4, 17 bytes).</summary>
    MXFP4,
    /// <summary>
    /// Super-blocks of 256 in 144 bytes: fp16 d, fp16 dmin, 12 bytes packing a 6-bit scale s_j and a 6-bit min m_j for
    /// each of the 8 sub-blocks of 32, then 128 bytes of 4-bit q; x = d·s_j·q − dmin·m_j (GGUF Q4_K, 4.5 bits per weight).
    /// The 128 bytes are four runs of 32: run r holds sub-block 2r in its low nibbles and sub-block 2r+1 in its high
    /// nibbles, element i of each at byte i. The 12 scale bytes: for j &lt; 4, s_j and m_j are the low 6 bits of bytes j and
    /// j+4; for j ≥ 4 the low 4 bits of s_j (m_j) are the low (high) nibble of byte j+4, and its top 2 bits are the top 2
    /// bits of byte j−4 (of byte j).
    /// </summary>
    Q4_K,
    /// <summary>
    /// Super-blocks of 256 in 176 bytes: d, dmin and the 12 scale bytes as <see cref="Q4_K"/>, then 32 bytes of fifth bits,
    /// then 128 bytes of low nibbles laid out as Q4_K's; element i of sub-block j takes bit j of byte i of the 32 as its
    /// 16s bit; x = d·s_j·q − dmin·m_j with q in 0..31 (GGUF Q5_K, 5.5 bits per weight).
    /// </summary>
    Q5_K,
    /// <summary>
    /// Super-blocks of 256 in 210 bytes: 128 bytes of low nibbles, 64 bytes of high 2-bit pairs, 16 int8 scales (one per
    /// sub-block of 16), then fp16 d; x = d·s_k·(q − 32) with q in 0..63 (GGUF Q6_K, 6.5625 bits per weight). Each half of
    /// 128 takes 64 low-nibble bytes L and 32 high bytes H: element i (0..31) of its quarter c (0..3) has low nibble
    /// L[i + 32·(c &amp; 1)] (low for c &lt; 2, high for c ≥ 2) and high bits 2c, 2c+1 of H[i].
    /// </summary>
    Q6_K,
    /// <summary>
    /// Super-blocks of 256 in 110 bytes: 32 bytes of third bits (hmask), 64 bytes of 2-bit pairs, 12 bytes packing 16
    /// 6-bit scales (one per sub-block of 16, stored + 32), then fp16 d; x = d·(s_k − 32)·(q − 4) with q in 0..7 (GGUF
    /// Q3_K, 3.4375 bits per weight). Element i (0..31) of sub-block j (0..7) of 32: its low bits are bits 2(j mod 4),
    /// 2(j mod 4)+1 of byte 32·(j / 4) + i of the pairs, its third bit is bit j of hmask byte i. The 12 scale bytes b:
    /// s_k's low 4 bits are the low (k &lt; 8) or high nibble of b[k mod 8], its top 2 bits are bits 2·(k / 4 mod 4),
    /// +1 of b[8 + k mod 4].
    /// </summary>
    Q3_K,
    /// <summary>Blocks of 32: fp16 d, fp16 min m, then 16 bytes of 4-bit q laid out as in <see cref="Q4_0"/>; x = d·q + m
    /// (GGUF Q4_1, 20 bytes).</summary>
    Q4_1,
    /// <summary>Blocks of 32: fp16 d, 4 bytes of fifth bits (bit j of the little-endian word is element j's 16s bit), then
    /// 16 bytes of low nibbles laid out as in <see cref="Q4_0"/>; x = d·(q − 16) with q in 0..31 (GGUF Q5_0, 22 bytes).</summary>
    Q5_0,
    /// <summary>Blocks of 32: fp16 d, fp16 min m, the fifth bits and nibbles of <see cref="Q5_0"/>; x = d·q + m (GGUF Q5_1,
    /// 24 bytes).</summary>
    Q5_1,
    /// <summary>
    /// Super-blocks of 256 in 84 bytes: 16 bytes, one per run of 16 with its 4-bit scale s_k (low nibble) and 4-bit min m_k
    /// (high), 64 bytes of 2-bit q, then fp16 d and dmin; x = d·s_k·q − dmin·m_k with q in 0..3 (GGUF Q2_K, 2.625 bits per
    /// weight). Element i (0..31) of sub-block j (0..7) of 32 is bits 2(j mod 4), 2(j mod 4)+1 of byte 32·(j / 4) + i of the
    /// 64.
    /// </summary>
    Q2_K,
    /// <summary>Blocks of 32: an fp16 scale d, then 16 bytes of 4-bit codes laid out as in <see cref="Q4_0"/>; x = d·v(q) with
    /// v ggml's non-linear table of 16 values in −127..113 (GGUF IQ4_NL, 18 bytes; the fallback of llama.cpp's Q2_K, Q3_K and
    /// IQ mixes for rows that are not whole super-blocks).</summary>
    IQ4_NL,
}

/// <summary>Sizes and names of <see cref="DType"/> values.</summary>
public static class DTypes
{
    /// <summary>Bytes per element of an unblocked type (F32, F16, BF16).</summary>
    /// <exception cref="ArgumentException">A block format: use <see cref="RowBytes"/>.</exception>
    public static int SizeOf(this DType t) => t switch
    {
        DType.F32 => 4,
        DType.F16 or DType.BF16 => 2,
        _ => throw new ArgumentException($"{t.Name()} is a block format: its size is per block of {t.BlockSize()} columns"),
    };

    /// <summary>Columns per block: 1 for the unblocked types, 32 for the block formats, 256 for the K-quant super-blocks.</summary>
    public static int BlockSize(this DType t) => t.IsKQuant() ? 256 : t.IsBlock() ? 32 : 1;

    /// <summary>Bytes per block (per element for the unblocked types).</summary>
    public static int BlockBytes(this DType t) => t switch
    {
        DType.F32 => 4,
        DType.F16 or DType.BF16 => 2,
        DType.Q8_0 => 34,
        DType.Q4_0 => 18,
        DType.MXFP4 => 17,
        DType.Q4_K => 144,
        DType.Q5_K => 176,
        DType.Q6_K => 210,
        DType.Q3_K => 110,
        DType.Q4_1 => 20,
        DType.Q5_0 => 22,
        DType.Q5_1 => 24,
        DType.Q2_K => 84,
        DType.IQ4_NL => 18,
        _ => throw new ArgumentOutOfRangeException(nameof(t), t, "unknown weight type"),
    };

    /// <summary>True for the block formats (scales stored with the values).</summary>
    public static bool IsBlock(this DType t) => t is DType.Q8_0 or DType.Q4_0 or DType.MXFP4 or DType.Q4_1 or DType.Q5_0 or DType.Q5_1 or DType.IQ4_NL || t.IsKQuant();

    /// <summary>
    /// True for the formats Daop reads from GGUF files as they are but never writes and has no GPU kernels for: the
    /// K-quants, the older 32-blocks <see cref="DType.Q4_1"/>, <see cref="DType.Q5_0"/>, <see cref="DType.Q5_1"/> and
    /// <see cref="DType.IQ4_NL"/> (which llama.cpp's K-quant mixes use for rows that are not whole super-blocks, e.g.
    /// Qwen1.5-MoE's 1408-wide experts).
    /// </summary>
    public static bool IsGgufOnly(this DType t) => t.IsKQuant() || t is DType.Q4_1 or DType.Q5_0 or DType.Q5_1 or DType.IQ4_NL;

    /// <summary>
    /// True for the K-quants (<see cref="DType.Q2_K"/>, <see cref="DType.Q3_K"/>, <see cref="DType.Q4_K"/>, <see cref="DType.Q5_K"/>, <see cref="DType.Q6_K"/>): super-blocks of
    /// 256 read from GGUF files as they are. Daop computes with them but never writes them, and a row must be whole
    /// super-blocks (llama.cpp's rule).
    /// </summary>
    public static bool IsKQuant(this DType t) => t is DType.Q2_K or DType.Q3_K or DType.Q4_K or DType.Q5_K or DType.Q6_K;

    /// <summary>Bytes of one row of <paramref name="cols"/> columns (a partial last block is stored whole).</summary>
    public static long RowBytes(this DType t, int cols) => ((long)cols + t.BlockSize() - 1) / t.BlockSize() * t.BlockBytes();

    /// <summary>Bits per weight, scales included (16 for bf16, 8.5 for Q8_0, 4.5 for Q4_0 and Q4_K, 4.25 for MXFP4, 5.5 for Q5_K
    /// and Q5_0, 6.5625 for Q6_K, 3.4375 for Q3_K, 5 for Q4_1, 6 for Q5_1).</summary>
    public static double BitsPerWeight(this DType t) => 8.0 * t.BlockBytes() / t.BlockSize();

    /// <summary>The name used on the command line and in files: "f32", "f16", "bf16", "q8_0", "q4_0", "mxfp4", and ggml's
    /// "q2_K", "q3_K", "q4_K", "q5_K", "q6_K", "q4_1", "q5_0", "q5_1", "iq4_nl".</summary>
    public static string Name(this DType t) => t switch
    {
        DType.F32 => "f32",
        DType.F16 => "f16",
        DType.BF16 => "bf16",
        DType.Q8_0 => "q8_0",
        DType.Q4_0 => "q4_0",
        DType.MXFP4 => "mxfp4",
        DType.Q4_K => "q4_K",
        DType.Q5_K => "q5_K",
        DType.Q6_K => "q6_K",
        DType.Q3_K => "q3_K",
        DType.Q4_1 => "q4_1",
        DType.Q5_0 => "q5_0",
        DType.Q5_1 => "q5_1",
        DType.Q2_K => "q2_K",
        DType.IQ4_NL => "iq4_nl",
        _ => t.ToString(),
    };

    /// <summary>Parses <see cref="Name"/> (case-insensitive; "q8" and "q4" are accepted for q8_0 and q4_0).</summary>
    public static bool TryParse(string? s, out DType t)
    {
        switch (s?.ToLowerInvariant())
        {
            case "f32" or "fp32" or "float32": t = DType.F32; return true;
            case "f16" or "fp16" or "float16": t = DType.F16; return true;
            case "bf16" or "bfloat16": t = DType.BF16; return true;
            case "q8_0" or "q8": t = DType.Q8_0; return true;
            case "q4_0" or "q4": t = DType.Q4_0; return true;
            case "mxfp4": t = DType.MXFP4; return true;
            case "q4_k": t = DType.Q4_K; return true;
            case "q5_k": t = DType.Q5_K; return true;
            case "q6_k": t = DType.Q6_K; return true;
            case "q3_k": t = DType.Q3_K; return true;
            case "q4_1": t = DType.Q4_1; return true;
            case "q5_0": t = DType.Q5_0; return true;
            case "q5_1": t = DType.Q5_1; return true;
            case "q2_k": t = DType.Q2_K; return true;
            case "iq4_nl": t = DType.IQ4_NL; return true;
            default: t = default; return false;
        }
    }
}
