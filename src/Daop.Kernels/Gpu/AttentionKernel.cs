using ILGPU;

namespace Daop.Kernels.Gpu;

/// <summary>Scalar arguments of <see cref="AttentionKernel.Causal"/>.</summary>
public struct AttnArgs
{
    /// <summary>Query tokens T (positions StartPos .. StartPos+T−1).</summary>
    public int Tokens;
    /// <summary>Position of the first query.</summary>
    public int StartPos;
    /// <summary>Query heads NH.</summary>
    public int Heads;
    /// <summary>Key/value heads NKV (NH is a multiple).</summary>
    public int KvHeads;
    /// <summary>Head width D (≤ <see cref="AttentionKernel.MaxHeadDim"/>).</summary>
    public int HeadDim;
    /// <summary>Sliding window, or 0 for full causal attention.</summary>
    public int Window;
    /// <summary>Threads per (token, head) team: 1 or the warp size.</summary>
    public int Lanes;
    /// <summary>Score scale, 1/√D.</summary>
    public float Scale;
}

/// <summary>
/// Causal grouped-query attention with the K/V append fused in. One group per (token, query head); its
/// <c>Group.DimX / Lanes</c> teams (1 lane, or a whole warp, each) split the key positions tile by tile
/// (<c>Lanes</c> positions per tile, one per lane) and run an online softmax each, accumulating V rows with lanes
/// over head dims into their own shared-memory slot; the group then merges the partial (max, sum, acc) states.
/// Keys before StartPos come from the cache; keys of this call's tokens are read straight from k/v, and the group
/// of the first query head of each KV group writes them to the cache (nothing in the launch reads those rows).
/// </summary>
public static class AttentionKernel
{
    /// <summary>Largest supported head width.</summary>
    public const int MaxHeadDim = 256;
    /// <summary>Most teams one group may hold (shared accumulators are MaxTeams × MaxHeadDim floats).</summary>
    public const int MaxTeams = 8;

    static float Dot(ArrayView<float> q, ArrayView<Float4> q4, long qo, ArrayView<float> keys, ArrayView<Float4> keys4, long kr, int d)
    {
        float dot = 0;
        if ((d & 3) == 0)
        {
            long qi = qo >> 2, ki = kr >> 2;
            for (int i = 0; i < d >> 2; i++)
            {
                Float4 x = q4[qi + i], y = keys4[ki + i];
                dot += x.X * y.X + x.Y * y.Y + x.Z * y.Z + x.W * y.W;
            }
        }
        else
            for (int i = 0; i < d; i++) dot += q[qo + i] * keys[kr + i];
        return dot;
    }

    /// <summary>
    /// o [T, NH·D] = softmax(q·Kᵀ·scale) · V over positions max(0, pos−window+1) .. pos; appends k, v [T, NKV·D] to
    /// kc, vc [capacity, NKV·D]. q4, k4, kc4 are the same q, k, kc viewed as <see cref="Float4"/> (used when D % 4 == 0).
    /// </summary>
    public static void Causal(ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, ArrayView<float> kc,
        ArrayView<float> vc, ArrayView<float> o, ArrayView<Float4> q4, ArrayView<Float4> k4, ArrayView<Float4> kc4, AttnArgs a)
    {
        var sh = SharedMemory.Allocate<float>(MaxTeams * MaxHeadDim + 2 * MaxTeams);
        const int statBase = MaxTeams * MaxHeadDim;
        int lanes = a.Lanes, tid = Group.IdxX, gsize = Group.DimX, teams = gsize / lanes;
        int team = tid / lanes, lane = tid - team * lanes;
        int accBase = team * MaxHeadDim;
        int warpBase = Warp.LaneIdx - lane; // first warp lane of this team
        int d = a.HeadDim, group = a.Heads / a.KvHeads, kvDim = a.KvHeads * d;
        int items = a.Tokens * a.Heads;
        for (int item = Grid.IdxX; item < items; item += Grid.DimX) // one item per group: uniform within it
        {
            int t = item / a.Heads, h = item - t * a.Heads;
            int kvh = h / group, pos = a.StartPos + t;
            int first = a.Window > 0 && pos - a.Window + 1 > 0 ? pos - a.Window + 1 : 0;
            long qo = (long)item * d, ko = (long)kvh * d;

            if (h % group == 0)
                for (int i = tid; i < d; i += gsize)
                {
                    long src = (long)t * kvDim + ko + i, dst = (long)pos * kvDim + ko + i;
                    kc[dst] = k[src];
                    vc[dst] = v[src];
                }
            for (int i = lane; i < d; i += lanes) sh[accBase + i] = 0;

            float m = float.NegativeInfinity, l = 0;
            for (int j0 = first + team * lanes; j0 <= pos; j0 += teams * lanes) // trip count uniform within a team
            {
                int j = j0 + lane;
                float s = float.NegativeInfinity;
                if (j <= pos)
                {
                    float dot = j < a.StartPos
                        ? Dot(q, q4, qo, kc, kc4, (long)j * kvDim + ko, d)
                        : Dot(q, q4, qo, k, k4, (long)(j - a.StartPos) * kvDim + ko, d);
                    s = dot * a.Scale;
                }
                float mNew = MathF.Max(m, GpuMath.TeamMax(s, lanes));
                float corr = GpuMath.Exp(m - mNew);
                float p = j <= pos ? GpuMath.Exp(s - mNew) : 0f;
                l = l * corr + p;
                for (int i = lane; i < d; i += lanes) sh[accBase + i] *= corr;
                for (int kk = 0; kk < lanes; kk++)
                {
                    int jk = j0 + kk;
                    float pk = lanes == 1 ? p : Warp.Shuffle(p, warpBase + kk);
                    if (jk <= pos)
                    {
                        if (jk < a.StartPos)
                        {
                            long vr = (long)jk * kvDim + ko;
                            for (int i = lane; i < d; i += lanes) sh[accBase + i] += pk * vc[vr + i];
                        }
                        else
                        {
                            long vr = (long)(jk - a.StartPos) * kvDim + ko;
                            for (int i = lane; i < d; i += lanes) sh[accBase + i] += pk * v[vr + i];
                        }
                    }
                }
                m = mNew;
            }
            l = GpuMath.TeamSum(l, lanes);
            if (teams == 1)
            {
                float inv = 1f / l;
                for (int i = lane; i < d; i += lanes) o[qo + i] = sh[accBase + i] * inv;
            }
            else
            {
                if (lane == 0) { sh[statBase + 2 * team] = m; sh[statBase + 2 * team + 1] = l; }
                Group.Barrier();
                float mMax = float.NegativeInfinity;
                for (int u = 0; u < teams; u++) mMax = MathF.Max(mMax, sh[statBase + 2 * u]);
                float sum = 0;
                for (int u = 0; u < teams; u++) sum += sh[statBase + 2 * u + 1] * GpuMath.Exp(sh[statBase + 2 * u] - mMax);
                float inv = 1f / sum;
                for (int i = tid; i < d; i += gsize)
                {
                    float acc = 0;
                    for (int u = 0; u < teams; u++) acc += sh[u * MaxHeadDim + i] * GpuMath.Exp(sh[statBase + 2 * u] - mMax);
                    o[qo + i] = acc * inv;
                }
                Group.Barrier(); // the next item reuses the slots
            }
        }
    }
}
