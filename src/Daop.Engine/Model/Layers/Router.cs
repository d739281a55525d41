using Daop.Engine.Load.Config;
using Daop.Kernels.Cpu;

namespace Daop.Engine.Model.Layers;

/// <summary>Per-token routing of one forward chunk: ids and weights [T, K].</summary>
public sealed class RoutingBatch(int maxTokens, int topK)
{
    /// <summary>K.</summary>
    public int TopK { get; } = topK;
    /// <summary>Tokens routed in this chunk.</summary>
    public int Tokens { get; set; }
    /// <summary>[T, K] expert ids.</summary>
    public int[] Experts { get; } = new int[maxTokens * topK];
    /// <summary>[T, K] combine weights.</summary>
    public float[] Weights { get; } = new float[maxTokens * topK];
}

/// <summary>
/// Turns router logits into (expert, weight) pairs as the family's <see cref="RouterSpec"/> says:
/// Mixtral/Qwen/OLMoE softmax-top-k (renormalised or not), Granite/GPT-OSS top-k-softmax, PhiMoE sparsemixer, or
/// DeepSeek's group-limited softmax (V2) and biased sigmoid (V3) top-k.
/// </summary>
public static class Router
{
    /// <summary>Routes one token. <paramref name="probs"/> is [E] scratch.</summary>
    public static void Route(RouterSpec spec, ReadOnlySpan<float> logits, Span<int> ids, Span<float> weights, Span<float> probs) =>
        Route(spec, logits, default, ids, weights, probs);

    /// <summary>
    /// Routes one token with the layer's selection bias [E] (<see cref="RouterSpec.HasScoreBias"/>; empty reads as zeros).
    /// <paramref name="probs"/> is [E] scratch.
    /// </summary>
    public static void Route(RouterSpec spec, ReadOnlySpan<float> logits, ReadOnlySpan<float> bias, Span<int> ids, Span<float> weights, Span<float> probs)
    {
        switch (spec)
        {
            case RouterSpec.GroupLimitedSoftmax g: GroupLimitedSoftmax(logits, g, ids, weights, probs); break;
            case RouterSpec.GroupLimitedSigmoid g: GroupLimitedSigmoid(logits, bias, g, ids, weights, probs); break;
            case RouterSpec.SoftmaxTopK s: SoftmaxTopK(logits, s.Renormalize, ids, weights, probs); break;
            case RouterSpec.Single: ids[0] = 0; weights[0] = 1; break;
            case RouterSpec.TopKSoftmax: TopKSoftmax(logits, ids, weights); break;
            case RouterSpec.SigmoidScalesInput: TopKSigmoid(logits, ids, weights); break;
            case RouterSpec.SparseMixer m: SparseMixer(logits, m.JitterEps, ids, weights, probs); break;
            default: throw new NotSupportedException(spec.ToString());
        }
    }

    /// <summary>p = softmax(logits); pick the K largest (lower id wins ties); optionally divide by their sum.</summary>
    public static void SoftmaxTopK(ReadOnlySpan<float> logits, bool renormalize, Span<int> ids, Span<float> weights, Span<float> probs)
    {
        var p = probs[..logits.Length];
        Softmax.Forward(logits, p);
        TopK(p, ids, weights);
        if (renormalize)
        {
            float sum = 0;
            for (int i = 0; i < ids.Length; i++) sum += weights[i];
            for (int i = 0; i < ids.Length; i++) weights[i] /= sum;
        }
    }

    /// <summary>The K largest logits (lower id wins ties), weighted by softmax over those K.</summary>
    public static void TopKSoftmax(ReadOnlySpan<float> logits, Span<int> ids, Span<float> weights)
    {
        TopK(logits, ids, weights);
        Softmax.Forward(weights, weights);
    }

    /// <summary>The K largest logits (lower id wins ties), each weighted by its sigmoid.</summary>
    public static void TopKSigmoid(ReadOnlySpan<float> logits, Span<int> ids, Span<float> weights)
    {
        TopK(logits, ids, weights);
        for (int i = 0; i < ids.Length; i++) weights[i] = 1 / (1 + MathF.Exp(-weights[i]));
    }

    /// <summary>
    /// DeepSeek-V2 (transformers DeepseekV2TopkRouter): p = softmax(logits); only the experts of the
    /// <see cref="RouterSpec.GroupLimitedSoftmax.TopGroups"/> groups with the largest max p compete; the K largest p,
    /// optionally renormalised, times the scale.
    /// </summary>
    public static void GroupLimitedSoftmax(ReadOnlySpan<float> logits, RouterSpec.GroupLimitedSoftmax spec, Span<int> ids, Span<float> weights, Span<float> probs)
    {
        int e = logits.Length;
        var p = probs[..e];
        Softmax.Forward(logits, p);
        if (spec.TopGroups < spec.Groups)
        {
            // As transformers: the other groups' p become 0 (every kept p is positive, so they are never picked).
            Span<bool> keep = stackalloc bool[spec.Groups];
            KeepGroups(p, spec.Groups, spec.TopGroups, sumOfTop2: false, keep);
            int size = e / spec.Groups;
            for (int i = 0; i < e; i++) if (!keep[i / size]) p[i] = 0;
        }
        TopK(p, ids, weights);
        Scale(weights, spec.Renormalize, 0, spec.Scale);
    }

    /// <summary>
    /// DeepSeek-V3 (transformers DeepseekV3TopkRouter): s = sigmoid(logits), choice c = s + bias; groups scored by the
    /// sum of their two largest c; the K largest c within the <see cref="RouterSpec.GroupLimitedSigmoid.TopGroups"/> best
    /// groups; weights the chosen s, optionally divided by their sum (+1e-20), times the scale.
    /// </summary>
    public static void GroupLimitedSigmoid(ReadOnlySpan<float> logits, ReadOnlySpan<float> bias, RouterSpec.GroupLimitedSigmoid spec,
        Span<int> ids, Span<float> weights, Span<float> probs)
    {
        int e = logits.Length;
        if (!bias.IsEmpty && bias.Length != e) throw new ArgumentException($"the selection bias has {bias.Length} entries, the logits {e}", nameof(bias));
        var s = probs[..e];
        Span<float> c = e <= 1024 ? stackalloc float[e] : new float[e];
        for (int i = 0; i < e; i++)
        {
            s[i] = 1f / (1f + MathF.Exp(-logits[i]));
            c[i] = bias.IsEmpty ? s[i] : s[i] + bias[i];
        }
        if (spec.TopGroups < spec.Groups)
        {
            Span<bool> keep = stackalloc bool[spec.Groups];
            KeepGroups(c, spec.Groups, spec.TopGroups, sumOfTop2: true, keep);
            int size = e / spec.Groups;
            for (int i = 0; i < e; i++) if (!keep[i / size]) c[i] = float.NegativeInfinity;
        }
        TopK(c, ids, weights);
        for (int i = 0; i < ids.Length; i++) weights[i] = s[ids[i]];
        Scale(weights, spec.Renormalize, 1e-20f, spec.Scale);
    }

    // keep[g] = whether group g (v[g·size ..], size = E / groups) is among the `top` groups of largest score: its max,
    // or the sum of its two largest values.
    static void KeepGroups(ReadOnlySpan<float> v, int groups, int top, bool sumOfTop2, Span<bool> keep)
    {
        int size = v.Length / groups;
        Span<float> gs = stackalloc float[groups];
        for (int g = 0; g < groups; g++) gs[g] = sumOfTop2 ? SumOfTop2(v.Slice(g * size, size)) : Max(v.Slice(g * size, size));
        Span<int> best = stackalloc int[top];
        Span<float> vals = stackalloc float[top];
        TopK(gs, best, vals);
        keep.Clear();
        foreach (int g in best) keep[g] = true;
    }

    static float Max(ReadOnlySpan<float> v)
    {
        float m = float.NegativeInfinity;
        foreach (float x in v) m = MathF.Max(m, x);
        return m;
    }

    static float SumOfTop2(ReadOnlySpan<float> v)
    {
        float a = float.NegativeInfinity, b = float.NegativeInfinity;
        foreach (float x in v)
            if (x > a) { b = a; a = x; }
            else if (x > b) b = x;
        return a + b;
    }

    // w = w / (Σw + eps) when renormalising, then · scale.
    static void Scale(Span<float> w, bool renormalize, float eps, float scale)
    {
        if (renormalize)
        {
            float sum = eps;
            foreach (float x in w) sum += x;
            for (int i = 0; i < w.Length; i++) w[i] /= sum;
        }
        for (int i = 0; i < w.Length; i++) w[i] *= scale;
    }

    /// <summary>The K largest values of <paramref name="v"/>, largest first.</summary>
    public static void TopK(ReadOnlySpan<float> v, Span<int> ids, Span<float> vals)
    {
        int k = ids.Length;
        for (int i = 0; i < k; i++) { ids[i] = -1; vals[i] = float.NegativeInfinity; }
        for (int e = 0; e < v.Length; e++)
        {
            float x = v[e];
            if (ids[k - 1] >= 0 && !(x > vals[k - 1])) continue;
            int j = k - 1;
            while (j > 0 && (ids[j - 1] < 0 || x > vals[j - 1])) { ids[j] = ids[j - 1]; vals[j] = vals[j - 1]; j--; }
            ids[j] = e; vals[j] = x;
        }
    }

    /// <summary>
    /// PhiMoE sparsemixer at inference (transformers modeling_phimoe.sparsemixer, training=False): pick
    /// the arg-max of the logits not yet chosen; its weight is its softmax over the remaining logits that lie
    /// within relative distance 2·eps of that max, where distance is (max − s) / max(|s|, max).
    /// </summary>
    public static void SparseMixer(ReadOnlySpan<float> scores, float eps, Span<int> ids, Span<float> weights, Span<float> masked)
    {
        int n = scores.Length;
        var remaining = masked[..n];
        scores.CopyTo(remaining);
        Span<float> buf = stackalloc float[n];
        for (int pick = 0; pick < ids.Length; pick++)
        {
            int best = 0;
            for (int e = 1; e < n; e++) if (remaining[e] > remaining[best]) best = e;
            float max = remaining[best];
            for (int e = 0; e < n; e++)
            {
                float factor = MathF.Max(MathF.Abs(scores[e]), max);
                buf[e] = (max - scores[e]) / factor > 2 * eps ? float.NegativeInfinity : remaining[e];
            }
            Softmax.Forward(buf, buf);
            ids[pick] = best;
            weights[pick] = buf[best];
            remaining[best] = float.NegativeInfinity;
        }
    }
}
