using System.Runtime.Intrinsics;
using Daop.Kernels.Cpu.Gemm;

namespace Daop.Kernels.Cpu.Quant;

/// <summary>
/// A block weight format (<see cref="DType.Q8_0"/>, <see cref="DType.Q4_0"/>, <see cref="DType.MXFP4"/>) as the
/// int8 kernels see it: each block of 32 is a scale times small integers, w[j] = <see cref="Scale"/> ·
/// <see cref="Value"/>(j). The vector unpacks hand the integers to <c>vpmaddubsw</c>, whose first operand is
/// unsigned: formats with an <see cref="Offset"/> give value + Offset (Q4_0: the stored nibble; MXFP4: the doubled
/// E2M1 value + 12), and the kernel subtracts Offset · Σx per block; Q8_0 (Offset 0) gives the signed bytes and the
/// kernel moves their signs onto the activations.
/// </summary>
/// <remarks>
/// Pointers are at a block's first byte (its scale). The vector unpacks read only the bytes of the blocks they
/// unpack, so the last block of a mapping is safe. Scales that are Inf or NaN (an fp16 exponent of 31) are not
/// supported: real checkpoints have none, and the kernels widen only finite fp16.
/// </remarks>
internal unsafe interface IBlockFormat : IPanelFormat
{
    /// <summary>The descriptor value.</summary>
    static abstract DType Type { get; }

    /// <summary>Bytes per block.</summary>
    static abstract int BlockBytes { get; }

    /// <summary>Added to each integer so that it is a non-negative byte; 0 for the signed Q8_0.</summary>
    static abstract int Offset { get; }

    /// <summary>The block's scale as fp32 (exact).</summary>
    static abstract float Scale(byte* block);

    /// <summary>Integer <paramref name="j"/> (0..31) of the block: w[j] = Scale · Value.</summary>
    static abstract int Value(byte* block, int j);

    /// <summary>
    /// Two consecutive blocks at <paramref name="p"/>: their 64 integers (plus <see cref="Offset"/>) in column order,
    /// and their scales per int32 lane of a <c>vpmaddwd</c> result (lanes 0–7 the first block, 8–15 the second).
    /// </summary>
    static abstract Vector512<byte> Unpack2(byte* p, out Vector512<float> scale);

    /// <summary>One block: its 32 integers (plus <see cref="Offset"/>) in column order, and its scale in every lane.</summary>
    static abstract Vector256<byte> Unpack1(byte* p, out Vector256<float> scale);
}

/// <summary>Row widening shared by the block formats: whole blocks through <see cref="IBlockFormat"/>'s unpacks.</summary>
internal static unsafe class BlockWidening
{
    /// <summary>
    /// Blocks [<paramref name="b0"/>, <paramref name="b1"/>) of <paramref name="row"/> as fp32 at d[32·b0 ..]:
    /// 32 floats per block, padding columns of a partial last block included.
    /// </summary>
    public static void Blocks<TB>(byte* row, int b0, int b1, float* d) where TB : struct, IBlockFormat
    {
        int bb = TB.BlockBytes;
        if (Vector256.IsHardwareAccelerated)
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
                (Vector256.ConvertToSingle(l0) * scale).Store(o);
                (Vector256.ConvertToSingle(l1) * scale).Store(o + 8);
                (Vector256.ConvertToSingle(h0) * scale).Store(o + 16);
                (Vector256.ConvertToSingle(h1) * scale).Store(o + 24);
            }
            return;
        }
        for (int b = b0; b < b1; b++)
        {
            byte* block = row + (nint)b * bb;
            float s = TB.Scale(block);
            for (int j = 0; j < 32; j++) d[(nint)b * 32 + j] = s * TB.Value(block, j);
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
