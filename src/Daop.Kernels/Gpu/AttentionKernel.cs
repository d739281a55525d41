using ILGPU;

namespace Daop.Kernels.Gpu;

/// <summary>Scalar arguments of <see cref="AttentionKernel.Causal"/>.</summary>
public struct AttnArgs
{
    /// <summary>Query tokens T of the step (all sequences' rows; their slots and positions are in the token table).</summary>
    public int Tokens;
    /// <summary>Positions per cache slot: slot s holds positions at rows s·Capacity .. of the pool.</summary>
    public int Capacity;
    /// <summary>The pool this launch serves: tokens of another pool (<see cref="StepTokens.Pool"/>) are skipped.</summary>
    public int Pool;
    /// <summary>Query heads NH.</summary>
    public int Heads;
    /// <summary>Key/value heads NKV (NH is a multiple).</summary>
    public int KvHeads;
    /// <summary>Head width D (≤ <see cref="AttentionKernel.MaxHeadDim"/>).</summary>
    public int HeadDim;
    /// <summary>Sliding window, or 0 for full causal attention.</summary>
    public int Window;
    /// <summary>Aligned chunk length C (a query at p sees keys from p − p mod C), or 0 for none.</summary>
    public int Chunk;
    /// <summary>Threads per (token, head) team: 1 or the warp size.</summary>
    public int Lanes;
    /// <summary>Score scale, 1/√D.</summary>
    public float Scale;
    /// <summary>1 when the sinks view holds a logit per query head that joins each softmax denominator (GPT-OSS), else 0.</summary>
    public int Sinks;
}

/// <summary>
/// Causal grouped-query attention with the K/V append fused in. One group per (token, query head); its
/// <c>Group.DimX / Lanes</c> teams (1 lane, or a whole warp, each) take the key positions in turn, one key per team
/// step with the team's lanes over the head dims (Float4s when D % 4 == 0: for D = 128 and 32 lanes one load of the
/// key row and one of the value row per lane and key), and run an online softmax each, accumulating V into their own
/// shared-memory slot; the group then merges the partial (max, sum, acc) states. One launch serves every sequence of a
/// step: each token's cache slot, position and segment come from the <see cref="StepTokens"/> table in device memory
/// (nothing depends on a position passed as an argument, so a captured graph replays unchanged). Keys before the
/// token's segment come from its slot of the pool; keys of the segment (this call's tokens of that sequence) are read
/// straight from k/v, and the group of the first query head of each KV group writes them to the slot (nothing in the
/// launch reads those rows).
/// </summary>
public static class AttentionKernel
{
    /// <summary>Largest supported head width.</summary>
    public const int MaxHeadDim = 256;
    /// <summary>Most teams one group may hold (shared accumulators are MaxTeams × MaxHeadDim floats).</summary>
    public const int MaxTeams = 8;

    /// <summary>
    /// o [T, NH·D] = softmax(q·Kᵀ·scale) · V over positions max(0, pos−window+1, pos − pos mod chunk) .. pos of each
    /// token's sequence; appends k, v [T, NKV·D] to kc, vc [slots·capacity, NKV·D] at (slot, pos). at [T, <see cref="StepTokens.Fields"/>]
    /// holds each token's slot, position, segment and pool. q4, k4, v4, kc4, vc4 are the same q, k, v, kc, vc viewed as
    /// <see cref="Float4"/> (used when D % 4 == 0). With <see cref="AttnArgs.Sinks"/>, head h's denominator also holds exp(sinks[h]).
    /// </summary>
    public static void Causal(ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, ArrayView<float> kc,
        ArrayView<float> vc, ArrayView<float> o, ArrayView<Float4> q4, ArrayView<Float4> k4, ArrayView<Float4> v4,
        ArrayView<Float4> kc4, ArrayView<Float4> vc4, ArrayView<float> sinks, ArrayView<int> at, AttnArgs a)
    {
        var sh = SharedMemory.Allocate<float>(MaxTeams * MaxHeadDim + 2 * MaxTeams);
        const int statBase = MaxTeams * MaxHeadDim;
        int lanes = a.Lanes, tid = Group.IdxX, gsize = Group.DimX, teams = gsize / lanes;
        int team = tid / lanes, lane = tid - team * lanes;
        int accBase = team * MaxHeadDim;
        int d = a.HeadDim, group = a.Heads / a.KvHeads, kvDim = a.KvHeads * d;
        bool vec = (d & 3) == 0;
        int items = a.Tokens * a.Heads;
        for (int item = Grid.IdxX; item < items; item += Grid.DimX) // one item per group: uniform within it
        {
            int t = item / a.Heads, h = item - t * a.Heads, row = t * StepTokens.Fields;
            if (at[row + StepTokens.Pool] != a.Pool) continue;
            int seg = at[row + StepTokens.Segment];                 // the row of the sequence's first token in this step
            int kvh = h / group, pos = at[row + StepTokens.Position], segPos = at[seg * StepTokens.Fields + StepTokens.Position];
            long slotBase = (long)at[row + StepTokens.Slot] * a.Capacity * kvDim;
            int first = a.Window > 0 && pos - a.Window + 1 > 0 ? pos - a.Window + 1 : 0;
            if (a.Chunk > 0 && pos - pos % a.Chunk > first) first = pos - pos % a.Chunk;
            long qo = (long)item * d, ko = (long)kvh * d;

            if (h % group == 0)
                for (int i = tid; i < d; i += gsize)
                {
                    long src = (long)t * kvDim + ko + i, dst = slotBase + (long)pos * kvDim + ko + i;
                    kc[dst] = k[src];
                    vc[dst] = v[src];
                }
            // A lane owns the accumulator elements of its Float4s (or floats): it zeroes, updates and reads only those.
            if (vec)
                for (int i = lane; i < d >> 2; i += lanes)
                    for (int c = 0; c < 4; c++) sh[accBase + 4 * i + c] = 0;
            else
                for (int i = lane; i < d; i += lanes) sh[accBase + i] = 0;

            float m = float.NegativeInfinity, l = 0;
            for (int j = first + team; j <= pos; j += teams)        // trip count uniform within a team
            {
                bool cached = j < segPos;
                long kr = cached ? slotBase + (long)j * kvDim + ko : (long)(seg + j - segPos) * kvDim + ko;
                float dot = 0;
                if (vec)
                    for (int i = lane; i < d >> 2; i += lanes)
                    {
                        Float4 x = q4[(qo >> 2) + i], y = cached ? kc4[(kr >> 2) + i] : k4[(kr >> 2) + i];
                        dot += x.X * y.X + x.Y * y.Y + x.Z * y.Z + x.W * y.W;
                    }
                else
                    for (int i = lane; i < d; i += lanes) dot += q[qo + i] * (cached ? kc[kr + i] : k[kr + i]);
                float sc = GpuMath.TeamSum(dot, lanes) * a.Scale;
                float mNew = MathF.Max(m, sc);
                float corr = GpuMath.Exp(m - mNew), p = GpuMath.Exp(sc - mNew);
                l = l * corr + p;
                if (vec)
                    for (int i = lane; i < d >> 2; i += lanes)
                    {
                        Float4 y = cached ? vc4[(kr >> 2) + i] : v4[(kr >> 2) + i];
                        int b = accBase + 4 * i;
                        sh[b] = sh[b] * corr + p * y.X;
                        sh[b + 1] = sh[b + 1] * corr + p * y.Y;
                        sh[b + 2] = sh[b + 2] * corr + p * y.Z;
                        sh[b + 3] = sh[b + 3] * corr + p * y.W;
                    }
                else
                    for (int i = lane; i < d; i += lanes) sh[accBase + i] = sh[accBase + i] * corr + p * (cached ? vc[kr + i] : v[kr + i]);
                m = mNew;
            }
            if (teams == 1)
            {
                // A sink logit s joins the denominator only: rescale to max(m, s) and add e^(s − max), so o = acc·e^(m − max) / that.
                float keep = 1f;
                if (a.Sinks != 0)
                {
                    float s = sinks[h], mAll = MathF.Max(m, s);
                    keep = GpuMath.Exp(m - mAll);
                    l = l * keep + GpuMath.Exp(s - mAll);
                }
                float inv = keep / l;
                if (vec)
                    for (int i = lane; i < d >> 2; i += lanes)
                        for (int c = 0; c < 4; c++) o[qo + 4 * i + c] = sh[accBase + 4 * i + c] * inv;
                else
                    for (int i = lane; i < d; i += lanes) o[qo + i] = sh[accBase + i] * inv;
            }
            else
            {
                if (lane == 0) { sh[statBase + 2 * team] = m; sh[statBase + 2 * team + 1] = l; }
                Group.Barrier();
                float mMax = a.Sinks != 0 ? sinks[h] : float.NegativeInfinity;   // the sink takes part in the max and the sum
                for (int u = 0; u < teams; u++) mMax = MathF.Max(mMax, sh[statBase + 2 * u]);
                float sum = a.Sinks != 0 ? GpuMath.Exp(sinks[h] - mMax) : 0;
                for (int u = 0; u < teams; u++) sum += sh[statBase + 2 * u + 1] * Weight(sh[statBase + 2 * u], mMax);
                float inv = 1f / sum;
                for (int i = tid; i < d; i += gsize)
                {
                    float acc = 0;
                    for (int u = 0; u < teams; u++) acc += sh[u * MaxHeadDim + i] * Weight(sh[statBase + 2 * u], mMax);
                    o[qo + i] = acc * inv;
                }
                Group.Barrier(); // the next item reuses the slots
            }
        }
    }

    // A team's share in the merge: e^(m − mMax), and 0 for a team that saw no key (m = −∞).
    static float Weight(float m, float mMax) => m == float.NegativeInfinity ? 0f : GpuMath.Exp(m - mMax);
}

/// <summary>
/// The step's token table in device memory, [T, <see cref="Fields"/>] ints: per query token its cache slot, position,
/// the row of its sequence's first token in the step (its segment) and the pool its slot belongs to. Written once per
/// step on the host (<see cref="WriteSegment"/>) and read by RoPE and attention of every layer.
/// </summary>
public static class StepTokens
{
    /// <summary>Ints per token.</summary>
    public const int Fields = 4;
    /// <summary>Field: the slot of the token's sequence in its pool.</summary>
    public const int Slot = 0;
    /// <summary>Field: the token's position.</summary>
    public const int Position = 1;
    /// <summary>Field: the step row of the first token of the token's sequence.</summary>
    public const int Segment = 2;
    /// <summary>Field: which of the step's pools holds the slot (attention launches once per pool).</summary>
    public const int Pool = 3;

    /// <summary>Writes rows firstRow .. firstRow+tokens−1 of <paramref name="table"/>: one sequence's tokens at positions startPos...</summary>
    public static void WriteSegment(Span<int> table, int firstRow, int tokens, int startPos, int slot, int pool = 0)
    {
        for (int t = 0; t < tokens; t++)
        {
            var r = table.Slice((firstRow + t) * Fields, Fields);
            r[Slot] = slot;
            r[Position] = startPos + t;
            r[Segment] = firstRow;
            r[Pool] = pool;
        }
    }
}
