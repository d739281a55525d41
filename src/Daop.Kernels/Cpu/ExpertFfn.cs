namespace Daop.Kernels.Cpu;

/// <summary>
/// One SwiGLU expert: y = W_down · (SiLU(W_gate·x) ⊙ (W_up·x)) for x [tokens, hidden] → y [tokens, hidden].
/// </summary>
public static class ExpertFfn
{
    /// <summary>Runs the expert. <paramref name="scratch"/> must hold 2·tokens·inter floats.</summary>
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
        int inter = gate.Rows;
        var g = scratch.Slice(0, tokens * inter);            // [tokens, inter]
        var u = scratch.Slice(tokens * inter, tokens * inter); // [tokens, inter]
        MatMul.Forward(gate, x, g, tokens);
        MatMul.Forward(up, x, u, tokens);
        SwiGlu.Forward(g, u);
        MatMul.Forward(down, g, y, tokens);
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
}
