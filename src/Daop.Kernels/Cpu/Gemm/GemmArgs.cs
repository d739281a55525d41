namespace Daop.Kernels.Cpu.Gemm;

/// <summary>One y = x·Wᵀ problem as the row-range driver <see cref="Gemm{TF, TS, TV}.Rows"/> sees it.</summary>
internal unsafe struct GemmArgs
{
    /// <summary>[rows, cols] weights; <see cref="WStride"/> bytes per row.</summary>
    public byte* W;
    public nint WStride;
    public int Cols;
    /// <summary>Columns handled by the vector kernels (a multiple of one step); the rest is a scalar tail.</summary>
    public int ColsMain;
    /// <summary>[tokens, ColsMain] activations in the kernels' column order; <see cref="XpStride"/> floats per token.</summary>
    public float* Xp;
    public nint XpStride;
    /// <summary>[tokens, cols] original activations, read for the tail columns.</summary>
    public float* X;
    public nint XStride;
    /// <summary>[tokens, rows] output; <see cref="YStride"/> floats per token.</summary>
    public float* Y;
    public nint YStride;
    public int Tokens;
}
