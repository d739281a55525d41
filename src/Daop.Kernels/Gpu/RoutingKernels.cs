using ILGPU;

namespace Daop.Kernels.Gpu;

/// <summary>Scalar arguments of <see cref="RoutingKernels.SoftmaxTopK"/>.</summary>
public struct RouteArgs
{
    /// <summary>Tokens T (rows of logits).</summary>
    public int Tokens;
    /// <summary>Experts E (row length).</summary>
    public int Experts;
    /// <summary>Experts chosen per token K (≤ E).</summary>
    public int TopK;
    /// <summary>
    /// 1: the K weights are divided by their sum (Mixtral, Qwen3; and GPT-OSS's softmax over the K chosen logits, which is
    /// the same); 0: plain softmax probabilities (Qwen2-MoE, OLMoE).
    /// </summary>
    public int Renormalize;
    /// <summary>Threads per token team (power of two ≤ warp size).</summary>
    public int Lanes;
}

/// <summary>
/// Routing on the device, so that a decode step of all-resident experts never waits for the host: router logits in,
/// the grouped expert kernels' work list out (the layout <c>ExpertTiles</c> writes on the host, with one tile per
/// routed position). For P = T·K positions, position i = t·K + j (token t's j-th choice):
/// <code>
/// [order P: i | tiles 3P: (expert, i, 1) | pos P: i | key P: expert | weight bits P]    (7P ints)
/// </code>
/// </summary>
public static class RoutingKernels
{
    /// <summary>Ints of the index <see cref="SoftmaxTopK"/> writes for <paramref name="positions"/> positions.</summary>
    public static int IndexLength(int positions) => 7 * positions;

    /// <summary>
    /// Per token (a team of Lanes threads): p = softmax(logits[t]), the K experts of largest logit (lower id first on
    /// ties, largest first; softmax keeps the order), weight p_e, or p_e / Σ_chosen p with Renormalize. A NaN logit is
    /// never chosen over a number but makes every weight of its token NaN, so the error surfaces in the output logits;
    /// the ids written are always in [0, E).
    /// </summary>
    public static void SoftmaxTopK(ArrayView<float> logits, ArrayView<int> index, RouteArgs a)
    {
        int lanes = a.Lanes, gtid = Grid.GlobalIndex.X;
        int team = gtid / lanes, lane = gtid - team * lanes, teams = Grid.DimX * Group.DimX / lanes;
        int iters = (a.Tokens + teams - 1) / teams, k = a.TopK, p = a.Tokens * k;
        for (int it = 0; it < iters; it++)
        {
            int t = it * teams + team;
            int n = t < a.Tokens ? a.Experts : 0;                // idle teams still take part in the shuffles
            long row = (long)t * a.Experts;
            float m = float.NegativeInfinity;
            for (int i = lane; i < n; i += lanes) m = MathF.Max(m, Key(logits[row + i]));
            m = GpuMath.TeamMax(m, lanes);
            float s = 0;
            for (int i = lane; i < n; i += lanes) s += GpuMath.Exp(logits[row + i] - m);
            s = GpuMath.TeamSum(s, lanes);
            // K rounds of a team arg-max over the experts that come after the previous pick in (logit desc, id asc)
            // order. Every lane sees each winner, so every lane sums e^(v − m) over the picks; pick j is written by lane
            // j mod Lanes (un-normalised, then divided by the lane that wrote it: no lane reads another's writes).
            float prevV = float.PositiveInfinity, chosen = 0;
            int prevId = -1;
            for (int j = 0; j < k; j++)
            {
                float bestV = float.NegativeInfinity;
                int bestId = int.MaxValue;
                for (int i = lane; i < n; i += lanes)
                {
                    float v = Key(logits[row + i]);
                    bool after = v < prevV || (v == prevV && i > prevId);
                    if (after && (v > bestV || (v == bestV && i < bestId))) { bestV = v; bestId = i; }
                }
                for (int o = lanes >> 1; o > 0; o >>= 1)
                {
                    float ov = Warp.ShuffleXor(bestV, o);
                    int oi = Warp.ShuffleXor(bestId, o);
                    if (ov > bestV || (ov == bestV && oi < bestId)) { bestV = ov; bestId = oi; }
                }
                prevV = bestV;
                prevId = bestId;
                float e = GpuMath.Exp(bestV - m);                   // bestV is the logit itself (NaN ones make s NaN)
                chosen += e;
                if (n > 0 && j % lanes == lane)
                {
                    int i = t * k + j;
                    index[i] = i;
                    index[p + 3 * i] = bestId;
                    index[p + 3 * i + 1] = i;
                    index[p + 3 * i + 2] = 1;
                    index[4 * p + i] = i;
                    index[5 * p + i] = bestId;
                    index[6 * p + i] = (int)Interop.FloatAsInt(e);
                }
            }
            // p_e = e / s; renormalised p_e / Σ p = e / Σ e, except that a NaN logit (s NaN) poisons the weights either way.
            float norm = a.Renormalize != 0 && !float.IsNaN(s) ? chosen : s;
            if (n > 0)
                for (int j = lane; j < k; j += lanes)
                {
                    int w = 6 * p + t * k + j;
                    index[w] = (int)Interop.FloatAsInt(Interop.IntAsFloat((uint)index[w]) / norm);
                }
        }
    }

    // The order key of a logit: NaN sorts below every number.
    static float Key(float x) => float.IsNaN(x) ? float.NegativeInfinity : x;
}
