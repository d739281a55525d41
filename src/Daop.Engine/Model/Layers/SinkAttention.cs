using Daop.Engine.Device;
using Daop.Engine.Load;
using Daop.Engine.Load.Config;
using Daop.Engine.Model.Families;

namespace Daop.Engine.Model.Layers;

/// <summary>
/// Grouped-query attention with attention sinks (<see cref="AttentionSpec.SinkGqa"/>; transformers' GptOssAttention):
/// q, k, v = xn·Wqᵀ + bq, xn·Wkᵀ + bk, xn·Wvᵀ + bv; RoPE; causal GQA whose softmax denominators also hold exp(sink_h);
/// o_proj + bo. Shapes: T tokens, H hidden, NH heads, NKV kv heads, D head dim.
/// </summary>
public sealed class SinkAttention(AttentionSpec.SinkGqa spec) : AttentionLayer
{
    /// <inheritdoc />
    public override AttentionSpec.SinkGqa Spec { get; } = spec;
    /// <summary>Query projection [NH·D, H].</summary>
    public required LinearWeights Q { get; init; }
    /// <summary>Key projection [NKV·D, H].</summary>
    public required LinearWeights K { get; init; }
    /// <summary>Value projection [NKV·D, H].</summary>
    public required LinearWeights V { get; init; }
    /// <summary>Output projection [H, NH·D].</summary>
    public required LinearWeights O { get; init; }
    /// <summary>Sink logits [NH], fp32.</summary>
    public required float[] Sinks { get; init; }

    internal static SinkAttention Load(AttentionSpec.SinkGqa spec, ITensorSource st, SinkGqaNames n, int layer, int hidden)
    {
        string F(string pattern) => TensorNames.Format(pattern, layer);
        int q = spec.QueryWidth, kv = spec.KvWidth;
        return new SinkAttention(spec)
        {
            Q = LinearWeights.Load(st, F(n.Q), q, hidden, spec.Bias),
            K = LinearWeights.Load(st, F(n.K), kv, hidden, spec.Bias),
            V = LinearWeights.Load(st, F(n.V), kv, hidden, spec.Bias),
            O = LinearWeights.Load(st, F(n.O), hidden, q, spec.Bias),
            Sinks = st.Vector(F(n.Sinks), spec.Heads),
        };
    }

    /// <inheritdoc />
    public override void Visit(DenseMatrixVisitor matrix, Action<float[]> vector)
    {
        vector(Sinks);
        Q.Visit(matrix, vector); K.Visit(matrix, vector); V.Visit(matrix, vector); O.Visit(matrix, vector);
    }

    internal override void Forward(in LayerStep step, RopeTable rope, KvCache cache)
    {
        var (d, s, t) = (step.Device, step.S, step.Tokens);
        int nh = Spec.Heads, nkv = Spec.KvHeads, hd = Spec.HeadDim;
        d.Linear3(Q, K, V, s.Xn, s.Q, s.K, s.V, t);                             // q [T, NH·D], k and v [T, NKV·D]
        d.Rope(rope, s.Q, nh, s.K, nkv, t, hd);                                // each token at its position of the step
        d.Attention(step.Layer, s.Q, s.K, s.V, s.Ctx, t, nh, nkv, hd, Spec.SlidingWindow, Sinks); // ctx [T, NH·D]
        d.Linear(O, s.Ctx, s.Out, t);                                           // out [T, H]
    }
}
