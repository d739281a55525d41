using System.Runtime.CompilerServices;

namespace Daop.Kernels.Cpu.Gemm;

/// <summary>
/// <see cref="ISimd{TV}"/> over plain floats for machines without vector hardware: a step is one column pair,
/// so the even/odd permutation is the identity and activations need no preparation.
/// </summary>
internal unsafe struct SimdScalar : ISimd<float>
{
    public static int Width => 1;
    public static float Zero => 0f;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Load(float* p) => *p;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(float v, float* p) => *p = v;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Broadcast(float* p) => *p;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Add(float a, float b) => a + b;

    // No FMA here: without vector hardware a fused multiply-add may be a slow software routine.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Fma(float a, float b, float c) => a * b + c;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Sum(float v) => v;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Sum4(float a, float b, float c, float d, float* dst)
    {
        dst[0] = a; dst[1] = b; dst[2] = c; dst[3] = d;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Bf16(byte* p, out float even, out float odd)
    {
        even = Cpu.Bf16.ToFloat(((ushort*)p)[0]);
        odd = Cpu.Bf16.ToFloat(((ushort*)p)[1]);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void F16(byte* p, out float even, out float odd)
    {
        even = (float)((Half*)p)[0];
        odd = (float)((Half*)p)[1];
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void F32(byte* p, out float lo, out float hi)
    {
        lo = ((float*)p)[0];
        hi = ((float*)p)[1];
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Deinterleave(float* src, float* dst)
    {
        dst[0] = src[0];
        dst[1] = src[1];
    }
}
