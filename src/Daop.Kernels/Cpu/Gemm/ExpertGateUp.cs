namespace Daop.Kernels.Cpu.Gemm;

/// <summary>
/// The first half of an expert in one parallel region: each chunk computes its rows of both gate and up
/// for every token and applies SwiGLU to them, so x is prepared once and no second region is needed.
/// </summary>
internal static unsafe class ExpertGateUp<TF, TS, TV>
    where TF : struct, IWeightFormat where TS : struct, ISimd<TV> where TV : struct
{
    /// <summary>g ← SiLU(x·Gateᵀ) ⊙ (x·Upᵀ); u ← x·Upᵀ. Both [tokens, inter].</summary>
    public static void Run(in WeightMatrix gate, in WeightMatrix up, float* x, float* g, float* u, int tokens)
    {
        int inter = gate.Rows;
        if (tokens >= Gemm<TF, TS, TV>.OuterMinTokens)
        {
            OuterGateUp<TF, TS, TV>.Run(gate, up, x, g, u, tokens);
            return;
        }
        using var lease = Gemm<TF, TS, TV>.NeedsPrep
            ? ThreadScratch.Rent((nint)tokens * Gemm<TF, TS, TV>.MainCols(gate.Cols)) : default;
        var job = new Job
        {
            Gate = Gemm<TF, TS, TV>.Args(gate, x, lease.Pointer, g, inter, tokens),
            Up = Gemm<TF, TS, TV>.Args(up, x, lease.Pointer, u, inter, tokens, prepared: true),
        };
        CpuWorkers.For(inter, Gemm<TF, TS, TV>.ChunkRows(inter, 2 * gate.RowBytes, tokens), job);
    }

    struct Job : IParallelJob
    {
        public GemmArgs Gate, Up;

        public readonly void Execute(int start, int end)
        {
            Gemm<TF, TS, TV>.Rows(Gate, start, end);
            Gemm<TF, TS, TV>.Rows(Up, start, end);
            SwiGlu.Columns(Gate.Y, Up.Y, Gate.YStride, Gate.Tokens, start, end);
        }
    }
}
