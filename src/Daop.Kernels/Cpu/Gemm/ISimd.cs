namespace Daop.Kernels.Cpu.Gemm;

/// <summary>
/// The vector operations the matmul microkernels are written against, implemented once per width
/// (<see cref="Simd512"/>, <see cref="Simd256"/>, <see cref="SimdScalar"/>). Kernels are generic over a struct
/// implementing this, so the JIT emits one fully inlined copy per width.
/// </summary>
/// <remarks>
/// Weights are consumed in steps of <c>2·Width</c> columns that yield two vectors. For 2-byte types these are
/// the even and odd columns of the step (a 16-bit shift or mask widens them in registers), so activations are
/// pre-permuted to match (see <c>Gemm.Prepare</c>).
/// </remarks>
internal unsafe interface ISimd<TV> where TV : struct
{
    /// <summary>Floats per vector.</summary>
    static abstract int Width { get; }
    static abstract TV Zero { get; }
    static abstract TV Load(float* p);
    static abstract void Store(TV v, float* p);
    /// <summary>*p in every lane (folds into the FMA as an embedded broadcast on AVX-512).</summary>
    static abstract TV Broadcast(float* p);
    static abstract TV Add(TV a, TV b);
    /// <summary>a·b + c.</summary>
    static abstract TV Fma(TV a, TV b, TV c);
    static abstract float Sum(TV v);
    /// <summary>Horizontal sums of four vectors into dst[0..4), sharing the shuffle work between them.</summary>
    static abstract void Sum4(TV a, TV b, TV c, TV d, float* dst);
    /// <summary>2·Width bf16 at <paramref name="p"/> → even and odd columns as fp32 (exact).</summary>
    static abstract void Bf16(byte* p, out TV even, out TV odd);
    /// <summary>2·Width f16 at <paramref name="p"/> → even and odd columns as fp32 (exact).</summary>
    static abstract void F16(byte* p, out TV even, out TV odd);
    /// <summary>2·Width fp32 at <paramref name="p"/> → first and second half.</summary>
    static abstract void F32(byte* p, out TV lo, out TV hi);
    /// <summary>2·Width floats: evens to dst[0, Width), odds to dst[Width, 2·Width).</summary>
    static abstract void Deinterleave(float* src, float* dst);
}
