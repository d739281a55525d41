using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Daop.Kernels.Cpu.Gemm;

namespace Daop.Kernels.Cpu.Quant;

/// <summary>
/// A block weight format (<see cref="DType.Q8_0"/>, <see cref="DType.Q4_0"/>, <see cref="DType.MXFP4"/>,
/// <see cref="DType.Q5_0"/>, <see cref="DType.Q4_1"/>, <see cref="DType.Q5_1"/>) as the int8 kernels see it: each block
/// of 32 is a scale times small integers, w[j] = <see cref="Scale"/> · <see cref="Value"/>(j), plus a per-block
/// <see cref="Min"/> for Q4_1 and Q5_1. The vector unpacks hand the integers to <c>vpmaddubsw</c>, whose first operand is
/// unsigned: the 4- and 5-bit formats give value + <see cref="Offset"/> (Q4_0, Q5_0: the stored integer; MXFP4: the
/// doubled E2M1 value + 12; Q4_1, Q5_1: the stored integer, Offset 0) and the kernel subtracts Offset · Σq per block
/// and adds Min · d·Σq; Q8_0 (signed, Offset 0, no min) gives its signed bytes and the kernel moves their signs onto
/// the activations.
/// </summary>
/// <remarks>
/// Pointers are at a block's first byte (its scale). The unpacks read only the bytes of the blocks they unpack,
/// so the last block of a mapping is safe. Scales that are Inf or NaN (fp16 exponent 31) are not supported: real
/// checkpoints have none.
/// </remarks>
internal unsafe interface IBlockFormat : IPanelFormat
{
    /// <summary>The descriptor value.</summary>
    static abstract DType Type { get; }

    /// <summary>Bytes per block.</summary>
    static abstract int BlockBytes { get; }

    /// <summary>Added to each integer so that it is a non-negative byte; 0 for the signed Q8_0. Even.</summary>
    static abstract int Offset { get; }

    /// <summary>The block's scale as fp32 (exact).</summary>
    static abstract float Scale(byte* block);

    /// <summary>Integer <paramref name="j"/> (0..31) of the block: w[j] = Scale · Value (+ Min).</summary>
    static abstract int Value(byte* block, int j);

    /// <summary>Whether a block also carries a min added to each weight, w[j] = Scale · Value(j) + Min (Q4_1, Q5_1): then
    /// Offset is 0 and the integers are unsigned. False unless a format says otherwise.</summary>
    static virtual bool HasMin => false;

    /// <summary>The block's min as fp32 (exact); 0 for the formats without one (the default).</summary>
    static virtual float Min(byte* block) => 0f;

    /// <summary><see cref="HasMin"/> formats: the quad's four mins in the reduced lanes' order (as <see cref="Unpack4"/>'s scale);
    /// the others (the default): zero.</summary>
    static virtual Vector256<float> Mins4(byte* p) => default;

    /// <summary>
    /// <see cref="HasMin"/> formats: <paramref name="acc"/> + <paramref name="mins"/> · the token's d·Σq/2 lanes at
    /// <paramref name="sums"/>; the others: <paramref name="acc"/>. A member of the format rather than a test in the dot,
    /// so the formats without mins inline nothing: the quad tiles sit at the JIT's inlining budget, and a few more IL bytes
    /// per dot left calls in them (Q4_0 and MXFP4 16-token tiles 15–20 % slower, measured). The default (no mins) is
    /// <paramref name="acc"/>.
    /// </summary>
    static virtual Vector256<float> AddMins(Vector256<float> mins, byte* sums, Vector256<float> acc) => acc;

    /// <summary>One block: its 32 integers (plus <see cref="Offset"/>) in column order, and its scale in every lane.</summary>
    static abstract Vector256<byte> Unpack1(byte* p, out Vector256<float> scale);

    /// <summary>
    /// Four consecutive blocks a, b, c, d at <paramref name="p"/> in the quad layout (<see cref="Quad"/>): in halves
    /// (<see cref="Quad.Halves{TB}"/>) u0 = [a 0–15 | b 0–15], u1 = [a 16–31 | b 16–31], u2 and u3 the same for c, d
    /// (integers + Offset, or the biased formats' signed integers); for the signed formats with the sign trick the four
    /// blocks' signed bytes in order. <paramref name="scale"/> gets the blocks' exact scales in the
    /// reduced lanes' order (<see cref="Quad.LaneBlock{TB}"/>).
    /// </summary>
    static abstract void Unpack4(byte* p, out Vector256<byte> u0, out Vector256<byte> u1, out Vector256<byte> u2, out Vector256<byte> u3,
        out Vector256<float> scale);

    /// <summary>Block formats yield columns in order.</summary>
    static bool IPanelFormat.Interleaved => false;
}

/// <summary>
/// A block format that names itself (<typeparamref name="TSelf"/>, the struct), so that the row widening every block
/// format shares (<see cref="BlockWidening"/>) is written once here rather than forwarded from each struct. Static
/// virtual members of a struct type parameter are resolved when the generic kernel is compiled, so these defaults
/// inline as the struct's own members would.
/// </summary>
internal unsafe interface IBlockFormat<TSelf> : IBlockFormat where TSelf : struct, IBlockFormat<TSelf>
{
    static float IPanelFormat.Widen(byte* row, int c) => BlockWidening.Element<TSelf>(row, c);

    static void IPanelFormat.WidenRow(byte* row, Span<float> dst) => BlockWidening.Row<TSelf>(row, dst);

    static void IPanelFormat.WidenPanel<TS, TV>(byte* row, int cols, int kb, int kl, float* d) => BlockWidening.Panel<TSelf>(row, cols, kb, kl, d);
}

/// <summary>
/// Where things sit in a quad (four consecutive blocks) for the int8 kernels. A quad's activations take 128 bytes
/// laid out like <see cref="IBlockFormat.Unpack4"/>'s weights, and its dot reduces to 8 int32 lanes, each belonging
/// to one block: [a a c c b b d d] for the 4-bit formats (two vpmaddwd halves folded by vphaddd) and the biased signed
/// ones (<see cref="Biased{TB}"/>), [a b c d a b c d] for Q8_0 and IQ4_NL with the sign trick (three vphaddd).
/// </summary>
internal static class Quad
{
    /// <summary>Whether the quad holds unsigned integers (the 4- and 5-bit formats' layout) rather than Q8_0's signed bytes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Unsigned<TB>() where TB : struct, IBlockFormat => TB.Offset != 0 || TB.HasMin;

    /// <summary>
    /// Whether a signed format (Q8_0, IQ4_NL) runs on biased activations: with AVX-VNNI, whose <c>vpdpbusd</c> does not
    /// saturate, each activation is stored as q + 128 (unsigned) and multiplies the signed weights directly, and the dot
    /// subtracts 128·Σw per block, a constant of the row's quad computed when it is unpacked. That takes the sign
    /// trick's four <c>vpsignb</c> and two of its three <c>vphaddd</c> out of every token's quad, and the quad takes the
    /// unsigned formats' layout. <c>DAOP_Q8_SIGN_TRICK=1</c> keeps the sign trick (to compare the two on one machine).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Biased<TB>() where TB : struct, IBlockFormat => !Unsigned<TB>() && BiasedSigned;

    static readonly bool BiasedSigned = System.Runtime.Intrinsics.X86.AvxVnni.IsSupported && Avx2Support.IsSupported
        && Environment.GetEnvironmentVariable("DAOP_Q8_SIGN_TRICK") != "1";

    /// <summary>Whether the quad is laid out in 16-byte halves (the unsigned formats' layout, and the biased signed ones').</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Halves<TB>() where TB : struct, IBlockFormat => Unsigned<TB>() || Biased<TB>();

    /// <summary>Byte of the quad's 128 activation bytes holding element <paramref name="j"/> of block <paramref name="k"/> (0..3).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int XByte<TB>(int k, int j) where TB : struct, IBlockFormat =>
        Halves<TB>() ? 64 * (k >> 1) + 32 * (j >> 4) + 16 * (k & 1) + (j & 15) : 32 * k + j;

    /// <summary>The block (0..3) that reduced lane <paramref name="lane"/> (0..7) belongs to.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int LaneBlock<TB>(int lane) where TB : struct, IBlockFormat =>
        Halves<TB>() ? (lane >> 2) | (lane & 2) : lane & 3;
}

/// <summary>Row widening shared by the block formats: whole blocks through <see cref="IBlockFormat.Unpack1"/>.</summary>
internal static unsafe class BlockWidening
{
    /// <summary>Element <paramref name="c"/> of a row (column tails): Scale · Value (+ Min).</summary>
    public static float Element<TB>(byte* row, int c) where TB : struct, IBlockFormat
    {
        byte* block = row + (nint)(c / 32) * TB.BlockBytes;
        float w = TB.Scale(block) * TB.Value(block, c % 32);
        return TB.HasMin ? w + TB.Min(block) : w;
    }

    /// <summary>
    /// Blocks [<paramref name="b0"/>, <paramref name="b1"/>) of <paramref name="row"/> as fp32 at d[32·b0 ..]:
    /// 32 floats per block, padding columns of a partial last block included.
    /// </summary>
    public static void Blocks<TB>(byte* row, int b0, int b1, float* d) where TB : struct, IBlockFormat
    {
        int bb = TB.BlockBytes;
        if (Avx2Support.IsSupported)
        {
            for (int b = b0; b < b1; b++)
            {
                var q = TB.Unpack1(row + (nint)b * bb, out var scale);
                float* o = d + (nint)b * 32;
                Vector256<short> lo, hi;
                if (TB.Offset == 0) (lo, hi) = Vector256.Widen(q.AsSByte());
                else
                {
                    var (ul, uh) = Vector256.Widen(q);
                    lo = ul.AsInt16() - Vector256.Create((short)TB.Offset);
                    hi = uh.AsInt16() - Vector256.Create((short)TB.Offset);
                }
                var (l0, l1) = Vector256.Widen(lo);
                var (h0, h1) = Vector256.Widen(hi);
                var w0 = Vector256.ConvertToSingle(l0) * scale; var w1 = Vector256.ConvertToSingle(l1) * scale;
                var w2 = Vector256.ConvertToSingle(h0) * scale; var w3 = Vector256.ConvertToSingle(h1) * scale;
                if (TB.HasMin)
                {
                    // the min added after the (exact) product, as the reference rounds once; only here, as + 0 turns −0 into 0
                    var min = Vector256.Create(TB.Min(row + (nint)b * bb));
                    w0 += min; w1 += min; w2 += min; w3 += min;
                }
                w0.Store(o); w1.Store(o + 8); w2.Store(o + 16); w3.Store(o + 24);
            }
            return;
        }
        for (int b = b0; b < b1; b++)
        {
            byte* block = row + (nint)b * bb;
            float s = TB.Scale(block), min = TB.Min(block);
            for (int j = 0; j < 32; j++) d[(nint)b * 32 + j] = TB.HasMin ? s * TB.Value(block, j) + min : s * TB.Value(block, j);
        }
    }

    /// <summary>A whole row of dst.Length columns (the padding of a partial last block is not written).</summary>
    public static void Row<TB>(byte* row, Span<float> dst) where TB : struct, IBlockFormat
    {
        int cols = dst.Length, whole = cols / 32;
        fixed (float* d = dst)
        {
            Blocks<TB>(row, 0, whole, d);
            if (whole * 32 < cols)
            {
                float* tail = stackalloc float[32];
                Blocks<TB>(row + (nint)whole * TB.BlockBytes, 0, 1, tail);
                new ReadOnlySpan<float>(tail, cols - whole * 32).CopyTo(dst.Slice(whole * 32));
            }
        }
    }

    /// <summary>
    /// <see cref="IPanelFormat.WidenPanel"/> for a block format: the panel's blocks widened whole (a panel starts on a
    /// block, and <c>d</c> has room to the next multiple of 32), and the row's next panel prefetched.
    /// </summary>
    public static void Panel<TB>(byte* row, int cols, int kb, int kl, float* d) where TB : struct, IBlockFormat
    {
        int b0 = kb / 32, b1 = (kb + kl + 31) / 32;
        if (System.Runtime.Intrinsics.X86.Sse.IsSupported && kb + kl < cols)
        {
            byte* next = row + (nint)b1 * TB.BlockBytes;
            int bytes = (Math.Min(cols, kb + 2 * kl) - kb - kl + 31) / 32 * TB.BlockBytes;
            for (int o = 0; o < bytes; o += 64) System.Runtime.Intrinsics.X86.Sse.Prefetch0(next + o);
        }
        Blocks<TB>(row, b0, b1, d);
    }
}

/// <summary>Nibble extraction for the 4-bit formats.</summary>
internal static class Nibbles
{
    /// <summary>
    /// Each byte's high nibble, as a byte 0–15: one GF(2) affine transform (its matrix moves bits 4–7 to 0–3 and
    /// clears the rest) where GFNI is present, else a word shift and a mask.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<byte> High(Vector256<byte> v) =>
        System.Runtime.Intrinsics.X86.Gfni.V256.IsSupported
            ? System.Runtime.Intrinsics.X86.Gfni.V256.GaloisFieldAffineTransform(v, Vector256.Create(0x1020408000000000ul).AsByte(), 0)
            : Vector256.ShiftRightLogical(v.AsUInt16(), 4).AsByte() & Vector256.Create((byte)15);
}

/// <summary>Whether the AVX2 int8 kernels run here (else the scalar fallback).</summary>
internal static class Avx2Support
{
    public static bool IsSupported =>
        Vector256.IsHardwareAccelerated && System.Runtime.Intrinsics.X86.Avx2.IsSupported && System.Runtime.Intrinsics.X86.Fma.IsSupported;
}
