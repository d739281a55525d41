using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

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
    public static void Sum4(Vector256<float> a, Vector256<float> b, Vector256<float> c, Vector256<float> d, float* dst)
    {
        var a4 = a.GetLower() + a.GetUpper();
        var b4 = b.GetLower() + b.GetUpper();
        var c4 = c.GetLower() + c.GetUpper();
        var d4 = d.GetLower() + d.GetUpper();
        if (Sse.IsSupported)
        {
            // 4×4 transpose-and-add: [a0+a2, b0+b2, a1+a3, b1+b3] and the same for c, d, then fold the halves.
            var ab = Sse.UnpackLow(a4, b4) + Sse.UnpackHigh(a4, b4);
            var cd = Sse.UnpackLow(c4, d4) + Sse.UnpackHigh(c4, d4);
            (Sse.MoveLowToHigh(ab, cd) + Sse.MoveHighToLow(cd, ab)).Store(dst);
        }
        else
        {
            dst[0] = Vector128.Sum(a4); dst[1] = Vector128.Sum(b4);
            dst[2] = Vector128.Sum(c4); dst[3] = Vector128.Sum(d4);
        }
    }

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
