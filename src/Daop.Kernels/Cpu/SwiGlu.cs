using System.Numerics.Tensors;

namespace Daop.Kernels.Cpu;

/// <summary>h = SiLU(gate) · up, the SwiGLU gating between an expert's two projections.</summary>
public static class SwiGlu
{
    /// <summary>Writes SiLU(gate)·up into <paramref name="gate"/>.</summary>
    public static void Forward(Span<float> gate, ReadOnlySpan<float> up)
    {
        // silu(g) = g·sigmoid(g)
        var tmp = gate;
        for (int i = 0; i < gate.Length; i++)
        {
            float g = tmp[i];
            tmp[i] = g / (1f + MathF.Exp(-g)) * up[i];
        }
    }

    /// <summary>Scalar twin (double-precision sigmoid).</summary>
    public static void Scalar(Span<float> gate, ReadOnlySpan<float> up)
    {
        for (int i = 0; i < gate.Length; i++)
            gate[i] = (float)(gate[i] / (1.0 + Math.Exp(-gate[i])) * up[i]);
    }

    /// <summary>Vectorised SiLU without the multiply (kept for callers that need only the activation).</summary>
    public static void Silu(ReadOnlySpan<float> x, Span<float> y)
    {
        TensorPrimitives.Sigmoid(x, y);
        TensorPrimitives.Multiply(x, y, y);
    }
}
