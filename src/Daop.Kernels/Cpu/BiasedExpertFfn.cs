using System.Numerics.Tensors;

namespace Daop.Kernels.Cpu;

/// <summary>
/// One GPT-OSS expert: y = W_down·h + b_down with h = <see cref="ClampedSwiGlu"/>(W_gate·x + b_gate, W_up·x + b_up), for
/// x [tokens, hidden] → y [tokens, hidden]. The three products are <see cref="MatMul.Forward"/> in any stored format.
/// </summary>
public static class BiasedExpertFfn
{
    /// <summary>Runs the expert. <paramref name="scratch"/> must hold 2·tokens·inter floats. No heap allocation once warm.</summary>
    /// <param name="gate">[inter, hidden].</param>
    /// <param name="up">[inter, hidden].</param>
    /// <param name="down">[hidden, inter].</param>
    /// <param name="bias">The biases: gate and up [inter], down [hidden].</param>
    /// <param name="alpha">α of the gate's sigmoid.</param>
    /// <param name="limit">The clamp of gate (above) and up (both sides).</param>
    /// <param name="x">[tokens, hidden] input.</param>
    /// <param name="y">[tokens, hidden] output (overwritten).</param>
    /// <param name="tokens">Rows of x.</param>
    /// <param name="scratch">[2, tokens, inter] workspace.</param>
    public static void Forward(in WeightMatrix gate, in WeightMatrix up, in WeightMatrix down, in ExpertBiases bias, float alpha, float limit,
        ReadOnlySpan<float> x, Span<float> y, int tokens, Span<float> scratch)
    {
        Check(gate, up, down, bias, scratch, tokens);
        if (tokens <= 0) return;
        int inter = gate.Rows, hidden = down.Rows;
        var g = scratch[..(tokens * inter)];                      // [tokens, inter]
        var u = scratch.Slice(tokens * inter, tokens * inter);    // [tokens, inter]
        MatMul.Forward(gate, x, g, tokens);
        MatMul.Forward(up, x, u, tokens);
        for (int t = 0; t < tokens; t++)
        {
            var gt = g.Slice(t * inter, inter);
            TensorPrimitives.Add(gt, bias.Gate, gt);
            var ut = u.Slice(t * inter, inter);
            TensorPrimitives.Add(ut, bias.Up, ut);
        }
        ClampedSwiGlu.Forward(g, u, alpha, limit);
        MatMul.Forward(down, g, y, tokens);
        for (int t = 0; t < tokens; t++)
        {
            var yt = y.Slice(t * hidden, hidden);
            TensorPrimitives.Add(yt, bias.Down, yt);
        }
    }

    /// <summary>
    /// Scalar twin built only from scalar twins: for block formats the int8 path's (<see cref="QuantMatMul.Scalar"/>), which
    /// <see cref="MatMul.Forward"/> takes for them below its batch thresholds on CPUs without AMX.
    /// </summary>
    public static void Scalar(in WeightMatrix gate, in WeightMatrix up, in WeightMatrix down, in ExpertBiases bias, float alpha, float limit,
        ReadOnlySpan<float> x, Span<float> y, int tokens, Span<float> scratch)
    {
        int inter = gate.Rows, hidden = down.Rows;
        var g = scratch[..(tokens * inter)];
        var u = scratch.Slice(tokens * inter, tokens * inter);
        Product(gate, x, g, tokens);
        Product(up, x, u, tokens);
        for (int t = 0; t < tokens; t++)
            for (int i = 0; i < inter; i++) { g[t * inter + i] += bias.Gate[i]; u[t * inter + i] += bias.Up[i]; }
        ClampedSwiGlu.Scalar(g, u, alpha, limit);
        Product(down, g, y, tokens);
        for (int t = 0; t < tokens; t++)
            for (int i = 0; i < hidden; i++) y[t * hidden + i] += bias.Down[i];
    }

    static void Product(in WeightMatrix w, ReadOnlySpan<float> x, Span<float> y, int tokens)
    {
        if (w.Type.IsBlock()) QuantMatMul.Scalar(w, x, y, tokens);
        else MatMul.Scalar(w, x, y, tokens);
    }

    static void Check(in WeightMatrix gate, in WeightMatrix up, in WeightMatrix down, in ExpertBiases bias, Span<float> scratch, int tokens)
    {
        if (up.Rows != gate.Rows || up.Cols != gate.Cols) throw new ArgumentException($"up is {up.Rows}x{up.Cols}, gate is {gate.Rows}x{gate.Cols}");
        if (down.Cols != gate.Rows) throw new ArgumentException($"down has {down.Cols} columns, expected inter = {gate.Rows}");
        if (bias.Gate.Length != gate.Rows || bias.Up.Length != up.Rows || bias.Down.Length != down.Rows)
            throw new ArgumentException($"biases of {bias.Gate.Length}, {bias.Up.Length}, {bias.Down.Length} floats do not fit [{gate.Rows}], [{up.Rows}], [{down.Rows}]");
        if (scratch.Length < 2L * tokens * gate.Rows) throw new ArgumentException($"scratch holds {scratch.Length} floats, need 2x{tokens}x{gate.Rows}");
    }
}

/// <summary>An expert's fp32 biases: gate and up [inter], down [hidden].</summary>
public readonly record struct ExpertBiases(float[] Gate, float[] Up, float[] Down);
