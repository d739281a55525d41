using System.Numerics.Tensors;
using Daop.Engine.Placement;
using Daop.Kernels.Cpu;

namespace Daop.Engine.Schedule;

/// <summary>What one policy did over a replayed trace.</summary>
public sealed record SimulationResult(string Policy, int DecodeTokens, double DecodeSeconds, double HitRate,
    double CpuExpertsPerToken, double TransfersPerToken, double GpuWaitUsPerToken, double PredictorRecall)
{
    /// <summary>Decode tokens per second.</summary>
    public double TokensPerSecond => DecodeTokens / DecodeSeconds;
}

/// <summary>
/// Replays routing traces under a placement policy with a cost model. Three timelines advance per layer
/// as the real scheduler drives them: GPU compute, the copy engine, and CPU expert threads. Results are
/// deterministic on any machine. The first <c>prefill</c> tokens of each trace are the prompt; their counts
/// feed <see cref="IPlacementPolicy.OnPrefillCounts"/>. The rest are decoded one token at a time:
/// <list type="number">
/// <item>GPU: dense part of layer l (the gate input is then known).</item>
/// <item>The prediction for layer l+1 issues prefetch copies (policies that want them) and, in DAOP's
/// approximate mode, CPU pre-calculations of predicted CPU-resident experts.</item>
/// <item>Layer l's experts: GPU-resident ones on the GPU (waiting for a copy still in flight),
/// pre-calculated ones joined from the CPU, misses transferred or run on the CPU as the policy says.</item>
/// <item>The layer ends when the GPU and the CPU work it needs are both done; then the policy may re-place the layer
/// (AfterDecodeLayer), and its loads queue on the copy engine.</item>
/// </list>
/// </summary>
public static class TraceSimulator
{
    /// <summary>Simulates <paramref name="policy"/> over the decode part of every trace.</summary>
    /// <param name="traces">Routing traces (true and predicted experts per token and layer).</param>
    /// <param name="policy">The policy; it is initialised afresh for each sequence.</param>
    /// <param name="slotsPerLayer">GPU expert slots per layer.</param>
    /// <param name="cost">Per-piece costs.</param>
    /// <param name="prefill">Tokens of each trace treated as the prompt.</param>
    /// <param name="popularity">[layers, experts] calibration counts for the initial placement, or null.</param>
    public static SimulationResult Run(IReadOnlyList<RoutingTrace> traces, IPlacementPolicy policy, IReadOnlyList<int> slotsPerLayer,
        CostModel cost, int prefill, long[,]? popularity)
    {
        bool approx = policy is DaopPolicy { Approximate: true };
        int exactLayers = policy is DaopPolicy d ? d.ExactLayers : int.MaxValue;
        long tokens = 0, hits = 0, activations = 0, cpuRuns = 0, transfers = 0, recallHits = 0, recallTotal = 0;
        double totalUs = 0, waitUs = 0;
        int k = traces[0].TopK, experts = traces[0].Experts;
        var ids = new int[k];
        var weights = new float[k];
        var probs = new float[experts];
        foreach (var tr in traces)
        {
            var r = new Residency(tr.Layers, tr.Experts, slotsPerLayer);
            policy.Initialize(r, popularity);
            PrefillCounts(tr, prefill, policy, r);
            r.PendingLoads.Clear(); // prefill swaps are copied during the prompt, before decode starts
            var ready = new double[tr.Layers, tr.Experts];      // when a prefetch copy lands
            var cur = new double[tr.Experts];                    // this layer's pre-calculations: done time, or -1
            var next = new double[tr.Experts];
            double gpu = 0, pcie = 0, cpu = 0;
            for (int t = prefill; t < tr.Tokens; t++)
            {
                double tokenStart = gpu;
                Array.Fill(cur, -1);
                for (int l = 0; l < tr.Layers; l++)
                {
                    gpu += cost.DenseLayerUs;
                    Array.Fill(next, -1);
                    if (l + 1 < tr.Layers) Predict(tr, t, l + 1);

                    Route(tr, t, l);
                    double cpuDone = gpu;
                    foreach (int e in ids)
                    {
                        activations++;
                        if (r.IsResident(l, e))
                        {
                            hits++;
                            if (ready[l, e] > gpu) { waitUs += ready[l, e] - gpu; gpu = ready[l, e]; }
                            gpu += cost.GpuExpertUs;
                        }
                        else if (cur[e] >= 0)
                        {
                            cpuRuns++;
                            cpuDone = Math.Max(cpuDone, cur[e] + cost.CpuRoundTripUs / 2);
                        }
                        else if (policy.OnMiss(l, e, r, out int victim) == MissAction.Transfer)
                        {
                            if (victim >= 0) r.Evict(l, victim);
                            r.Load(l, e);
                            pcie = Math.Max(pcie, gpu) + cost.TransferUs;
                            transfers++;
                            waitUs += pcie - gpu;
                            gpu = pcie + cost.GpuExpertUs;
                        }
                        else
                        {
                            cpuRuns++;
                            cpu = cost.CpuExpertEnd(Math.Max(cpu, gpu) + cost.CpuRoundTripUs / 2, pcie);
                            cpuDone = Math.Max(cpuDone, cpu + cost.CpuRoundTripUs / 2);
                        }
                        policy.OnUse(l, e);
                    }
                    r.PendingLoads.Clear();
                    if (cpuDone > gpu) { waitUs += cpuDone - gpu; gpu = cpuDone; }
                    policy.AfterDecodeLayer(l, r);
                    Copies();
                    (cur, next) = (next, cur);
                }
                gpu += cost.HeadUs;
                totalUs += gpu - tokenStart;
                tokens++;
            }

            // Layer `nl`'s prediction, made once layer nl−1's gate input exists (gpu is then just past its dense part).
            void Predict(RoutingTrace tr, int t, int nl)
            {
                var pred = tr.Predicted(t, nl);
                foreach (int e in tr.True(t, nl)) { recallTotal++; if (pred.Contains(e)) recallHits++; }
                policy.OnPredicted(nl, pred, r);
                Copies();
                if (!approx || nl < exactLayers) return;
                Degraded(tr, t, nl);
                foreach (int e in ids)
                    if (!r.IsResident(nl, e))
                    {
                        cpu = cost.CpuExpertEnd(Math.Max(cpu, gpu) + cost.CpuRoundTripUs / 2, pcie);
                        next[e] = cpu;
                    }
            }

            // The policy's loads (prefetch, re-placement) queue on the copy engine from now; a GPU use waits for its copy.
            void Copies()
            {
                foreach (var (pl, pe) in r.PendingLoads)
                {
                    pcie = Math.Max(pcie, gpu) + cost.TransferUs;
                    ready[pl, pe] = pcie;
                    transfers++;
                }
                r.PendingLoads.Clear();
            }

            // The experts layer l runs: its true top-k, or (approximate mode) the degraded prediction.
            void Route(RoutingTrace tr, int t, int l)
            {
                if (approx && l >= exactLayers) Degraded(tr, t, l);
                else tr.True(t, l).CopyTo(ids);
            }

            void Degraded(RoutingTrace tr, int t, int l)
            {
                tr.Predicted(t, l).CopyTo(ids);
                Softmax.Forward(tr.PredictedScores(t, l), probs);
                for (int i = 0; i < k; i++) weights[i] = probs[ids[i]];
                GracefulDegradation.Apply(l, ids, weights, probs, r);
            }
        }
        return new SimulationResult(policy.Name, (int)tokens, totalUs / 1e6, (double)hits / activations, (double)cpuRuns / tokens,
            (double)transfers / tokens, waitUs / tokens, recallTotal == 0 ? 0 : (double)recallHits / recallTotal);
    }

    static void PrefillCounts(RoutingTrace tr, int prefill, IPlacementPolicy policy, Residency r)
    {
        var counts = new int[tr.Experts];
        for (int l = 0; l < tr.Layers; l++)
        {
            Array.Clear(counts);
            // DAOP's approximate mode decodes these layers by the predictor, so it places them by the predictor's counts.
            bool predicted = policy is DaopPolicy { Approximate: true } d && l >= d.ExactLayers;
            for (int t = 0; t < prefill; t++) foreach (int e in predicted ? tr.Predicted(t, l) : tr.True(t, l)) counts[e]++;
            policy.OnPrefillCounts(l, counts, r);
        }
    }
}
