using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Daop.Kernels.Cpu.Gemm;

namespace Daop.Kernels.Cpu.Quant;

/// <summary>A row's unpacked step for <see cref="Quant512"/>: unsigned bytes, Q8_0's sign mask, and per-lane scales.</summary>
internal struct W512
{
    /// <summary>value + Offset, or |value| for Q8_0.</summary>
    public Vector512<byte> U;
    /// <summary>Q8_0 only: all ones where the weight is negative.</summary>
    public Vector512<sbyte> Negative;
    public Vector512<float> Scale;
}

/// <summary>
/// <see cref="IQuantSimd{TW, TV}"/> on AVX-512BW + VBMI: two blocks (64 columns) per step. There is no 512-bit
/// VNNI in .NET, so the int8 dot is <c>vpmaddubsw</c> (u8 × s8 → s16 pairs) then <c>vpmaddwd</c> with ones (→ int32).
/// Pairs cannot saturate: Q4_0's and MXFP4's unsigned bytes are at most 24, and Q8_0 uses llama.cpp's sign trick
/// (|w| ≤ 128 as the unsigned side, x·sign(w) with |x| ≤ 127), so a pair is at most 2·128·127 &lt; 2^15.
/// </summary>
internal unsafe struct Quant512 : IQuantSimd<W512, Vector512<float>>
{
    /// <summary>Whether this machine runs it.</summary>
    public static bool IsSupported => Vector512.IsHardwareAccelerated && Avx512BW.IsSupported && Avx512Vbmi.IsSupported;

    public static int Blocks => 2;
    public static Vector512<float> Zero => Vector512<float>.Zero;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static W512 Load<TB>(byte* p) where TB : struct, IBlockFormat
    {
        W512 w;
        var q = TB.Unpack2(p, out w.Scale);
        if (TB.Offset == 0)
        {
            w.Negative = Vector512.LessThan(q.AsSByte(), Vector512<sbyte>.Zero);
            w.U = Avx512BW.Abs(q.AsSByte());
        }
        else
        {
            w.Negative = default;
            w.U = q;
        }
        return w;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Dot<TB>(in W512 w, byte* x, nint pd, Vector512<float> acc) where TB : struct, IBlockFormat
    {
        Vector512<int> i;
        if (TB.Offset == 0)
        {
            var xs = Vector512.ConditionalSelect(w.Negative, Vector512.Load((sbyte*)(x + pd)), Vector512.Load((sbyte*)x));
            i = Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(w.U, xs), Vector512.Create((short)1));
        }
        else
        {
            i = Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(w.U, Vector512.Load((sbyte*)x)), Vector512.Create((short)1))
                + Vector512.Load((int*)(x + pd));
        }
        return Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(i), w.Scale * Vector512.Load((float*)(x + 2 * pd)), acc);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> DotOne<TB>(byte* p, byte* x, nint pd, Vector512<float> acc) where TB : struct, IBlockFormat =>
        acc + Quant256.Dot<TB>(Quant256.Load<TB>(p), x, pd, Vector256<float>.Zero).ToVector512();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Sum(Vector512<float> v) => Simd512.Sum(v);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Sum4(Vector512<float> a, Vector512<float> b, Vector512<float> c, Vector512<float> d, float* dst) =>
        Simd512.Sum4(a, b, c, d, dst);
}
