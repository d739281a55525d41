using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Daop.Kernels.Cpu.Gemm;

/// <summary><see cref="ISimd{TV}"/> over <see cref="Vector512{T}"/>: 32 columns per step.</summary>
internal unsafe struct Simd512 : ISimd<Vector512<float>>
{
    public static int Width => 16;
    public static Vector512<float> Zero => Vector512<float>.Zero;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Load(float* p) => Vector512.Load(p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(Vector512<float> v, float* p) => v.Store(p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Broadcast(float* p) => Vector512.Create(*p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Add(Vector512<float> a, Vector512<float> b) => a + b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Fma(Vector512<float> a, Vector512<float> b, Vector512<float> c) =>
        Vector512.FusedMultiplyAdd(a, b, c);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Sum(Vector512<float> v) => Vector256.Sum(v.GetLower() + v.GetUpper());

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Sum4(Vector512<float> a, Vector512<float> b, Vector512<float> c, Vector512<float> d, float* dst) =>
        Simd256.Sum4(a.GetLower() + a.GetUpper(), b.GetLower() + b.GetUpper(),
            c.GetLower() + c.GetUpper(), d.GetLower() + d.GetUpper(), dst);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Bf16(byte* p, out Vector512<float> even, out Vector512<float> odd)
    {
        // Little-endian: each uint holds column 2k in its low half and 2k+1 in its high half.
        var u = Vector512.Load((uint*)p);
        even = (u << 16).AsSingle();
        odd = (u & Vector512.Create(0xFFFF0000u)).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void F16(byte* p, out Vector512<float> even, out Vector512<float> odd)
    {
        var u = Vector512.Load((uint*)p);
        // A step holding an Inf or NaN (never seen in real weights) takes the slower exact path.
        if (Vector512.EqualsAny((u & Vector512.Create(0x7C007C00u)).AsUInt16(), Vector512.Create((ushort)0x7C00)))
        {
            even = HalfBits.Widen((u << 13) & Vector512.Create(HalfBits.MagMask), (u << 16) & Vector512.Create(0x80000000u));
            odd = HalfBits.Widen((u >> 3) & Vector512.Create(HalfBits.MagMask), u & Vector512.Create(0x80000000u));
        }
        else
        {
            even = HalfBits.WidenFinite(u << 16);
            odd = HalfBits.WidenFinite(u);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void F32(byte* p, out Vector512<float> lo, out Vector512<float> hi)
    {
        lo = Vector512.Load((float*)p);
        hi = Vector512.Load((float*)p + 16);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Deinterleave(float* src, float* dst)
    {
        var a = Vector512.Load(src);
        var b = Vector512.Load(src + 16);
        if (Avx512F.IsSupported)
        {
            var even = Vector512.Create(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
            var odd = Vector512.Create(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
            Avx512F.PermuteVar16x32x2(a, even, b).Store(dst);
            Avx512F.PermuteVar16x32x2(a, odd, b).Store(dst + 16);
        }
        else
        {
            for (int k = 0; k < 16; k++) { dst[k] = src[2 * k]; dst[16 + k] = src[2 * k + 1]; }
        }
    }
}
