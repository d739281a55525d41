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
/// Causal grouped-query attention with the K/V append fused in: one team per (token, query head) runs an
/// online softmax over its key positions, <c>Lanes</c> positions per step (one per lane), and accumulates
/// V rows with lanes over head dims. Keys before StartPos come from the cache; keys of this call's tokens are
/// read straight from k/v, and the team of the first query head of each KV group writes them to the cache
/// (nothing in the launch reads those cache rows).
/// </summary>
public static class AttentionKernel
{
    /// <summary>Largest supported head width.</summary>
    public const int MaxHeadDim = 256;
    /// <summary>Most teams one group may hold (shared accumulators are MaxTeams × MaxHeadDim floats).</summary>
    public const int MaxTeams = 4;

    /// <summary>o [T, NH·D] = softmax(q·Kᵀ·scale) · V over positions max(0, pos−window+1) .. pos; appends k, v [T, NKV·D] to kc, vc [capacity, NKV·D].</summary>
    public static void Causal(ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, ArrayView<float> kc,
        ArrayView<float> vc, ArrayView<float> o, AttnArgs a)
    {
        var accAll = SharedMemory.Allocate<float>(MaxTeams * MaxHeadDim);
        int lanes = a.Lanes, gtid = Grid.GlobalIndex.X;
        int team = gtid / lanes, lane = gtid - team * lanes, teams = Grid.DimX * Group.DimX / lanes;
        int slotBase = (Group.IdxX / lanes) * MaxHeadDim;
        int warpBase = Warp.LaneIdx - lane; // first warp lane of this team
        int d = a.HeadDim, group = a.Heads / a.KvHeads, kvDim = a.KvHeads * d;
        int items = a.Tokens * a.Heads, iters = (items + teams - 1) / teams;
        for (int it = 0; it < iters; it++)
        {
            int item = it * teams + team;
            if (item >= items) break; // teams are 1 lane or a whole warp: the exit is warp-uniform
            int t = item / a.Heads, h = item - t * a.Heads;
            int kvh = h / group, pos = a.StartPos + t;
            int first = a.Window > 0 && pos - a.Window + 1 > 0 ? pos - a.Window + 1 : 0;
            long qo = (long)item * d, ko = (long)kvh * d;

            if (h % group == 0)
                for (int i = lane; i < d; i += lanes)
                {
                    long src = (long)t * kvDim + ko + i, dst = (long)pos * kvDim + ko + i;
                    kc[dst] = k[src];
                    vc[dst] = v[src];
                }
            for (int i = lane; i < d; i += lanes) accAll[slotBase + i] = 0;

            float m = float.NegativeInfinity, l = 0;
            for (int j0 = first; j0 <= pos; j0 += lanes)
            {
                int j = j0 + lane;
                float s = float.NegativeInfinity;
                if (j <= pos)
                {
                    float dot = 0;
                    if (j < a.StartPos)
                    {
                        long kr = (long)j * kvDim + ko;
                        for (int i = 0; i < d; i++) dot += q[qo + i] * kc[kr + i];
                    }
                    else
                    {
                        long kr = (long)(j - a.StartPos) * kvDim + ko;
                        for (int i = 0; i < d; i++) dot += q[qo + i] * k[kr + i];
                    }
                    s = dot * a.Scale;
                }
                float mNew = MathF.Max(m, GpuMath.TeamMax(s, lanes));
                float corr = GpuMath.Exp(m - mNew);
                float p = j <= pos ? GpuMath.Exp(s - mNew) : 0f;
                l = l * corr + p;
                for (int i = lane; i < d; i += lanes) accAll[slotBase + i] *= corr;
                for (int kk = 0; kk < lanes; kk++)
                {
                    int jk = j0 + kk;
                    float pk = lanes == 1 ? p : Warp.Shuffle(p, warpBase + kk);
                    if (jk <= pos)
                    {
                        long vr = jk < a.StartPos ? (long)jk * kvDim + ko : (long)(jk - a.StartPos) * kvDim + ko;
                        if (jk < a.StartPos)
                            for (int i = lane; i < d; i += lanes) accAll[slotBase + i] += pk * vc[vr + i];
                        else
                            for (int i = lane; i < d; i += lanes) accAll[slotBase + i] += pk * v[vr + i];
                    }
                }
                m = mNew;
            }
            float inv = 1f / GpuMath.TeamSum(l, lanes);
            for (int i = lane; i < d; i += lanes) o[qo + i] = accAll[slotBase + i] * inv;
        }
    }
}
