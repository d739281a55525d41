using System.Numerics.Tensors;

namespace Daop.Engine.Device.Cpu;

/// <summary>
/// Causal grouped-query attention over a fp32 KV cache: o = softmax(q·Kᵀ / √D) · V per head, with query
/// head h reading kv head h / (NH / NKV).
/// </summary>
static class CpuAttention
{
    [ThreadStatic] static float[]? t_scores;

    /// <param name="q">[T, NH·D] queries of positions startPos..startPos+T−1.</param>
    /// <param name="k">[capacity, NKV·D] keys, filled up to startPos+T.</param>
    /// <param name="v">[capacity, NKV·D] values.</param>
    /// <param name="o">[T, NH·D] output.</param>
    /// <param name="tokens">T.</param>
    /// <param name="startPos">Position of the first query.</param>
    /// <param name="heads">NH.</param>
    /// <param name="kvHeads">NKV.</param>
    /// <param name="d">D.</param>
    /// <param name="window">Sliding window, if any.</param>
    public static void Causal(float[] q, float[] k, float[] v, float[] o, int tokens, int startPos, int heads, int kvHeads, int d,
        int? window)
    {
        int group = heads / kvHeads, qDim = heads * d, kvDim = kvHeads * d;
        float scale = 1f / MathF.Sqrt(d);
        var scores = t_scores is { } s && s.Length >= startPos + tokens ? s : (t_scores = new float[Math.Max(startPos + tokens, 256)]);
        for (int t = 0; t < tokens; t++)
        {
            int pos = startPos + t;
            int first = window is { } w ? Math.Max(0, pos - w + 1) : 0;
            int n = pos - first + 1;
            for (int h = 0; h < heads; h++)
            {
                var qh = q.AsSpan(t * qDim + h * d, d);
                int kvOff = (h / group) * d;
                var sc = scores.AsSpan(0, n);
                for (int j = 0; j < n; j++)
                    sc[j] = TensorPrimitives.Dot(qh, k.AsSpan((first + j) * kvDim + kvOff, d)) * scale;
                TensorPrimitives.SoftMax(sc, sc);
                var oh = o.AsSpan(t * qDim + h * d, d);
                oh.Clear();
                for (int j = 0; j < n; j++)
                    TensorPrimitives.MultiplyAdd(v.AsSpan((first + j) * kvDim + kvOff, d), sc[j], oh, oh);
            }
        }
    }
}
