using Daop.Kernels.Cpu.Gemm;

namespace Daop.Kernels.Cpu.Quant;

/// <summary>
/// An expert's gate and up projections for block weights in one parallel region: x is quantized once for both, and
/// each chunk computes its rows of gate and up with the int8 tiles and applies SwiGLU to them.
/// </summary>
internal static unsafe class QuantGateUp<TB> where TB : struct, IBlockFormat
{
    /// <summary>g ← SiLU(x·Gateᵀ) ⊙ (x·Upᵀ); u ← x·Upᵀ. Both [tokens, inter].</summary>
    public static void Run(in WeightMatrix gate, in WeightMatrix up, float* x, float* g, float* u, int tokens)
    {
        int inter = gate.Rows;
        using var lease = ThreadScratch.Rent(QuantizedActivations.Floats(tokens, gate.Cols));
        var qx = QuantizedActivations.Quantize<TB>(x, gate.Cols, tokens, gate.Cols, lease.Pointer);
        var job = new Job
        {
            Gate = QuantGemm<TB>.Args(gate, qx, g, inter, tokens),
            Up = QuantGemm<TB>.Args(up, qx, u, inter, tokens),
        };
        CpuWorkers.For(inter, RowChunks.Rows(inter, 2 * gate.RowBytes, tokens), job);
    }

    struct Job : IParallelJob
    {
        public QuantArgs Gate, Up;

        public readonly void Execute(int start, int end)
        {
            QuantGemm<TB>.Rows(Gate, start, end);
            QuantGemm<TB>.Rows(Up, start, end);
            SwiGlu.Columns(Gate.Y, Up.Y, Gate.YStride, Gate.Tokens, start, end);
        }
    }
}
