using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Daop.Kernels.Cpu.Gemm;

/// <summary><see cref="ISimd{TV}"/> over <see cref="Vector256{T}"/>: 16 columns per step.</summary>
internal unsafe struct Simd256 : ISimd<Vector256<float>>
{
    public static int Width => 8;
    public static Vector256<float> Zero => Vector256<float>.Zero;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Load(float* p) => Vector256.Load(p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(Vector256<float> v, float* p) => v.Store(p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Broadcast(float* p) => Vector256.Create(*p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Add(Vector256<float> a, Vector256<float> b) => a + b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Fma(Vector256<float> a, Vector256<float> b, Vector256<float> c) =>
        Vector256.FusedMultiplyAdd(a, b, c);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Sum(Vector256<float> v) => Vector128.Sum(v.GetLower() + v.GetUpper());

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Bf16(byte* p, out Vector256<float> even, out Vector256<float> odd)
    {
        var u = Vector256.Load((uint*)p);
        even = (u << 16).AsSingle();
        odd = (u & Vector256.Create(0xFFFF0000u)).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void F16(byte* p, out Vector256<float> even, out Vector256<float> odd)
    {
        var u = Vector256.Load((uint*)p);
        even = HalfBits.Widen((u << 13) & Vector256.Create(HalfBits.MagMask), (u << 16) & Vector256.Create(0x80000000u));
        odd = HalfBits.Widen((u >> 3) & Vector256.Create(HalfBits.MagMask), u & Vector256.Create(0x80000000u));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void F32(byte* p, out Vector256<float> lo, out Vector256<float> hi)
    {
        lo = Vector256.Load((float*)p);
        hi = Vector256.Load((float*)p + 8);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Deinterleave(float* src, float* dst)
    {
        for (int k = 0; k < 8; k++) { dst[k] = src[2 * k]; dst[8 + k] = src[2 * k + 1]; }
    }
}
