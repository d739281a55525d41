using System.Runtime.CompilerServices;
using ILGPU;

namespace Daop.Kernels.Gpu;

/// <summary>
/// 16 bytes of a stored weight row: 8 bf16/f16 values or 4 fp32 values, little-endian (element 0 is the
/// low half of <see cref="X"/>). Device weight rows are padded to whole chunks so one chunk is one 16-byte
/// load.
/// </summary>
public struct Chunk16
{
    /// <summary>Bytes 0..3.</summary>
    public uint X;
    /// <summary>Bytes 4..7.</summary>
    public uint Y;
    /// <summary>Bytes 8..11.</summary>
    public uint Z;
    /// <summary>Bytes 12..15.</summary>
    public uint W;
}

/// <summary>Four consecutive fp32 activations, loaded as one 16-byte access.</summary>
public struct Float4
{
    /// <summary>Element 0.</summary>
    public float X;
    /// <summary>Element 1.</summary>
    public float Y;
    /// <summary>Element 2.</summary>
    public float Z;
    /// <summary>Element 3.</summary>
    public float W;
}

/// <summary>One chunk widened to fp32 (4 or 8 values; unused ones are zero).</summary>
public struct Widened
{
    /// <summary>Elements 0..7.</summary>
    public float W0, W1, W2, W3, W4, W5, W6, W7;
}

/// <summary>Up to four per-token partial sums of one team lane.</summary>
struct Acc4
{
    public float A0, A1, A2, A3;
}

/// <summary>
/// Device-side helpers shared by the kernels: dtype widening, an exp that needs no math library, and
/// team reductions. A team is <c>lanes</c> consecutive threads of one warp (a power of two ≤ warp size);
/// every lane of a warp must call the reductions the same number of times.
/// </summary>
public static class GpuMath
{
    /// <summary>Kernel dtype code of fp32 weights (= <see cref="DType.F32"/>).</summary>
    public const int F32 = (int)DType.F32;
    /// <summary>Kernel dtype code of f16 weights.</summary>
    public const int F16 = (int)DType.F16;
    /// <summary>Kernel dtype code of bf16 weights.</summary>
    public const int BF16 = (int)DType.BF16;
    /// <summary>Kernel dtype code of Q8_0 weights.</summary>
    public const int Q8_0 = (int)DType.Q8_0;
    /// <summary>Kernel dtype code of Q4_0 weights.</summary>
    public const int Q4_0 = (int)DType.Q4_0;
    /// <summary>Kernel dtype code of MXFP4 weights.</summary>
    public const int MXFP4 = (int)DType.MXFP4;
    /// <summary>Kernel dtype code of Q4_K weights.</summary>
    public const int Q4_K = (int)DType.Q4_K;

    /// <summary>Elements in one 16-byte chunk of an unblocked <paramref name="type"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int PerChunk(int type) => type == F32 ? 4 : 8;

    /// <summary>Widens the low 16 bits of <paramref name="h"/> from IEEE binary16 to fp32 (exact, subnormals and NaN kept).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float HalfToFloat(uint h)
    {
        uint sign = (h & 0x8000u) << 16;
        uint em = h & 0x7FFFu;
        float mag;
        if (em >= 0x7C00u) mag = Interop.IntAsFloat(0x7F800000u | ((em & 0x3FFu) << 13)); // inf / NaN
        else mag = Interop.IntAsFloat(em << 13) * 5.192296858534828e33f;                 // 2^112 rebias; exact for subnormals too
        return Interop.IntAsFloat(Interop.FloatAsInt(mag) | sign);
    }

    /// <summary>Widens a bf16 (the upper half of an fp32).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Bf16ToFloat(uint b) => Interop.IntAsFloat(b << 16);

    /// <summary>Element <paramref name="i"/> (0..7, or 0..3 for fp32) of a chunk, widened.</summary>
    public static float Element(Chunk16 c, int type, int i)
    {
        if (type == F32)
        {
            uint v = i == 0 ? c.X : i == 1 ? c.Y : i == 2 ? c.Z : c.W;
            return Interop.IntAsFloat(v);
        }
        int word = i >> 1;
        uint u = word == 0 ? c.X : word == 1 ? c.Y : word == 2 ? c.Z : c.W;
        uint bits = (i & 1) == 0 ? u & 0xFFFFu : u >> 16;
        return type == BF16 ? Bf16ToFloat(bits) : HalfToFloat(bits);
    }

    /// <summary>
    /// e^x in fp32 from arithmetic alone (Cody–Waite reduction, degree-7 Taylor): within ~2 ulp of
    /// <see cref="MathF.Exp"/>; 0 below −104, +∞ above 88.72.
    /// </summary>
    public static float Exp(float x)
    {
        if (x < -104f) return 0f;
        if (x > 88.72f) return float.PositiveInfinity;
        float n = MathF.Floor(x * 1.44269504f + 0.5f);
        float r = x - n * 0.693145751953125f;
        r -= n * 1.428606765330187e-6f;
        float p = 1f / 5040f;
        p = p * r + 1f / 720f;
        p = p * r + 1f / 120f;
        p = p * r + 1f / 24f;
        p = p * r + 1f / 6f;
        p = p * r + 0.5f;
        p = p * r + 1f;
        p = p * r + 1f;
        int ni = (int)n, n1 = ni / 2;                          // 2^n as two normal factors (n in −150 .. 128)
        float s1 = Interop.IntAsFloat((uint)(n1 + 127) << 23);
        float s2 = Interop.IntAsFloat((uint)(ni - n1 + 127) << 23);
        return p * s1 * s2;
    }

    /// <summary>x · sigmoid(x) as x / (1 + e^−x).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Silu(float x) => x / (1f + Exp(-x));

    /// <summary>Sum of <paramref name="v"/> over the team (every lane gets it).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float TeamSum(float v, int lanes)
    {
        for (int o = lanes >> 1; o > 0; o >>= 1) v += Warp.ShuffleXor(v, o);
        return v;
    }

    /// <summary>Max of <paramref name="v"/> over the team (every lane gets it).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float TeamMax(float v, int lanes)
    {
        for (int o = lanes >> 1; o > 0; o >>= 1) v = MathF.Max(v, Warp.ShuffleXor(v, o));
        return v;
    }

    // Σ w_i·x_i for the chunk starting at column c0 of an x row starting at element xRow.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float DotChunk(Widened w, ArrayView<float> x, ArrayView<Float4> x4, long xRow, int c0, int cols, int per, int aligned)
    {
        long xi = xRow + c0;
        if (aligned != 0 && c0 + per <= cols)
        {
            Float4 a = x4[xi >> 2];
            float s = w.W0 * a.X + w.W1 * a.Y + w.W2 * a.Z + w.W3 * a.W;
            if (per == 8)
            {
                Float4 b = x4[(xi >> 2) + 1];
                s += w.W4 * b.X + w.W5 * b.Y + w.W6 * b.Z + w.W7 * b.W;
            }
            return s;
        }
        int n = cols - c0;
        if (n > per) n = per;
        float t = 0;
        if (n > 0) t += w.W0 * x[xi];
        if (n > 1) t += w.W1 * x[xi + 1];
        if (n > 2) t += w.W2 * x[xi + 2];
        if (n > 3) t += w.W3 * x[xi + 3];
        if (n > 4) t += w.W4 * x[xi + 4];
        if (n > 5) t += w.W5 * x[xi + 5];
        if (n > 6) t += w.W6 * x[xi + 6];
        if (n > 7) t += w.W7 * x[xi + 7];
        return t;
    }

    /// <summary>
    /// This lane's share of W[row]·x[row k] for k &lt; nt (up to four x rows starting at elements x0..x3),
    /// each weight chunk loaded once for all of them; the dtype is the kernel's type argument (block formats:
    /// <see cref="BlockDots.Rows{TW}"/>; rowChunks = 0: no work).
    /// </summary>
    internal static Acc4 DotRows<TW>(ArrayView<Chunk16> w, long rowBase, int rowChunks,
        ArrayView<float> x, ArrayView<Float4> x4, int cols, int aligned,
        long x0, long x1, long x2, long x3, int nt, int lane, int lanes) where TW : struct, IWeightFormat
    {
        if (default(TW).BlockChunks > 0) return BlockDots.Rows<TW>(w, rowBase, rowChunks > 0, x, x4, cols, aligned, x0, x1, x2, x3, nt, lane, lanes);
        Acc4 a;
        a.A0 = 0; a.A1 = 0; a.A2 = 0; a.A3 = 0;
        int per = default(TW).PerChunk;
        int j = lane;
        // Two chunks per step: both 16-byte loads are issued before either is used.
        for (; j + lanes < rowChunks; j += 2 * lanes)
        {
            var c0 = w[rowBase + j];
            var c1 = w[rowBase + j + lanes];
            a = Accumulate(a, default(TW).Widen(c0), x, x4, x0, x1, x2, x3, j * per, cols, per, aligned, nt);
            a = Accumulate(a, default(TW).Widen(c1), x, x4, x0, x1, x2, x3, (j + lanes) * per, cols, per, aligned, nt);
        }
        if (j < rowChunks)
            a = Accumulate(a, default(TW).Widen(w[rowBase + j]), x, x4, x0, x1, x2, x3, j * per, cols, per, aligned, nt);
        return a;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Acc4 Accumulate(Acc4 a, Widened wv, ArrayView<float> x, ArrayView<Float4> x4, long x0, long x1, long x2, long x3,
        int c0, int cols, int per, int aligned, int nt)
    {
        a.A0 += DotChunk(wv, x, x4, x0, c0, cols, per, aligned);
        if (nt > 1) a.A1 += DotChunk(wv, x, x4, x1, c0, cols, per, aligned);
        if (nt > 2) a.A2 += DotChunk(wv, x, x4, x2, c0, cols, per, aligned);
        if (nt > 3) a.A3 += DotChunk(wv, x, x4, x3, c0, cols, per, aligned);
        return a;
    }

    /// <summary>Team sums of the first <paramref name="nt"/> accumulators.</summary>
    internal static Acc4 TeamSum4(Acc4 a, int nt, int lanes)
    {
        a.A0 = TeamSum(a.A0, lanes);
        if (nt > 1) a.A1 = TeamSum(a.A1, lanes);
        if (nt > 2) a.A2 = TeamSum(a.A2, lanes);
        if (nt > 3) a.A3 = TeamSum(a.A3, lanes);
        return a;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float Pick(Acc4 a, int k) => k == 0 ? a.A0 : k == 1 ? a.A1 : k == 2 ? a.A2 : a.A3;
}
