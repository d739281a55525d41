using System.Runtime.Intrinsics;
using Daop.Kernels.Cpu.Amx;
using Daop.Kernels.Cpu.Gemm;
using Daop.Kernels.Cpu.Quant;

namespace Daop.Kernels.Cpu;

/// <summary>
/// One SwiGLU expert: y = W_down · (SiLU(W_gate·x) ⊙ (W_up·x)) for x [tokens, hidden] → y [tokens, hidden].
/// </summary>
public static unsafe class ExpertFfn
{
    /// <summary>Runs the expert. <paramref name="scratch"/> must hold 2·tokens·inter floats.</summary>
    /// <remarks>
    /// Two parallel regions on <see cref="CpuWorkers"/>: gate and up together (each chunk does its rows of both
    /// and applies SwiGLU), then down. No heap allocation once warm.
    /// </remarks>
    /// <param name="gate">[inter, hidden] (w1 / gate_proj).</param>
    /// <param name="up">[inter, hidden] (w3 / up_proj).</param>
    /// <param name="down">[hidden, inter] (w2 / down_proj).</param>
    /// <param name="x">[tokens, hidden] input.</param>
    /// <param name="y">[tokens, hidden] output (overwritten).</param>
    /// <param name="tokens">Rows of x.</param>
    /// <param name="scratch">[2, tokens, inter] workspace.</param>
    public static void Forward(in WeightMatrix gate, in WeightMatrix up, in WeightMatrix down,
        ReadOnlySpan<float> x, Span<float> y, int tokens, Span<float> scratch)
    {
        Check(gate, up, down, x, y, tokens, scratch);
        if (tokens <= 0) return;
        int inter = gate.Rows;
        var g = scratch.Slice(0, tokens * inter);              // [tokens, inter]
        var u = scratch.Slice(tokens * inter, tokens * inter); // [tokens, inter]
        if (gate.Type != up.Type)
        {
            MatMul.Forward(gate, x, g, tokens);
            MatMul.Forward(up, x, u, tokens);
            SwiGlu.Forward(g, u);
        }
        else
        {
            fixed (float* px = x, pg = g, pu = u)
            {
                var op = new GateUpOp { Gate = gate, Up = up, X = px, G = pg, U = pu, Tokens = tokens };
                FormatDispatch.Run(gate.Type, ref op);
            }
        }
        MatMul.Forward(down, g, y, tokens);
    }

    struct GateUpOp : IFormatOp
    {
        public WeightMatrix Gate, Up;
        public float* X, G, U;
        public int Tokens;

        public readonly void Invoke<TF>() where TF : struct, IWeightFormat
        {
            if (typeof(TF) == typeof(Bf16Format) && AmxBf16Gemm.Use(Gate, Up, Tokens)) AmxBf16Gemm.GateUp(Gate, Up, X, G, U, Tokens);
            else if (typeof(TF) == typeof(Bf16Format) && Avx512Bf16Gemm.Use(Gate, Up, Tokens)) Avx512Bf16Gemm.GateUp(Gate, Up, X, G, U, Tokens);
            else if (Vector512.IsHardwareAccelerated) ExpertGateUp<TF, Simd512, Vector512<float>>.Run(Gate, Up, X, G, U, Tokens);
            else if (Vector256.IsHardwareAccelerated) ExpertGateUp<TF, Simd256, Vector256<float>>.Run(Gate, Up, X, G, U, Tokens);
            else ExpertGateUp<TF, SimdScalar, float>.Run(Gate, Up, X, G, U, Tokens);
        }

        public readonly void InvokeBlock<TB>() where TB : struct, IBlockFormat => QuantMatMul.GateUp<TB>(Gate, Up, X, G, U, Tokens);

        public readonly void InvokeKQuant<TK>() where TK : struct, IKQuantFormat => QuantMatMul.GateUpK<TK>(Gate, Up, X, G, U, Tokens);
    }

    /// <summary>Scalar twin built only from scalar twins.</summary>
    public static void Scalar(in WeightMatrix gate, in WeightMatrix up, in WeightMatrix down,
        ReadOnlySpan<float> x, Span<float> y, int tokens, Span<float> scratch)
    {
        int inter = gate.Rows;
        var g = scratch.Slice(0, tokens * inter);
        var u = scratch.Slice(tokens * inter, tokens * inter);
        MatMul.Scalar(gate, x, g, tokens);
        MatMul.Scalar(up, x, u, tokens);
        SwiGlu.Scalar(g, u);
        MatMul.Scalar(down, g, y, tokens);
    }

    static void Check(in WeightMatrix gate, in WeightMatrix up, in WeightMatrix down,
        ReadOnlySpan<float> x, Span<float> y, int tokens, Span<float> scratch)
    {
        if (up.Rows != gate.Rows || up.Cols != gate.Cols)
            throw new ArgumentException($"up is {up.Rows}x{up.Cols}, gate is {gate.Rows}x{gate.Cols}");
        if (down.Cols != gate.Rows)
            throw new ArgumentException($"down has {down.Cols} columns, expected inter = {gate.Rows}");
        if (x.Length < (long)tokens * gate.Cols) throw new ArgumentException($"x holds {x.Length} floats, need {tokens}x{gate.Cols}");
        if (y.Length < (long)tokens * down.Rows) throw new ArgumentException($"y holds {y.Length} floats, need {tokens}x{down.Rows}");
        if (scratch.Length < 2L * tokens * gate.Rows)
            throw new ArgumentException($"scratch holds {scratch.Length} floats, need 2x{tokens}x{gate.Rows}");
    }
}
