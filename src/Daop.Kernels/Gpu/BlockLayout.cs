using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Daop.Kernels.Gpu;

/// <summary>
/// How a row of a block format (Q8_0, Q4_0, MXFP4: 32-column blocks of codes and a scale; Q4_K: 256-column super-blocks
/// of eight such blocks with a scale and a min each) lives on the device, and the host-side packing into it: a region of
/// 16-byte value chunks, then the blocks' scales in block order (Q4_K: each super-block's 16-byte header), zero-padded to
/// a whole chunk. The bytes are GGUF's, reordered (MXFP4's scale byte stored as e + <see cref="Mxfp4ExponentBias"/>), so
/// a row takes <see cref="DTypes.RowBytes"/> rounded up to 16 (Q4_0 and Q4_K at 4096 columns: 2304 bytes, 3.56x fewer
/// than bf16).
/// </summary>
/// <remarks>
/// <para>Values come in groups of 8 blocks (256 columns). A group is 8 value chunks for Q4_0 and MXFP4 (16 for Q8_0);
/// a chunk holds parts of 4 consecutive columns, 8 for the 4-bit formats (half-words), 4 for Q8_0 (words). Part k of
/// chunk i of a group covers columns 4i + 4V·k .. +3 of the group (V = chunks per group), i.e. part k of the 4-bit
/// formats' chunk i is block k's columns 4i..4i+3, and Q8_0's is block 2k + i/8's columns 4·(i mod 8)... So the lanes of a
/// warp, on consecutive chunks, read consecutive 16-byte pieces of the activations for every part: the row kernels'
/// activation loads are coalesced, where a chunk per block would have each lane read its own 128-byte line.</para>
/// <para>Blocks past the last whole group (a row of 2880 columns has 90 blocks: 11 groups and 2 more) are groups of one
/// block: same rule with V = chunks per block. In a half-word part, column r of the part is nibble r (bits 4r..4r+3);
/// in a word part, byte r. The scale of block b is at byte b·<see cref="ScaleBytes"/> of the scale region: a group's 8
/// scales are one chunk (fp16) or half of one (MXFP4).</para>
/// </remarks>
public static class BlockLayout
{
    /// <summary>Blocks per group.</summary>
    public const int GroupBlocks = 8;

    /// <summary>Added to MXFP4's E8M0 scale byte on the device (see <see cref="Mxfp4Format"/>); scales up to e = 240 fit.</summary>
    public const int Mxfp4ExponentBias = 14;

    /// <summary>16-byte value chunks per block: 2 for Q8_0, 1 for Q4_0, MXFP4 and Q4_K.</summary>
    public static int BlockChunks(DType t) => Check(t) == DType.Q8_0 ? 2 : 1;

    /// <summary>Scale bytes per block: 2 (fp16) for Q8_0 and Q4_0, 1 for MXFP4, 2 for Q4_K (its 16-byte header per 8 blocks).</summary>
    public static int ScaleBytes(DType t) => Check(t) == DType.MXFP4 ? 1 : 2;

    /// <summary>Blocks of a row of <paramref name="cols"/> columns (the last may be partial).</summary>
    public static int Blocks(int cols) => (cols + 31) / 32;

    /// <summary>Value chunks of a row (where its scale region starts).</summary>
    public static int ValueChunks(DType t, int cols) => Blocks(cols) * BlockChunks(t);

    /// <summary>16-byte chunks of a device row: values, then scales padded to a whole chunk.</summary>
    public static int RowChunks(DType t, int cols) => ValueChunks(t, cols) + (Blocks(cols) * ScaleBytes(t) + 15) / 16;

    /// <summary>
    /// Writes the device image of one row (<paramref name="src"/>: <c>t.RowBytes(cols)</c> bytes of GGUF blocks) into
    /// <paramref name="dst"/> (<see cref="RowChunks"/> · 16 bytes, all written). The 4-bit formats' whole groups go
    /// through 128-bit registers (each block's codes to 8 half-words, then an 8x8 half-word transpose into the group's 8
    /// chunks); <see cref="PackRowScalar"/> is the word-by-word twin.
    /// </summary>
    /// <exception cref="NotSupportedException">An MXFP4 scale above 2^113 (e &gt; 240), which the device encoding cannot hold.</exception>
    public static void PackRow(DType t, ReadOnlySpan<byte> src, int cols, Span<byte> dst) => PackBlocks(t, src, cols, dst, Sse2.IsSupported);

    /// <summary><see cref="PackRow(DType, ReadOnlySpan{byte}, int, Span{byte})"/> one word at a time (the scalar twin).</summary>
    public static void PackRowScalar(DType t, ReadOnlySpan<byte> src, int cols, Span<byte> dst) => PackBlocks(t, src, cols, dst, vector: false);

    static unsafe void PackBlocks(DType t, ReadOnlySpan<byte> src, int cols, Span<byte> dst, bool vector)
    {
        if (t == DType.Q4_K)
        {
            PackQ4K(src, cols, dst, vector);
            return;
        }
        int blocks = Blocks(cols), sb = ScaleBytes(t), bb = t.BlockBytes();
        int valueBytes = ValueChunks(t, cols) * 16, rowBytes = RowChunks(t, cols) * 16, fullBlocks = blocks / GroupBlocks * GroupBlocks;
        if (src.Length < (long)blocks * bb) throw new ArgumentException($"src holds {src.Length} bytes, a {t.Name()} row of {cols} needs {blocks * bb}", nameof(src));
        if (dst.Length < rowBytes) throw new ArgumentException($"dst holds {dst.Length} bytes, need {rowBytes}", nameof(dst));
        dst[valueBytes..rowBytes].Clear();
        fixed (byte* s = src, d = dst)
        {
            byte* scales = d + valueBytes;
            for (int b = 0; b < blocks; b++)
            {
                byte* block = s + (long)b * bb;
                if (t != DType.MXFP4) *(ushort*)(scales + 2 * b) = Unsafe.ReadUnaligned<ushort>(block);
                else if (block[0] > 255 - Mxfp4ExponentBias - 1)
                    throw new NotSupportedException($"MXFP4 block {b} has scale 2^({block[0]}−127); the GPU layout holds scales up to 2^113");
                else scales[b] = (byte)(block[0] + Mxfp4ExponentBias);
            }
            // The 4-bit formats' whole groups through registers, then every other block word by word.
            int first = vector && t != DType.Q8_0 ? fullBlocks : 0;
            for (int b = 0; b < first; b += GroupBlocks) PackNibbleGroup(s + (long)b * bb + sb, bb, d + (long)b * 16);
            for (int b = first; b < blocks; b++)
                if (t == DType.Q8_0) PackQ8(s + (long)b * bb + sb, d, b, b < fullBlocks);
                else PackNibbles(s + (long)b * bb + sb, d, b, b < fullBlocks);
        }
    }

    // Q8_0: column quad p4 of block b (4 bytes) goes to part k of chunk i with 8m + p4 = i + V·k (V = 16 in a group, 2 past).
    static unsafe void PackQ8(byte* qs, byte* dst, int b, bool full)
    {
        int m = full ? b % GroupBlocks : 0, log2V = full ? 4 : 1;
        byte* chunk0 = dst + ((long)(full ? b / GroupBlocks : b) << log2V) * 16;
        for (int p4 = 0; p4 < 8; p4++)
        {
            int p = 8 * m + p4;
            *(uint*)(chunk0 + (p & ((1 << log2V) - 1)) * 16 + 4 * (p >> log2V)) = Unaligned(qs + 4 * p4);
        }
    }

    // Q4_0 / MXFP4: column quad p4 of block b (low nibbles of qs[4p4..], or high nibbles of qs[4p4 − 16..]) as the
    // half-word of part b mod 8 in chunk p4 of the group, or of part p4 in the block's own chunk past the groups.
    static unsafe void PackNibbles(byte* qs, byte* dst, int b, bool full)
    {
        byte* o = full ? dst + (long)(b & ~(GroupBlocks - 1)) * 16 + 2 * (b % GroupBlocks) : dst + (long)b * 16;
        int stride = full ? 16 : 2;
        for (int i = 0; i < 4; i++)
        {
            uint w = Unaligned(qs + 4 * i);
            *(ushort*)(o + i * stride) = Compress(w & 0x0F0F0F0Fu);
            *(ushort*)(o + (i + 4) * stride) = Compress(w >> 4 & 0x0F0F0F0Fu);
        }
    }

    // A whole group of Q4_0 / MXFP4 blocks (qs of block j at qs + j·stride): PackNibbles for all 8 at once.
    static unsafe void PackNibbleGroup(byte* qs, int stride, byte* chunks)
    {
        var v = stackalloc Vector128<ushort>[GroupBlocks];
        var nibble = Vector128.Create((byte)0x0F);
        for (int j = 0; j < GroupBlocks; j++)
        {
            var q = Vector128.Load(qs + (long)j * stride); // codes 0..15 in the low nibbles, 16..31 in the high ones
            v[j] = Codes(q & nibble, q >>> 4 & nibble);
        }
        TransposeStore(v, chunks);
    }

    // Q4_K: super-block s is group s. Sub-block k's 32 codes (nibble k mod 2 of qs[32·(k/2) ..]) are rearranged into a
    // Q4_0 block's qs (byte i: codes i and i + 16) and placed as block 8s + k; the 16-byte header is the group's scale chunk.
    static unsafe void PackQ4K(ReadOnlySpan<byte> src, int cols, Span<byte> dst, bool vector)
    {
        int sbBytes = DType.Q4_K.BlockBytes(), sbCols = DType.Q4_K.BlockSize();
        if (cols % sbCols != 0) throw new ArgumentException($"a q4_K row is whole super-blocks of {sbCols}, not {cols} columns", nameof(cols));
        int supers = cols / sbCols, valueBytes = ValueChunks(DType.Q4_K, cols) * 16;
        if (src.Length < supers * sbBytes) throw new ArgumentException($"src holds {src.Length} bytes, a q4_K row of {cols} needs {supers * sbBytes}", nameof(src));
        if (dst.Length < RowChunks(DType.Q4_K, cols) * 16) throw new ArgumentException($"dst holds {dst.Length} bytes, need {RowChunks(DType.Q4_K, cols) * 16}", nameof(dst));
        byte* qs4 = stackalloc byte[16];
        fixed (byte* s = src, d = dst)
            for (int g = 0; g < supers; g++)
            {
                byte* block = s + (long)g * sbBytes;
                Buffer.MemoryCopy(block, d + valueBytes + 16L * g, 16, 16);
                if (vector)
                {
                    PackQ4KGroup(block + 16, d + 128L * g);
                    continue;
                }
                for (int k = 0; k < GroupBlocks; k++)
                {
                    byte* qs = block + 16 + 32 * (k >> 1);
                    int shift = 4 * (k & 1);
                    for (int i = 0; i < 16; i++) qs4[i] = (byte)((qs[i] >> shift & 0xF) | (qs[i + 16] >> shift & 0xF) << 4);
                    PackNibbles(qs4, d, 8 * g + k, full: true);
                }
            }
    }

    // One Q4_K super-block's 128 code bytes (qs) as the group's 8 chunks: sub-block k's codes c0..c31 (nibble k mod 2 of
    // qs[32·(k/2) + j]) packed two to a byte in order, so half-word p4 holds codes 4p4..4p4+3, then transposed.
    static unsafe void PackQ4KGroup(byte* qs, byte* chunks)
    {
        var v = stackalloc Vector128<ushort>[GroupBlocks];
        var nibble = Vector128.Create((byte)0x0F);
        for (int k = 0; k < GroupBlocks; k += 2)
        {
            var first = Vector128.Load(qs + 16 * k);        // codes 0..15 of sub-blocks k (low nibbles) and k + 1 (high)
            var second = Vector128.Load(qs + 16 * k + 16);  // codes 16..31
            v[k] = Codes(first & nibble, second & nibble);
            v[k + 1] = Codes(first >>> 4 & nibble, second >>> 4 & nibble);
        }
        TransposeStore(v, chunks);
    }

    // A block's 32 codes (0..15 each, one per byte, in order) packed two to a byte: half-word p4 holds codes 4p4..4p4+3.
    static Vector128<ushort> Codes(Vector128<byte> codes0To15, Vector128<byte> codes16To31) =>
        Vector128.Narrow(Pairs(codes0To15), Pairs(codes16To31)).AsUInt16();

    // Bytes 2i and 2i+1 (each a code 0..15) → c(2i) | c(2i+1) << 4 in the low byte of lane i.
    static Vector128<ushort> Pairs(Vector128<byte> codes)
    {
        var x = codes.AsUInt16();
        return (x | x >> 4) & Vector128.Create((ushort)0x00FF);
    }

    // Chunk p4 of the group = half-word p4 of blocks 0..7 (an 8x8 transpose of half-words).
    static unsafe void TransposeStore(Vector128<ushort>* v, byte* chunks)
    {
        var t0 = Sse2.UnpackLow(v[0], v[1]); var t1 = Sse2.UnpackHigh(v[0], v[1]);
        var t2 = Sse2.UnpackLow(v[2], v[3]); var t3 = Sse2.UnpackHigh(v[2], v[3]);
        var t4 = Sse2.UnpackLow(v[4], v[5]); var t5 = Sse2.UnpackHigh(v[4], v[5]);
        var t6 = Sse2.UnpackLow(v[6], v[7]); var t7 = Sse2.UnpackHigh(v[6], v[7]);
        var u0 = Sse2.UnpackLow(t0.AsUInt32(), t2.AsUInt32()); var u1 = Sse2.UnpackHigh(t0.AsUInt32(), t2.AsUInt32());
        var u2 = Sse2.UnpackLow(t1.AsUInt32(), t3.AsUInt32()); var u3 = Sse2.UnpackHigh(t1.AsUInt32(), t3.AsUInt32());
        var u4 = Sse2.UnpackLow(t4.AsUInt32(), t6.AsUInt32()); var u5 = Sse2.UnpackHigh(t4.AsUInt32(), t6.AsUInt32());
        var u6 = Sse2.UnpackLow(t5.AsUInt32(), t7.AsUInt32()); var u7 = Sse2.UnpackHigh(t5.AsUInt32(), t7.AsUInt32());
        Sse2.UnpackLow(u0.AsUInt64(), u4.AsUInt64()).Store((ulong*)chunks);
        Sse2.UnpackHigh(u0.AsUInt64(), u4.AsUInt64()).Store((ulong*)(chunks + 16));
        Sse2.UnpackLow(u1.AsUInt64(), u5.AsUInt64()).Store((ulong*)(chunks + 32));
        Sse2.UnpackHigh(u1.AsUInt64(), u5.AsUInt64()).Store((ulong*)(chunks + 48));
        Sse2.UnpackLow(u2.AsUInt64(), u6.AsUInt64()).Store((ulong*)(chunks + 64));
        Sse2.UnpackHigh(u2.AsUInt64(), u6.AsUInt64()).Store((ulong*)(chunks + 80));
        Sse2.UnpackLow(u3.AsUInt64(), u7.AsUInt64()).Store((ulong*)(chunks + 96));
        Sse2.UnpackHigh(u3.AsUInt64(), u7.AsUInt64()).Store((ulong*)(chunks + 112));
    }

    static unsafe uint Unaligned(byte* p) => Unsafe.ReadUnaligned<uint>(p);

    // Four nibbles at bits 0, 8, 16, 24 as one half-word, nibble r at bits 4r.
    static ushort Compress(uint n)
    {
        n = (n | n >> 4) & 0x00FF00FFu;
        return (ushort)(n | n >> 8);
    }

    /// <summary>
    /// Element <paramref name="c"/> of a device row as the kernels compute it (the scalar twin of their decoding): equal to
    /// <see cref="Quant.BlockQuant.Element"/> of the source block.
    /// </summary>
    public static float Element(DType t, ReadOnlySpan<byte> row, int cols, int c)
    {
        int blocks = Blocks(cols), bc = BlockChunks(t), fullBlocks = blocks / GroupBlocks * GroupBlocks;
        int b = c / 32, p4 = c % 32 / 4, r = c % 4;
        Place(b, fullBlocks, bc, out int chunk0, out int v, out int m);
        int p = 8 * m + p4, k = p / v;
        var chunk = row.Slice((chunk0 + p % v) * 16, 16);
        var scales = row[(blocks * bc * 16)..];
        if (t == DType.MXFP4)
        {
            int code = chunk[2 * k + r / 2] >> 4 * (r % 2) & 0xF;
            var h = (ushort)((code & 8) << 12 | (code & 7) << 9);
            return (float)BitConverter.UInt16BitsToHalf(h) * BitConverter.UInt32BitsToSingle((uint)scales[b] << 23);
        }
        if (t == DType.Q4_K)
        {
            var header = scales.Slice(16 * (b / GroupBlocks), 16);
            Quant.BlockQuant.ScaleMin(header[4..], b % GroupBlocks, out int sc, out int mn);
            float dk = (float)BitConverter.UInt16BitsToHalf(BinaryPrimitives.ReadUInt16LittleEndian(header));
            float dmin = (float)BitConverter.UInt16BitsToHalf(BinaryPrimitives.ReadUInt16LittleEndian(header[2..]));
            return dk * sc * (chunk[2 * k + r / 2] >> 4 * (r % 2) & 0xF) - dmin * mn;
        }
        float d = (float)BitConverter.UInt16BitsToHalf(BinaryPrimitives.ReadUInt16LittleEndian(scales[(2 * b)..]));
        if (t == DType.Q8_0) return (sbyte)chunk[4 * k + r] * d;
        return ((chunk[2 * k + r / 2] >> 4 * (r % 2) & 0xF) - 8) * d;
    }

    // Block b's group: its first chunk, chunks per group (V) and the block's index in it.
    static void Place(int b, int fullBlocks, int bc, out int chunk0, out int v, out int m)
    {
        if (b < fullBlocks)
        {
            v = GroupBlocks * bc;
            chunk0 = b / GroupBlocks * v;
            m = b % GroupBlocks;
        }
        else
        {
            v = bc;
            chunk0 = b * bc;
            m = 0;
        }
    }

    static DType Check(DType t) => t.IsBlock() ? t : throw new ArgumentException($"{t.Name()} is not a block format", nameof(t));
}
