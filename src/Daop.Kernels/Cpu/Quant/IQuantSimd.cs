namespace Daop.Kernels.Cpu.Quant;

/// <summary>
/// The int8 block-dot step the quantized tiles (<see cref="QuantTiles{TB, TQ, TW, TV}"/>) are written against, once
/// per instruction set (<see cref="Quant512"/>, <see cref="Quant256"/>, <see cref="QuantScalar"/>). A step covers
/// <see cref="Blocks"/> blocks: unpack a row's weights once (<typeparamref name="TW"/>), then for each token add
/// scale_w · d_x · (w·q) per block into fp32 lanes (<typeparamref name="TV"/>).
/// </summary>
/// <remarks>
/// Activation pointers are a token's q plane at the step's first block; the aux and dx planes are <c>pd</c> and
/// 2·<c>pd</c> bytes on (see <see cref="QuantizedActivations"/>).
/// </remarks>
internal unsafe interface IQuantSimd<TW, TV> where TW : struct where TV : struct
{
    /// <summary>Blocks per step.</summary>
    static abstract int Blocks { get; }
    static abstract TV Zero { get; }
    /// <summary>The step's weights at <paramref name="p"/> (its first block), unpacked.</summary>
    static abstract TW Load<TB>(byte* p) where TB : struct, IBlockFormat;
    /// <summary><paramref name="acc"/> + the step's block dots of <paramref name="w"/> with the token at <paramref name="x"/>.</summary>
    static abstract TV Dot<TB>(in TW w, byte* x, nint pd, TV acc) where TB : struct, IBlockFormat;
    /// <summary>The same for a single block (the odd last block when <see cref="Blocks"/> is 2).</summary>
    static abstract TV DotOne<TB>(byte* p, byte* x, nint pd, TV acc) where TB : struct, IBlockFormat;
    static abstract float Sum(TV v);
    /// <summary>Horizontal sums of four accumulators into dst[0..4).</summary>
    static abstract void Sum4(TV a, TV b, TV c, TV d, float* dst);
}
