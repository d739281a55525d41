namespace Daop.Engine.Model;

/// <summary>
/// A forward pass produced NaN or ±∞: broken weights (a corrupt or badly converted checkpoint) or a config whose values
/// overflow. Generation stops with this error instead of sampling from garbage. The message names where the values were
/// first seen; with <see cref="ModelOptions.CheckFinite"/> (what <c>daop inspect --check</c> runs) that is the exact layer
/// and step.
/// </summary>
public sealed class NonFiniteException(string message) : Exception(message)
{
    /// <summary>The decoder layer where non-finite values were seen, or null for the embedding or the output logits.</summary>
    public int? Layer { get; init; }

    /// <summary>What held them: "embedding", "attention", "moe", "mlp", "router logits" or "logits".</summary>
    public required string Stage { get; init; }

    /// <summary>The sequence position of the first token with a non-finite value.</summary>
    public int Position { get; init; }

    /// <summary>Throws when <paramref name="values"/> ([T, width] rows from position <paramref name="startPos"/>) hold a NaN or ±∞.</summary>
    internal static void ThrowIfAny(ReadOnlySpan<float> values, int width, int startPos, int? layer, string stage)
    {
        int i = Kernels.Cpu.NonFinite.IndexOf(values);
        if (i < 0) return;
        int pos = startPos + i / width;
        string where = layer is { } l ? $"layer {l}'s {stage}" : stage;
        throw new NonFiniteException($"non-finite value ({values[i]}) in {where} at position {pos}: the weights or the config " +
            "produce NaN or infinity" + (layer != null && stage == "router logits"
                ? $" at or before layer {layer}; `daop inspect --check` names the first layer and weight"
                : stage == "logits" ? "; `daop inspect --check` names the first layer and weight" : ""))
        { Layer = layer, Stage = stage, Position = pos };
    }
}
