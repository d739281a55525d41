using System.Runtime.Intrinsics;

namespace Daop.Kernels.Quant;

public static partial class BlockQuant
{
    /// <summary>
    /// <see cref="QuantizeRow"/> for Q8_0 with 256-bit vectors, the same bits (ggml's rule: d = amax / 127 in fp32, stored
    /// as fp16; q = roundf(x · (1 / d)), halves away from zero): what requantizes GGUF rows for the GPU at upload, where the
    /// scalar loop was most of the time. A partial last block takes the scalar rule.
    /// </summary>
    public static void QuantizeQ8_0(ReadOnlySpan<float> x, Span<byte> dst)
    {
        long need = DType.Q8_0.RowBytes(x.Length);
        if (dst.Length < need) throw new ArgumentException($"dst holds {dst.Length} bytes, a q8_0 row of {x.Length} needs {need}", nameof(dst));
        int full = Vector256.IsHardwareAccelerated ? x.Length / Block : 0, bytes = DType.Q8_0.BlockBytes();
        var half = Vector256.Create(0.5f);
        for (int b = 0; b < full; b++)
        {
            var xs = x.Slice(b * Block, Block);
            Vector256<float> v0 = Vector256.Create(xs[..8]), v1 = Vector256.Create(xs[8..16]), v2 = Vector256.Create(xs[16..24]), v3 = Vector256.Create(xs[24..]);
            var m = Vector256.Max(Vector256.Max(Vector256.Abs(v0), Vector256.Abs(v1)), Vector256.Max(Vector256.Abs(v2), Vector256.Abs(v3)));
            float amax = 0;
            for (int i = 0; i < 8; i++) amax = MathF.Max(amax, m.GetElement(i));
            float d = amax / 127, id = d != 0 ? 1 / d : 0;
            var o = dst.Slice(b * bytes, bytes);
            WriteScale16(o, d);
            var s = Vector256.Create(id);
            var q01 = Vector256.Narrow(RoundAway(v0 * s, half), RoundAway(v1 * s, half));
            var q23 = Vector256.Narrow(RoundAway(v2 * s, half), RoundAway(v3 * s, half));
            Vector256.Narrow(q01, q23).AsByte().CopyTo(o[2..]);
        }
        if (full * Block < x.Length) QuantizeRow(DType.Q8_0, x[(full * Block)..], dst[(full * bytes)..]);
    }

    // roundf: the truncation, plus one away from zero where the dropped fraction is a half or more (exact for |p| < 2^23).
    static Vector256<int> RoundAway(Vector256<float> p, Vector256<float> half)
    {
        var t = Vector256.Truncate(p);
        var up = Vector256.GreaterThanOrEqual(Vector256.Abs(p - t), half);
        return Vector256.ConvertToInt32(t + (up & Vector256.CopySign(Vector256<float>.One, p)));
    }
}
