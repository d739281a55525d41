using Daop.Engine.Device;
using Daop.Engine.Load;
using Daop.Engine.Load.Config;
using Daop.Engine.Model.Families;

namespace Daop.Engine.Model.Layers;

/// <summary>
/// Grouped-query attention (<see cref="AttentionSpec.Gqa"/>; transformers' MixtralAttention and its kin):
/// q, k, v = xn·Wqᵀ, xn·Wkᵀ, xn·Wvᵀ (+ biases); optional clip and q/k norm; RoPE; causal GQA; o_proj.
/// Shapes: T tokens, H hidden, NH heads, NKV kv heads, D head dim.
/// </summary>
public sealed class GqaAttention(AttentionSpec.Gqa spec) : AttentionLayer
{
    /// <inheritdoc />
    public override AttentionSpec.Gqa Spec { get; } = spec;
    /// <summary>Query projection [NH·D, H].</summary>
    public required LinearWeights Q { get; init; }
    /// <summary>Key projection [NKV·D, H].</summary>
    public required LinearWeights K { get; init; }
    /// <summary>Value projection [NKV·D, H].</summary>
    public required LinearWeights V { get; init; }
    /// <summary>Output projection [H, NH·D].</summary>
    public required LinearWeights O { get; init; }
    /// <summary>q norm ([D] per head or [NH·D] whole), if the spec has one.</summary>
    public NormWeights? QNorm { get; init; }
    /// <summary>k norm ([D] or [NKV·D]), if the spec has one.</summary>
    public NormWeights? KNorm { get; init; }

    internal static GqaAttention Load(AttentionSpec.Gqa spec, ITensorSource st, GqaNames n, int layer, int hidden)
    {
        string F(string pattern) => TensorNames.Format(pattern, layer);
        int q = spec.QueryWidth, kv = spec.KvWidth;
        var qk = spec.QkNorm;
        bool perHead = qk?.Scope == QkNormScope.PerHead;
        return new GqaAttention(spec)
        {
            Q = LinearWeights.Load(st, F(n.Q), q, hidden, spec.QkvBias),
            K = LinearWeights.Load(st, F(n.K), kv, hidden, spec.QkvBias),
            V = LinearWeights.Load(st, F(n.V), kv, hidden, spec.QkvBias),
            O = LinearWeights.Load(st, F(n.O), hidden, q, spec.OBias),
            QNorm = qk == null ? null : qk.Weightless ? Unit(qk.Norm, perHead ? spec.HeadDim : q) : NormWeights.Load(st, qk.Norm, F(n.QNorm), perHead ? spec.HeadDim : q),
            KNorm = qk == null ? null : qk.Weightless ? Unit(qk.Norm, perHead ? spec.HeadDim : kv) : NormWeights.Load(st, qk.Norm, F(n.KNorm), perHead ? spec.HeadDim : kv),
        };
    }

    // A weightless norm as a norm of unit weights (the devices' norm ops take a weight).
    static NormWeights Unit(NormSpec norm, int width) => new(norm.Kind, Enumerable.Repeat(1f, width).ToArray(), null, norm.Eps);

    /// <inheritdoc />
    public override void Visit(DenseMatrixVisitor matrix, Action<float[]> vector)
    {
        QNorm?.Visit(vector); KNorm?.Visit(vector);
        Q.Visit(matrix, vector); K.Visit(matrix, vector); V.Visit(matrix, vector); O.Visit(matrix, vector);
    }

    internal override void Forward(in LayerStep step, RopeTable rope, KvCache cache)
    {
        var (d, s, t) = (step.Device, step.S, step.Tokens);
        int nh = Spec.Heads, nkv = Spec.KvHeads, hd = Spec.HeadDim;
        d.Linear3(Q, K, V, s.Xn, s.Q, s.K, s.V, t);                             // q [T, NH·D], k and v [T, NKV·D]
        if (Spec.ClipQkv is { } clip)                                           // OLMoE: q.clamp_(-clip, clip), likewise k, v
        {
            d.Clamp(s.Q, t * nh * hd, clip);
            d.Clamp(s.K, t * nkv * hd, clip);
            d.Clamp(s.V, t * nkv * hd, clip);
        }
        if (QNorm != null)
        {
            bool perHead = Spec.QkNorm!.Scope == QkNormScope.PerHead;
            d.Norm(QNorm, s.Q, s.Q, perHead ? t * nh : t);
            d.Norm(KNorm!, s.K, s.K, perHead ? t * nkv : t);
        }
        // The attention kernels scale by 1/√D; another scale is folded into q (q·kᵀ is linear in q, RoPE too).
        if (Spec.SoftmaxScale is { } scale) d.Scale(s.Q, t * nh * hd, scale * MathF.Sqrt(hd));
        if (!Spec.SkipRope) d.Rope(rope, s.Q, nh, s.K, nkv, t, hd);            // each token at its position of the step
        if (Spec.Temperature is { } temp) ScaleTemperatures(d, s, temp, step);
        d.Attention(step.Layer, s.Q, s.K, s.V, s.Ctx, t, nh, nkv, hd, Spec.SlidingWindow, chunk: Spec.Chunk ?? 0); // ctx [T, NH·D]
        d.Linear(O, s.Ctx, s.Out, t);                                           // out [T, H]
    }

    // q rows *= the temperature of their positions (Llama-4), sequence by sequence in a batched step.
    void ScaleTemperatures(IDevice d, RunState s, QueryTemperature temp, in LayerStep step)
    {
        int width = Spec.Heads * Spec.HeadDim;
        if (step.Batch is not { } b) { d.ScaleRows(s.Q, Temperatures(temp, step.StartPos, step.Tokens), width); return; }
        int row = 0;
        foreach (var g in b.Segments)
        {
            d.ScaleRows(s.Q, Temperatures(temp, g.StartPos, g.Tokens), width, row);
            row += g.Tokens;
        }
    }

    // The temperature of positions startPos .. startPos + n − 1, in a buffer reused per call (the device copies it).
    ReadOnlySpan<float> Temperatures(QueryTemperature temp, int startPos, int n)
    {
        if (_temperatures.Length < n) _temperatures = new float[Math.Max(n, 64)];
        for (int i = 0; i < n; i++) _temperatures[i] = temp.At(startPos + i);
        return _temperatures.AsSpan(0, n);
    }

    float[] _temperatures = [];
}
