using Daop.Engine.Schedule;

namespace Daop.Bench.Routing;

/// <summary>Cache hit rates of three placements over the decode half of a sequence.</summary>
public sealed record HitRates(int CachePerLayer, double Lru, double DaopPrefillCounts, double StaticGlobal);

/// <summary>
/// The routing figures DAOP rests on, computed from traces: predictor recall, cache hit rates of LRU /
/// per-sequence (DAOP) / global (static) placements, and the segment-cache bound of the local routing
/// consistency paper. Each sequence is split in half: the first half plays prefill, the second decode.
/// </summary>
public static class RoutingStatistics
{
    /// <summary>[L−1] share of layer l+1's true top-k found in the predicted top-k made at layer l.</summary>
    public static double[] PredictorRecall(IReadOnlyList<RoutingTrace> traces)
    {
        var t0 = traces[0];
        var hits = new long[t0.Layers - 1];
        long total = 0;
        foreach (var tr in traces)
        {
            for (int t = 0; t < tr.Tokens; t++)
                for (int l = 1; l < tr.Layers; l++)
                {
                    var truth = tr.True(t, l);
                    var pred = tr.Predicted(t, l);
                    foreach (int e in truth) if (pred.Contains(e)) hits[l - 1]++;
                }
            total += (long)tr.Tokens * tr.TopK;
        }
        return hits.Select(h => (double)h / total).ToArray();
    }

    /// <summary>[L−1] share of tokens whose predicted top-1 is the true top-1 of layer l+1.</summary>
    public static double[] PredictorTop1(IReadOnlyList<RoutingTrace> traces)
    {
        var hits = new long[traces[0].Layers - 1];
        long total = 0;
        foreach (var tr in traces)
        {
            for (int t = 0; t < tr.Tokens; t++)
                for (int l = 1; l < tr.Layers; l++)
                    if (tr.Predicted(t, l)[0] == tr.True(t, l)[0]) hits[l - 1]++;
            total += tr.Tokens;
        }
        return hits.Select(h => (double)h / total).ToArray();
    }

    /// <summary>
    /// Hit rates over each sequence's second half for a per-layer cache of <paramref name="cache"/> experts:
    /// LRU warmed by the first half, DAOP (this sequence's top experts by first-half counts), static
    /// (top experts by first-half counts summed over all sequences).
    /// </summary>
    public static HitRates DecodeHitRates(IReadOnlyList<RoutingTrace> traces, int cache)
    {
        int layers = traces[0].Layers, experts = traces[0].Experts;
        var global = new long[layers, experts];
        foreach (var tr in traces)
            for (int t = 0; t < tr.Tokens / 2; t++)
                for (int l = 0; l < layers; l++)
                    foreach (int e in tr.True(t, l)) global[l, e]++;
        var staticSets = Enumerable.Range(0, layers).Select(l => TopByCount(Enumerable.Range(0, experts).Select(e => global[l, e]).ToArray(), cache)).ToArray();

        long lruHits = 0, daopHits = 0, staticHits = 0, total = 0;
        foreach (var tr in traces)
        {
            int half = tr.Tokens / 2;
            for (int l = 0; l < layers; l++)
            {
                var counts = new long[experts];
                for (int t = 0; t < half; t++) foreach (int e in tr.True(t, l)) counts[e]++;
                var daopSet = TopByCount(counts, cache);
                var lru = new LinkedList<int>();
                for (int t = 0; t < tr.Tokens; t++)
                {
                    bool decode = t >= half;
                    foreach (int e in tr.True(t, l))
                    {
                        if (decode)
                        {
                            total++;
                            if (lru.Contains(e)) lruHits++;
                            if (daopSet.Contains(e)) daopHits++;
                            if (staticSets[l].Contains(e)) staticHits++;
                        }
                        Touch(lru, e, cache);
                    }
                }
            }
        }
        return new HitRates(cache, (double)lruHits / total, (double)daopHits / total, (double)staticHits / total);
    }

    /// <summary>
    /// [L] segment-cache best hit rate: split each sequence into segments of <paramref name="segment"/> tokens; an
    /// oracle caches the <paramref name="cache"/> experts used most within each segment; share of activations it covers.
    /// </summary>
    public static double[] SegmentCacheBestHitRate(IReadOnlyList<RoutingTrace> traces, int segment, int cache)
    {
        int layers = traces[0].Layers, experts = traces[0].Experts;
        var hits = new long[layers];
        long total = 0;
        foreach (var tr in traces)
        {
            for (int s = 0; s + segment <= tr.Tokens; s += segment)
            {
                for (int l = 0; l < layers; l++)
                {
                    var counts = new long[experts];
                    for (int t = s; t < s + segment; t++) foreach (int e in tr.True(t, l)) counts[e]++;
                    hits[l] += counts.OrderDescending().Take(cache).Sum();
                }
                total += (long)segment * tr.TopK;
            }
        }
        return hits.Select(h => (double)h / total).ToArray();
    }

    static void Touch(LinkedList<int> lru, int e, int capacity)
    {
        if (capacity == 0) return;
        if (lru.Remove(e)) { lru.AddFirst(e); return; }
        lru.AddFirst(e);
        if (lru.Count > capacity) lru.RemoveLast();
    }

    static HashSet<int> TopByCount(long[] counts, int n) =>
        Enumerable.Range(0, counts.Length).OrderByDescending(e => counts[e]).ThenBy(e => e).Take(n).ToHashSet();
}
