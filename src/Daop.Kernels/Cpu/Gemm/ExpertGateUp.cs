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
            int block = OuterGemm<TF, TS, TV>.TokenBlock;
            using var packed = ThreadScratch.Rent(OuterGemm<TF, TS, TV>.PackedFloats(Math.Min(tokens, block), gate.Cols));
            for (int t0 = 0; t0 < tokens; t0 += block)
            {
                int n = Math.Min(block, tokens - t0);
                float* xb = x + (nint)t0 * gate.Cols;
                nint yo = (nint)t0 * inter;
                var outer = new OuterJob
                {
                    Gate = OuterGemm<TF, TS, TV>.Args(gate, xb, packed.Pointer, g + yo, inter, n),
                    Up = OuterGemm<TF, TS, TV>.Args(up, xb, packed.Pointer, u + yo, inter, n, packed: true),
                };
                CpuWorkers.For(inter, OuterGemm<TF, TS, TV>.ChunkRows(inter), outer);
            }
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

    static void Gated(float* g, float* u, nint stride, int tokens, int start, int end)
    {
        for (int t = 0; t < tokens; t++)
            SwiGlu.Forward(new Span<float>(g + t * stride + start, end - start),
                new ReadOnlySpan<float>(u + t * stride + start, end - start));
    }

    struct Job : IParallelJob
    {
        public GemmArgs Gate, Up;

        public readonly void Execute(int start, int end)
        {
            Gemm<TF, TS, TV>.Rows(Gate, start, end);
            Gemm<TF, TS, TV>.Rows(Up, start, end);
            Gated(Gate.Y, Up.Y, Gate.YStride, Gate.Tokens, start, end);
        }
    }

    struct OuterJob : IParallelJob
    {
        public OuterArgs Gate, Up;

        public readonly void Execute(int start, int end)
        {
            OuterGemm<TF, TS, TV>.Rows(Gate, start, end);
            OuterGemm<TF, TS, TV>.Rows(Up, start, end);
            Gated(Gate.Y, Up.Y, Gate.YStride, Gate.Tokens, start, end);
        }
    }
}
