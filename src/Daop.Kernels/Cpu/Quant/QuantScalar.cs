using System.Runtime.CompilerServices;

namespace Daop.Kernels.Cpu.Quant;

/// <summary>
/// <see cref="IQuantSimd{TW, TV}"/> in plain scalar code, one block per step: the fallback where AVX2 is missing,
/// computing exactly what <see cref="QuantMatMul.Scalar"/> defines.
/// </summary>
internal unsafe struct QuantScalar : IQuantSimd<nint, float>
{
    public static int Blocks => 1;
    public static float Zero => 0f;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static nint Load<TB>(byte* p) where TB : struct, IBlockFormat => (nint)p;

    public static float Dot<TB>(in nint w, byte* x, nint pd, float acc) where TB : struct, IBlockFormat
    {
        byte* block = (byte*)w;
        int dot = 0;
        for (int j = 0; j < 32; j++) dot += TB.Value(block, j) * ((sbyte*)x)[j];
        return acc + TB.Scale(block) * *(float*)(x + 2 * pd) * dot;
    }

    public static float DotOne<TB>(byte* p, byte* x, nint pd, float acc) where TB : struct, IBlockFormat => Dot<TB>((nint)p, x, pd, acc);

    public static float Sum(float v) => v;

    public static void Sum4(float a, float b, float c, float d, float* dst)
    {
        dst[0] = a; dst[1] = b; dst[2] = c; dst[3] = d;
    }
}
