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
/// Mixtral/Qwen/OLMoE softmax-top-k (renormalised or not), Granite/GPT-OSS top-k-softmax or PhiMoE sparsemixer.
/// </summary>
public static class Router
{
    /// <summary>Routes one token. <paramref name="probs"/> is [E] scratch.</summary>
    public static void Route(RouterSpec spec, ReadOnlySpan<float> logits, Span<int> ids, Span<float> weights, Span<float> probs)
    {
        switch (spec)
        {
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
