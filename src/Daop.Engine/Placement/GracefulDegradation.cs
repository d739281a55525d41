namespace Daop.Engine.Placement;

/// <summary>
/// DAOP's graceful degradation: when every expert chosen for a token at a layer lives on the CPU, the
/// lowest-weight one is replaced by the GPU-resident expert with the highest gate score, so at most
/// K−1 experts (one, for top-2) of that token run on the CPU instead of stalling on a transfer.
/// </summary>
public static class GracefulDegradation
{
    /// <summary>
    /// Applies the rule to one token's routing in place. <paramref name="probs"/> are the router's softmax
    /// probabilities [E]; new weights are those probabilities rescaled so their sum equals the old weights'
    /// sum (1 for renormalising routers, the same mass otherwise). Returns true if it substituted.
    /// </summary>
    public static bool Apply(int layer, Span<int> ids, Span<float> weights, ReadOnlySpan<float> probs, Residency r)
    {
        foreach (int e in ids) if (r.IsResident(layer, e)) return false;
        int best = -1;
        for (int e = 0; e < probs.Length; e++)
            if (r.IsResident(layer, e) && (best < 0 || probs[e] > probs[best])) best = e;
        if (best < 0) return false; // no expert of this layer is on the GPU: nothing to substitute
        int lowest = 0;
        for (int k = 1; k < ids.Length; k++) if (weights[k] < weights[lowest]) lowest = k;
        float mass = 0, newMass = 0;
        foreach (float w in weights) mass += w;
        ids[lowest] = best;
        for (int k = 0; k < ids.Length; k++) newMass += probs[ids[k]];
        for (int k = 0; k < ids.Length; k++) weights[k] = probs[ids[k]] * mass / newMass;
        return true;
    }
}
