namespace Daop.Kernels.Cpu.Gemm;

/// <summary>
/// An expert's gate and up projections for a large batch in outer-product form (<see cref="OuterGemm{TF, TS, TV}"/>),
/// one parallel region per pass of <see cref="OuterGemm{TF, TS, TV}.TokenBlock"/> tokens: x is packed once for both,
/// and each chunk computes its rows of gate and up and applies SwiGLU to them.
/// </summary>
internal static unsafe class OuterGateUp<TF, TS, TV>
    where TF : struct, IPanelFormat where TS : struct, ISimd<TV> where TV : struct
{
    /// <summary>g ← SiLU(x·Gateᵀ) ⊙ (x·Upᵀ); u ← x·Upᵀ. Both [tokens, inter].</summary>
    public static void Run(in WeightMatrix gate, in WeightMatrix up, float* x, float* g, float* u, int tokens)
    {
        int inter = gate.Rows;
        int block = OuterGemm<TF, TS, TV>.TokenBlock;
        using var packed = ThreadScratch.Rent(OuterGemm<TF, TS, TV>.PackedFloats(Math.Min(tokens, block), gate.Cols));
        for (int t0 = 0; t0 < tokens; t0 += block)
        {
            int n = Math.Min(block, tokens - t0);
            float* xb = x + (nint)t0 * gate.Cols;
            nint yo = (nint)t0 * inter;
            var outer = new Job
            {
                Gate = OuterGemm<TF, TS, TV>.Args(gate, xb, packed.Pointer, g + yo, inter, n),
                Up = OuterGemm<TF, TS, TV>.Args(up, xb, packed.Pointer, u + yo, inter, n, packed: true),
            };
            CpuWorkers.For(inter, OuterGemm<TF, TS, TV>.ChunkRows(inter), outer);
        }
    }

    struct Job : IParallelJob
    {
        public OuterArgs Gate, Up;

        public readonly void Execute(int start, int end)
        {
            OuterGemm<TF, TS, TV>.Rows(Gate, start, end);
            OuterGemm<TF, TS, TV>.Rows(Up, start, end);
            SwiGlu.Columns(Gate.Y, Up.Y, Gate.YStride, Gate.Tokens, start, end);
        }
    }
}
