using System.Runtime.CompilerServices;
using ILGPU;

namespace Daop.Kernels.Gpu;

/// <summary>
/// Q8_0 weights on the device (<see cref="BlockLayout"/>): a value chunk is 16 int8 of one 32-column block, as four parts
/// (words) of 4 consecutive columns; the block's fp16 scale sits in the row's scale region.
/// </summary>
public struct Q8_0Format : IWeightFormat
{
    /// <inheritdoc />
    public readonly int Type => (int)DType.Q8_0;

    /// <inheritdoc />
    public readonly int PerChunk => 16;

    /// <inheritdoc />
    public readonly int BlockChunks => 2;

    /// <inheritdoc />
    public readonly int ScaleBytes => 2;

    /// <inheritdoc />
    public readonly Widened Widen(Chunk16 c) => Widen(c, 0);

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly Widened Widen(Chunk16 c, int q)
    {
        uint u = BlockFormats.Word(c, 2 * q), v = BlockFormats.Word(c, 2 * q + 1);
        Widened w;
        w.W0 = Int8(u); w.W1 = Int8(u >> 8); w.W2 = Int8(u >> 16); w.W3 = Int8(u >> 24);
        w.W4 = Int8(v); w.W5 = Int8(v >> 8); w.W6 = Int8(v >> 16); w.W7 = Int8(v >> 24);
        return w;
    }

    // The low byte as int8, exactly: (q + 128) in the mantissa of 2^23, minus 2^23 + 128 (no int-to-float conversion).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float Int8(uint b) => Interop.IntAsFloat(((b & 0xFFu) ^ 0x80u) | 0x4B000000u) - 8388736f;

    /// <inheritdoc />
    /// <remarks>Part k of chunk i is block 2k + i/8 of the group: word k of the scale chunk, half i/8.</remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly float GroupScale(Chunk16 sc, int g, int i, int k) => BlockFormats.Half(BlockFormats.Word(sc, k) >> (16 * (i >> 3)));

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly float BlockScale(Chunk16 sc, int b, int k) => BlockFormats.Fp16At(sc, b & 7);

    /// <inheritdoc />
    public readonly bool HasMin => false;

    /// <inheritdoc />
    public readonly float GroupMin(Chunk16 sc, int g, int i, int k) => 0f;

    /// <inheritdoc />
    public readonly float BlockMin(Chunk16 sc, int b, int k) => 0f;
}

/// <summary>
/// Q4_0 weights on the device (<see cref="BlockLayout"/>): a value chunk is 32 4-bit codes as eight parts (half-words)
/// of 4 consecutive columns, one part per block of a group; x = d·(q − 8) with the block's fp16 scale d. A word's
/// two parts share their shifts: code r of the high part is read in place at bits 16..19, as (q − 8)·2^16, and the odd
/// parts' scales carry 2^-16 (exact).
/// </summary>
public struct Q4_0Format : IWeightFormat
{
    /// <inheritdoc />
    public readonly int Type => (int)DType.Q4_0;

    /// <inheritdoc />
    public readonly int PerChunk => 32;

    /// <inheritdoc />
    public readonly int BlockChunks => 1;

    /// <inheritdoc />
    public readonly int ScaleBytes => 2;

    /// <inheritdoc />
    public readonly Widened Widen(Chunk16 c) => Widen(c, 0);

    /// <inheritdoc />
    /// <remarks>q − 8: 2^23 + q as float bits minus 2^23 + 8, and (q − 8)·2^16 minus 2^23 + 8·2^16 for the high part.</remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly Widened Widen(Chunk16 c, int q) => BlockFormats.Nibbles(BlockFormats.Word(c, q), 8388616f, 8912896f);

    /// <inheritdoc />
    /// <remarks>Part k of any chunk of a group is block k: half k of the scale chunk.</remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly float GroupScale(Chunk16 sc, int g, int i, int k) => BlockFormats.Part(BlockFormats.Fp16At(sc, k), k);

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly float BlockScale(Chunk16 sc, int b, int k) => BlockFormats.Part(BlockFormats.Fp16At(sc, b & 7), k);

    /// <inheritdoc />
    public readonly bool HasMin => false;

    /// <inheritdoc />
    public readonly float GroupMin(Chunk16 sc, int g, int i, int k) => 0f;

    /// <inheritdoc />
    public readonly float BlockMin(Chunk16 sc, int b, int k) => 0f;
}

/// <summary>
/// MXFP4 weights on the device (<see cref="BlockLayout"/>): codes laid out as <see cref="Q4_0Format"/>'s. A code (sign,
/// then E2M1's exponent and mantissa bits) placed at bits 15 and 9..11 of an fp16 is its E2M1 value × 2^-14 exactly
/// (subnormal for the exponent-0 codes), widened by one conversion per value; the scale byte is stored as e + 14
/// (<see cref="BlockLayout.Mxfp4ExponentBias"/>), so the scale 2^(e+14−127) placed straight in fp32's exponent field undoes
/// the 2^-14: x = 2^(e−127) · E2M1(code), as <see cref="Quant.BlockQuant"/>'s 2^(e−128) · (2·E2M1).
/// </summary>
public struct Mxfp4Format : IWeightFormat
{
    /// <inheritdoc />
    public readonly int Type => (int)DType.MXFP4;

    /// <inheritdoc />
    public readonly int PerChunk => 32;

    /// <inheritdoc />
    public readonly int BlockChunks => 1;

    /// <inheritdoc />
    public readonly int ScaleBytes => 1;

    /// <inheritdoc />
    public readonly Widened Widen(Chunk16 c) => Widen(c, 0);

    /// <inheritdoc />
    /// <remarks>Codes n and n + 4 of the word (the two parts' column n) become one fp16 pair per two shifts.</remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly Widened Widen(Chunk16 c, int q)
    {
        uint u = BlockFormats.Word(c, q);
        uint h0 = ((u << 9) & 0x0E000E00u) | ((u << 12) & 0x80008000u);
        uint h1 = ((u << 5) & 0x0E000E00u) | ((u << 8) & 0x80008000u);
        uint h2 = ((u << 1) & 0x0E000E00u) | ((u << 4) & 0x80008000u);
        uint h3 = ((u >> 3) & 0x0E000E00u) | (u & 0x80008000u);
        Widened w;
        w.W0 = BlockFormats.Half(h0); w.W1 = BlockFormats.Half(h1); w.W2 = BlockFormats.Half(h2); w.W3 = BlockFormats.Half(h3);
        w.W4 = BlockFormats.Half(h0 >> 16); w.W5 = BlockFormats.Half(h1 >> 16); w.W6 = BlockFormats.Half(h2 >> 16); w.W7 = BlockFormats.Half(h3 >> 16);
        return w;
    }

    /// <inheritdoc />
    /// <remarks>Part k of any chunk of group g is block k: byte 8·(g mod 2) + k of the scale chunk.</remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly float GroupScale(Chunk16 sc, int g, int i, int k)
    {
        uint u = (g & 1) == 0 ? BlockFormats.Word(sc, k >> 2) : BlockFormats.Word(sc, 2 + (k >> 2));
        return Exponent(u >> (8 * (k & 3)));
    }

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly float BlockScale(Chunk16 sc, int b, int k) => Exponent(BlockFormats.Word(sc, (b & 15) >> 2) >> (8 * (b & 3)));

    /// <inheritdoc />
    public readonly bool HasMin => false;

    /// <inheritdoc />
    public readonly float GroupMin(Chunk16 sc, int g, int i, int k) => 0f;

    /// <inheritdoc />
    public readonly float BlockMin(Chunk16 sc, int b, int k) => 0f;

    // The low byte as a float's exponent field: 2^(byte − 127).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float Exponent(uint v) => Interop.IntAsFloat((v & 0xFFu) << 23);
}

/// <summary>
/// Q4_K weights on the device (<see cref="BlockLayout"/>), the file's bytes reordered: a 256-column super-block is one
/// group, its 8 value chunks the unsigned 4-bit codes in <see cref="Q4_0Format"/>'s layout (part k of every chunk is
/// sub-block k), its scale chunk the super-block's 16-byte header as stored (fp16 d and dmin, then the 6-bit sub-block
/// scales and mins packed in 12 bytes). x = d·sc_k·q − dmin·m_k: a scale and a min per part, both exact in fp32.
/// </summary>
public struct Q4_KFormat : IWeightFormat
{
    /// <inheritdoc />
    public readonly int Type => (int)DType.Q4_K;

    /// <inheritdoc />
    public readonly int PerChunk => 32;

    /// <inheritdoc />
    public readonly int BlockChunks => 1;

    /// <inheritdoc />
    /// <remarks>A group's 8 blocks share one 16-byte header: 2 bytes a block, as Q4_0's fp16 scales.</remarks>
    public readonly int ScaleBytes => 2;

    /// <inheritdoc />
    public readonly bool HasMin => true;

    /// <inheritdoc />
    public readonly Widened Widen(Chunk16 c) => Widen(c, 0);

    /// <inheritdoc />
    /// <remarks>Unsigned q, and q·2^16 for the high part (its scale carries 2^-16).</remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly Widened Widen(Chunk16 c, int q) => BlockFormats.Nibbles(BlockFormats.Word(c, q), 8388608f, 8388608f);

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly float GroupScale(Chunk16 sc, int g, int i, int k) => BlockFormats.Part(BlockFormats.Half(sc.X) * SubScale(sc, k), k);

    /// <inheritdoc />
    /// <remarks>Never reached for real rows (a Q4_K row is whole super-blocks, so whole groups); block b is sub-block b mod 8.</remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly float BlockScale(Chunk16 sc, int b, int k) => BlockFormats.Part(BlockFormats.Half(sc.X) * SubScale(sc, b & 7), k);

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly float GroupMin(Chunk16 sc, int g, int i, int k) => -BlockFormats.Half(sc.X >> 16) * SubMin(sc, k);

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly float BlockMin(Chunk16 sc, int b, int k) => -BlockFormats.Half(sc.X >> 16) * SubMin(sc, b & 7);

    // Sub-block s's 6-bit scale (ggml's get_scale_min_k4): header words Y, Z, W are the 12 packed bytes; s < 4 the low 6
    // bits of byte s, else byte s + 4's low nibble and the top 2 bits of byte s − 4.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float SubScale(Chunk16 sc, int s) => Small(s < 4 ? sc.Y >> (8 * s) & 63u
        : (sc.W >> (8 * (s - 4)) & 15u) | (sc.Y >> (8 * (s - 4) + 6) & 3u) << 4);

    // Sub-block s's 6-bit min: s < 4 byte s + 4, else byte s + 4's high nibble and the top 2 bits of byte s.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float SubMin(Chunk16 sc, int s) => Small(s < 4 ? sc.Z >> (8 * s) & 63u
        : (sc.W >> (8 * (s - 4) + 4) & 15u) | (sc.Z >> (8 * (s - 4) + 6) & 3u) << 4);

    // A small unsigned integer as float, exactly (no int-to-float conversion).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float Small(uint v) => Interop.IntAsFloat(v | 0x4B000000u) - 8388608f;
}

/// <summary>Word and half-word access shared by the block formats.</summary>
static class BlockFormats
{
    /// <summary>Word <paramref name="n"/> (0..3) of a chunk (a constant after unrolling; selects otherwise).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint Word(Chunk16 c, int n) => n == 0 ? c.X : n == 1 ? c.Y : n == 2 ? c.Z : c.W;

    /// <summary>The low 16 bits as IEEE binary16, widened exactly (one cvt.f32.f16 on CUDA).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Half(uint bits) => Interop.IntAsFloat((ushort)(bits & 0xFFFFu));

    /// <summary>Half-word <paramref name="h"/> (0..7) of a chunk as fp16.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Fp16At(Chunk16 c, int h) => Half(Word(c, h >> 1) >> (16 * (h & 1)));

    /// <summary>
    /// The two 4-bit parts of word <paramref name="u"/>, exactly and without int-to-float conversions: nibble r (bits 4r)
    /// as the float 2^23 + q minus <paramref name="low"/>, nibble r of the high half-word read in place (bits 16 + 4r) as
    /// 2^23 + q·2^16 minus <paramref name="high"/> (its part's scale carries 2^-16: <see cref="Part"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Widened Nibbles(uint u, float low, float high)
    {
        uint u1 = u >> 4, u2 = u >> 8, u3 = u >> 12;
        Widened w;
        w.W0 = Low(u, low); w.W1 = Low(u1, low); w.W2 = Low(u2, low); w.W3 = Low(u3, low);
        w.W4 = High(u, high); w.W5 = High(u1, high); w.W6 = High(u2, high); w.W7 = High(u3, high);
        return w;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float Low(uint v, float bias) => Interop.IntAsFloat((v & 0xFu) | 0x4B000000u) - bias;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float High(uint v, float bias) => Interop.IntAsFloat((v & 0xF0000u) | 0x4B000000u) - bias;

    /// <summary>Scale <paramref name="d"/> of 4-bit part <paramref name="k"/>: times 2^-16 for the odd parts, read in place in the high half-word.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Part(float d, int k) => (k & 1) == 0 ? d : d * (1f / 65536);
}
