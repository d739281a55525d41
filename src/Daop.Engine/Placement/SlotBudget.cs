namespace Daop.Engine.Placement;

/// <summary>
/// Turns a VRAM budget into GPU expert slots per layer. Slots are spread evenly over layers first (every
/// layer runs every token, so an empty layer would stall each one), the remainder going to the layers
/// whose experts are most popular when a profile is given, else to the first layers.
/// </summary>
public static class SlotBudget
{
    /// <summary>Slots per layer for an expert cache ratio (fraction of all experts on the GPU).</summary>
    public static int[] FromRatio(double ratio, int layers, int experts, long[,]? popularity = null)
    {
        if (!(ratio >= 0 && ratio <= 1)) throw new ArgumentOutOfRangeException(nameof(ratio), $"expert cache ratio must be in [0, 1], got {ratio}");
        return Spread((int)Math.Round(ratio * layers * experts, MidpointRounding.AwayFromZero), layers, experts, popularity);
    }

    /// <summary>Slots per layer for a byte budget, each slot holding one expert of <paramref name="expertBytes"/>.</summary>
    public static int[] FromBytes(long budgetBytes, long expertBytes, int layers, int experts, long[,]? popularity = null)
    {
        if (budgetBytes < 0) throw new ArgumentOutOfRangeException(nameof(budgetBytes), $"VRAM budget must be >= 0, got {budgetBytes}");
        long slots = Math.Min(budgetBytes / expertBytes, (long)layers * experts);
        return Spread((int)slots, layers, experts, popularity);
    }

    static int[] Spread(int total, int layers, int experts, long[,]? popularity)
    {
        var slots = new int[layers];
        int each = total / layers, rest = total % layers;
        for (int l = 0; l < layers; l++) slots[l] = each;
        IEnumerable<int> order = Enumerable.Range(0, layers);
        if (popularity != null)
            order = order.OrderByDescending(l => TopShare(popularity, l, each + 1, experts)).ThenBy(l => l);
        foreach (int l in order.Take(rest)) slots[l]++;
        return slots;
    }

    // The share of a layer's activations its (n)th most popular expert adds: where it is largest, one more slot helps most.
    static double TopShare(long[,] p, int layer, int n, int experts)
    {
        var counts = Enumerable.Range(0, experts).Select(e => p[layer, e]).OrderDescending().ToArray();
        long sum = counts.Sum();
        return n - 1 < counts.Length && sum > 0 ? (double)counts[n - 1] / sum : 0;
    }
}
