namespace Daop.Engine.Placement;

/// <summary>Shared ways to fill slots before any token runs.</summary>
public static class InitialPlacement
{
    /// <summary>
    /// Each layer takes its most popular experts (ties by id); without a profile, layer-round-robin
    /// (layer l starts at expert l mod E) so no expert id is favoured in every layer.
    /// </summary>
    public static void ByPopularity(Residency r, long[,]? popularity)
    {
        for (int l = 0; l < r.Layers; l++)
        {
            IEnumerable<int> order = popularity != null
                ? Enumerable.Range(0, r.Experts).OrderByDescending(e => popularity[l, e]).ThenBy(e => e)
                : Enumerable.Range(0, r.Experts).Select(i => (l + i) % r.Experts);
            foreach (int e in order.Take(r.Capacity(l))) r.Load(l, e);
        }
        r.PendingLoads.Clear(); // initial weights are uploaded at start, not counted as decode transfers
    }

    /// <summary>Places the experts named per layer; each list must fit its layer's slots.</summary>
    public static void FromList(Residency r, IReadOnlyList<IReadOnlyList<int>> perLayer)
    {
        if (perLayer.Count != r.Layers) throw new ArgumentException($"placement list has {perLayer.Count} layers, the model {r.Layers}");
        for (int l = 0; l < r.Layers; l++)
        {
            if (perLayer[l].Count > r.Capacity(l))
                throw new ArgumentException($"placement list names {perLayer[l].Count} experts for layer {l}, which has {r.Capacity(l)} slots");
            foreach (int e in perLayer[l])
            {
                if ((uint)e >= (uint)r.Experts) throw new ArgumentException($"placement list names expert {e} in layer {l}; the model has {r.Experts}");
                r.Load(l, e);
            }
        }
        r.PendingLoads.Clear();
    }
}
