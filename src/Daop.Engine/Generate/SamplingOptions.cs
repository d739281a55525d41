namespace Daop.Engine.Generate;

/// <summary>How to pick each next token and when to stop.</summary>
public sealed record SamplingOptions
{
    /// <summary>0 means greedy (arg-max); otherwise logits are divided by this before softmax.</summary>
    public float Temperature { get; init; }
    /// <summary>Keep only the K most likely tokens (0 = all).</summary>
    public int TopK { get; init; }
    /// <summary>Keep the smallest set of tokens whose probability reaches P (1 = all).</summary>
    public float TopP { get; init; } = 1f;
    /// <summary>Random seed for sampling (same seed, same tokens).</summary>
    public ulong Seed { get; init; } = 42;
    /// <summary>Most tokens to generate.</summary>
    public int MaxNewTokens { get; init; } = 128;
    /// <summary>Token ids that end generation (the stop token itself is not emitted). Null: the model's EOS ids.</summary>
    public IReadOnlyCollection<int>? StopTokenIds { get; init; }

    /// <summary>Checks ranges; throws <see cref="ArgumentException"/> naming the bad value.</summary>
    public void Validate()
    {
        if (!(Temperature >= 0) || float.IsInfinity(Temperature)) throw new ArgumentException($"temperature must be >= 0, got {Temperature}");
        if (TopK < 0) throw new ArgumentException($"top-k must be >= 0, got {TopK}");
        if (!(TopP > 0 && TopP <= 1)) throw new ArgumentException($"top-p must be in (0, 1], got {TopP}");
        if (MaxNewTokens < 0) throw new ArgumentException($"max new tokens must be >= 0, got {MaxNewTokens}");
    }
}
