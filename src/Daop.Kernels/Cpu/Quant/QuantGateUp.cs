using Daop.Kernels.Cpu.Gemm;

namespace Daop.Kernels.Cpu.Quant;

/// <summary>
/// An expert's gate and up projections for block weights, one parallel region per pass of
/// <see cref="QuantGemm{TB}.TokenBlock"/> tokens: x is quantized once for both, and each chunk computes its rows of gate
/// and up with the int8 tiles and applies SwiGLU to them.
/// </summary>
internal static unsafe class QuantGateUp<TB> where TB : struct, IBlockFormat
{
    /// <summary>g ← SiLU(x·Gateᵀ) ⊙ (x·Upᵀ); u ← x·Upᵀ. Both [tokens, inter].</summary>
    public static void Run(in WeightMatrix gate, in WeightMatrix up, float* x, float* g, float* u, int tokens)
    {
        int inter = gate.Rows, block = QuantGemm<TB>.TokenBlock;
        using var lease = ThreadScratch.Rent(QuantizedActivations.Floats(Math.Min(tokens, block), gate.Cols));
        for (int t0 = 0; t0 < tokens; t0 += block)
        {
            int n = Math.Min(block, tokens - t0);
            var qx = QuantizedActivations.Quantize<TB>(x + (nint)t0 * gate.Cols, gate.Cols, n, gate.Cols, lease.Pointer);
            nint yo = (nint)t0 * inter;
            var job = new Job
            {
                Gate = QuantGemm<TB>.Args(gate, qx, g + yo, inter, n),
                Up = QuantGemm<TB>.Args(up, qx, u + yo, inter, n),
            };
            CpuWorkers.For(inter, RowChunks.Rows(inter, 2 * gate.RowBytes, n), job);
        }
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
