using System.Buffers.Binary;

namespace Daop.Kernels.Quant;

/// <summary>
/// Round-to-nearest quantization of fp32 rows into the block formats of <see cref="DType"/>, and back: the reference every
/// quantizing or dequantizing kernel is tested against. The rules are ggml's reference quantizers (quantize_row_q8_0_ref,
/// quantize_row_q4_0_ref, quantize_row_mxfp4_ref), so Daop writes the same bits llama-quantize writes.
/// </summary>
/// <remarks>
/// Error per element, for a block whose largest magnitude is a: Q8_0 ≤ a/254 (+ fp16 rounding of the scale); Q4_0 ≤ a/16,
/// and up to a/8 on the side opposite the signed extreme (its scale maps that extreme to −8; the other side clamps at +7); MXFP4 ≤ a/6 below a's power of two
/// and up to a/3 near it (E2M1 has 8 magnitudes: 0, 0.5, 1, 1.5, 2, 3, 4, 6 times a power-of-two scale).
/// </remarks>
public static partial class BlockQuant
{
    /// <summary>Columns per block of every block format.</summary>
    public const int Block = 32;

    /// <summary>ggml's kvalues_iq4nl: the IQ4_NL value of each 4-bit code.</summary>
    public static ReadOnlySpan<sbyte> Iq4NlValues => [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113];

    /// <summary>E2M1 values doubled (ggml's kvalues_mxfp4), indexed by the 4-bit code; the scale is halved to match.</summary>
    public static ReadOnlySpan<sbyte> Fp4Doubled => [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

    /// <summary>Quantizes one row <paramref name="x"/> into <paramref name="dst"/> (<c>type.RowBytes(x.Length)</c> bytes).</summary>
    public static void QuantizeRow(DType type, ReadOnlySpan<float> x, Span<byte> dst)
    {
        if (!type.IsBlock()) throw new ArgumentException($"{type.Name()} is not a block format", nameof(type));
        if (type.IsGgufOnly()) throw new NotSupportedException($"Daop reads {type.Name()} (from GGUF files) but does not write it");
        long need = type.RowBytes(x.Length);
        if (dst.Length < need) throw new ArgumentException($"dst holds {dst.Length} bytes, a {type.Name()} row of {x.Length} needs {need}", nameof(dst));
        Span<float> block = stackalloc float[Block];
        int bytes = type.BlockBytes();
        for (int b = 0; b * Block < x.Length; b++)
        {
            int n = Math.Min(Block, x.Length - b * Block);
            block.Clear();
            x.Slice(b * Block, n).CopyTo(block);
            var o = dst.Slice(b * bytes, bytes);
            switch (type)
            {
                case DType.Q8_0: Q8_0(block, o); break;
                case DType.Q4_0: Q4_0(block, o); break;
                default: Mxfp4(block, o); break;
            }
        }
    }

    /// <summary>Widens one quantized row of <paramref name="dst"/>.Length columns from <paramref name="src"/>.</summary>
    public static void DequantizeRow(DType type, ReadOnlySpan<byte> src, Span<float> dst)
    {
        if (!type.IsBlock()) throw new ArgumentException($"{type.Name()} is not a block format", nameof(type));
        long need = type.RowBytes(dst.Length);
        if (src.Length < need) throw new ArgumentException($"src holds {src.Length} bytes, a {type.Name()} row of {dst.Length} needs {need}", nameof(src));
        int bytes = type.BlockBytes();
        if (type.IsKQuant())
        {
            DequantizeK(type, src, dst);
            return;
        }
        for (int c = 0; c < dst.Length; c++) dst[c] = Element(type, src.Slice(c / Block * bytes, bytes), c % Block);
    }

    /// <summary>Element <paramref name="j"/> (0..31) of one block.</summary>
    public static float Element(DType type, ReadOnlySpan<byte> block, int j)
    {
        switch (type)
        {
            case DType.Q8_0: return Scale16(block) * (sbyte)block[2 + j];
            case DType.Q4_0: return Scale16(block) * (Nibble(block[2..], j) - 8);
            case DType.MXFP4: return E8m0Half(block[0]) * Fp4Doubled[Nibble(block[1..], j)];
            case DType.Q5_0: return Scale16(block) * (Five(block, 6, 2, j) - 16);
            // d·q exact in fp32, then one rounding for + m, as ggml's dequantize_row_q4_1 / _q5_1
            case DType.Q4_1: return Scale16(block) * Nibble(block[4..], j) + Scale16(block[2..]);
            case DType.Q5_1: return Scale16(block) * Five(block, 8, 4, j) + Scale16(block[2..]);
            case DType.IQ4_NL: return Scale16(block) * Iq4NlValues[Nibble(block[2..], j)];
            default: throw new ArgumentException($"{type.Name()} is not a block format", nameof(type));
        }
    }

    /// <summary>
    /// The block's scale: <see cref="Element"/>(j) = BlockScale · <see cref="Integer"/>(j) + <see cref="BlockMin"/>. For
    /// MXFP4 it is <see cref="E8m0Half"/>, to go with the doubled E2M1 integers.
    /// </summary>
    public static float BlockScale(DType type, ReadOnlySpan<byte> block) => type switch
    {
        DType.Q8_0 or DType.Q4_0 or DType.Q5_0 or DType.Q4_1 or DType.Q5_1 or DType.IQ4_NL => Scale16(block),
        DType.MXFP4 => E8m0Half(block[0]),
        _ => throw new ArgumentException($"{type.Name()} is not a block format", nameof(type)),
    };

    /// <summary>The block's min (Q4_1, Q5_1), 0 for the other block formats.</summary>
    public static float BlockMin(DType type, ReadOnlySpan<byte> block) => type is DType.Q4_1 or DType.Q5_1 ? Scale16(block[2..]) : 0f;

    /// <summary>Integer <paramref name="j"/> (0..31) of one block: q (Q8_0, Q4_1, Q5_1), q − 8 (Q4_0), q − 16 (Q5_0), the
    /// doubled E2M1 value (MXFP4) or the table value (IQ4_NL).</summary>
    public static int Integer(DType type, ReadOnlySpan<byte> block, int j) => type switch
    {
        DType.Q8_0 => (sbyte)block[2 + j],
        DType.Q4_0 => Nibble(block[2..], j) - 8,
        DType.MXFP4 => Fp4Doubled[Nibble(block[1..], j)],
        DType.Q5_0 => Five(block, 6, 2, j) - 16,
        DType.Q4_1 => Nibble(block[4..], j),
        DType.Q5_1 => Five(block, 8, 4, j),
        DType.IQ4_NL => Iq4NlValues[Nibble(block[2..], j)],
        _ => throw new ArgumentException($"{type.Name()} is not a block format", nameof(type)),
    };

    // The 5-bit integer j of a Q5_0/Q5_1 block: its nibble (16 bytes at nibbles) and bit j of the little-endian word at bits.
    static int Five(ReadOnlySpan<byte> block, int nibbles, int bits, int j) =>
        Nibble(block[nibbles..], j) | (int)(BinaryPrimitives.ReadUInt32LittleEndian(block[bits..]) >> j & 1) << 4;

    /// <summary>The fp16 at the start of <paramref name="block"/> (a Q8_0, Q4_0, Q5_0, Q4_1, Q5_1 or IQ4_NL block's scale).</summary>
    public static float Scale16(ReadOnlySpan<byte> block) => (float)BitConverter.UInt16BitsToHalf(BinaryPrimitives.ReadUInt16LittleEndian(block));

    /// <summary>2^(e−127) / 2 (ggml_e8m0_to_fp32_half): the MXFP4 scale for the doubled E2M1 values.</summary>
    public static float E8m0Half(byte e) => BitConverter.UInt32BitsToSingle(e >= 2 ? (uint)(e - 1) << 23 : e == 1 ? 0x00400000u : 0x00200000u);

    // Code j of 32 in 16 bytes: j < 16 in the low nibble of byte j, j ≥ 16 in the high nibble of byte j − 16.
    static int Nibble(ReadOnlySpan<byte> q, int j) => j < 16 ? q[j] & 0xF : q[j - 16] >> 4;

    static void WriteScale16(Span<byte> o, float d) => BinaryPrimitives.WriteUInt16LittleEndian(o, BitConverter.HalfToUInt16Bits((Half)d));

    // d = amax / 127, q = round(x / d) (half away from zero, as C's roundf).
    static void Q8_0(ReadOnlySpan<float> x, Span<byte> o)
    {
        float amax = 0;
        foreach (float v in x) amax = MathF.Max(amax, MathF.Abs(v));
        float d = amax / 127, id = d != 0 ? 1 / d : 0;
        WriteScale16(o, d);
        for (int j = 0; j < Block; j++) o[2 + j] = (byte)(sbyte)MathF.Round(x[j] * id, MidpointRounding.AwayFromZero);
    }

    // d = (the value of largest magnitude, with its sign) / −8, q = min(15, trunc(x / d + 8.5)).
    static void Q4_0(ReadOnlySpan<float> x, Span<byte> o)
    {
        float amax = 0, max = 0;
        foreach (float v in x)
            if (amax < MathF.Abs(v)) { amax = MathF.Abs(v); max = v; }
        float d = max / -8, id = d != 0 ? 1 / d : 0;
        WriteScale16(o, d);
        for (int j = 0; j < 16; j++)
        {
            int q0 = Math.Min(15, (int)(sbyte)(x[j] * id + 8.5f));
            int q1 = Math.Min(15, (int)(sbyte)(x[j + 16] * id + 8.5f));
            o[2 + j] = (byte)(q0 | q1 << 4);
        }
    }

    // e = floor(log2(amax)) − 2 + 127, so amax lands in E2M1's top binade (4..6 × 2^(e−127)... ×2 in doubled units);
    // each value takes the nearest of the 16 codes (the first on a tie).
    static void Mxfp4(ReadOnlySpan<float> x, Span<byte> o)
    {
        o.Clear();
        float amax = 0;
        foreach (float v in x) amax = MathF.Max(amax, MathF.Abs(v));
        if (amax == 0) return;
        byte e = (byte)Math.Clamp((int)MathF.Floor(MathF.Log2(amax)) - 2 + 127, 0, 255);
        float d = E8m0Half(e);
        o[0] = e;
        for (int j = 0; j < 16; j++) o[1 + j] = (byte)(Nearest(d, x[j]) | Nearest(d, x[j + 16]) << 4);
    }

    // ggml scans all 16 codes for the first smallest |x − d·v|. The same answer, scanning less: only code 0 (the first
    // zero) and the seven codes of x's sign can be strictly nearer than code 0 (those of the other sign, and code 8's −0,
    // are never nearer), and along codes 0, 1..7 (or 0, 9..15) the rounded distances fall then rise, so once one grows
    // past the best no later one can be strictly smaller. NaN keeps code 0, as in the full scan.
    static int Nearest(float d, float x)
    {
        var values = Fp4Doubled;
        float best = MathF.Abs(x - d * values[0]);
        int index = 0, first = x < 0 ? 9 : 1;
        for (int j = first; j < first + 7; j++)
        {
            float diff = MathF.Abs(x - d * values[j]);
            if (diff < best) { best = diff; index = j; }
            else if (diff > best) break;
        }
        return index;
    }
}
