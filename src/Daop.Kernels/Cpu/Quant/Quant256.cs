using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Daop.Kernels.Cpu.Gemm;

namespace Daop.Kernels.Cpu.Quant;

/// <summary>A row's unpacked block for <see cref="Quant256"/>.</summary>
internal struct W256
{
    /// <summary>value + Offset, or |value| for Q8_0.</summary>
    public Vector256<byte> U;
    /// <summary>Q8_0 only: the signed values (their signs move onto the activations).</summary>
    public Vector256<sbyte> Signed;
    public Vector256<float> Scale;
}

/// <summary>
/// <see cref="IQuantSimd{TW, TV}"/> on AVX2: one block (32 columns) per step. With AVX-VNNI (<c>vpdpbusd</c>, e.g.
/// Sapphire Rapids) the u8 × s8 dot accumulates straight into int32, seeded with the aux correction; otherwise
/// <c>vpmaddubsw</c> + <c>vpmaddwd</c> with ones. Q8_0 uses the sign trick through <c>vpsignb</c>.
/// </summary>
internal unsafe struct Quant256 : IQuantSimd<W256, Vector256<float>>
{
    /// <summary>Whether this machine runs it.</summary>
    public static bool IsSupported => Vector256.IsHardwareAccelerated && Avx2.IsSupported && Fma.IsSupported;

    public static int Blocks => 1;
    public static Vector256<float> Zero => Vector256<float>.Zero;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static W256 Load<TB>(byte* p) where TB : struct, IBlockFormat
    {
        W256 w;
        var q = TB.Unpack1(p, out w.Scale);
        if (TB.Offset == 0)
        {
            w.Signed = q.AsSByte();
            w.U = Avx2.Abs(q.AsSByte());
        }
        else
        {
            w.Signed = default;
            w.U = q;
        }
        return w;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Dot<TB>(in W256 w, byte* x, nint pd, Vector256<float> acc) where TB : struct, IBlockFormat
    {
        var xq = Vector256.Load((sbyte*)x);
        Vector256<int> i;
        if (TB.Offset == 0)
        {
            var xs = Avx2.Sign(xq, w.Signed);
            i = AvxVnni.IsSupported
                ? AvxVnni.MultiplyWideningAndAdd(Vector256<int>.Zero, w.U, xs)
                : Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(w.U, xs), Vector256.Create((short)1));
        }
        else
        {
            var aux = Vector256.Load((int*)(x + pd));
            i = AvxVnni.IsSupported
                ? AvxVnni.MultiplyWideningAndAdd(aux, w.U, xq)
                : Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(w.U, xq), Vector256.Create((short)1)) + aux;
        }
        return Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(i), w.Scale * Vector256.Load((float*)(x + 2 * pd)), acc);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> DotOne<TB>(byte* p, byte* x, nint pd, Vector256<float> acc) where TB : struct, IBlockFormat =>
        Dot<TB>(Load<TB>(p), x, pd, acc);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Sum(Vector256<float> v) => Simd256.Sum(v);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Sum4(Vector256<float> a, Vector256<float> b, Vector256<float> c, Vector256<float> d, float* dst) =>
        Simd256.Sum4(a, b, c, d, dst);
}
