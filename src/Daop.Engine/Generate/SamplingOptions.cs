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
    /// <summary>Keep only tokens whose probability is at least this fraction of the most likely one's (0 = all).</summary>
    public float MinP { get; init; }
    /// <summary>
    /// OpenAI's frequency penalty, in [−2, 2]: each generated token's logit is lowered by this times the number of times
    /// it was generated so far.
    /// </summary>
    public float FrequencyPenalty { get; init; }
    /// <summary>OpenAI's presence penalty, in [−2, 2]: lowers the logit of every token generated so far by this, once.</summary>
    public float PresencePenalty { get; init; }
    /// <summary>
    /// The repetition penalty of Hugging Face and llama.cpp, in (0, 10]: the logit of every token in the prompt or
    /// generated so far is divided by this when positive and multiplied by it when negative (1 = off).
    /// </summary>
    public float RepetitionPenalty { get; init; } = 1f;
    /// <summary>True if any penalty is on (the sampler then tracks the tokens seen).</summary>
    public bool Penalizes => FrequencyPenalty != 0 || PresencePenalty != 0 || RepetitionPenalty != 1;
    /// <summary>Random seed for sampling (same seed, same tokens).</summary>
    public ulong Seed { get; init; } = 42;
    /// <summary>Most tokens to generate.</summary>
    public int MaxNewTokens { get; init; } = 128;
    /// <summary>
    /// Record each generated token's log-probability and this many most likely alternatives (0 to
    /// <see cref="MaxTopLogprobs"/>) in <see cref="GenerationStats.Logprobs"/>; null (default): none. They are of the
    /// model's own distribution (log-softmax of the raw logits), before penalties and temperature, as vLLM returns them.
    /// </summary>
    public int? TopLogprobs { get; init; }
    /// <summary>Most alternatives <see cref="TopLogprobs"/> may ask for.</summary>
    public const int MaxTopLogprobs = 20;
    /// <summary>
    /// Constrained decoding: makes each sequence's <see cref="ITokenConstraint"/> (e.g. a <see cref="JsonObjectConstraint"/>);
    /// only tokens it allows are picked, and the sequence stops once it is complete. Null (default): none.
    /// </summary>
    public Func<ITokenConstraint>? Constraint { get; init; }
    /// <summary>Token ids that end generation (the stop token itself is not emitted). Null: the model's EOS ids.</summary>
    public IReadOnlyCollection<int>? StopTokenIds { get; init; }

    /// <summary>Checks ranges; throws <see cref="ArgumentException"/> naming the bad value.</summary>
    public void Validate()
    {
        if (!(Temperature >= 0) || float.IsInfinity(Temperature)) throw new ArgumentException($"temperature must be >= 0, got {Temperature}");
        if (TopK < 0) throw new ArgumentException($"top-k must be >= 0, got {TopK}");
        if (!(TopP > 0 && TopP <= 1)) throw new ArgumentException($"top-p must be in (0, 1], got {TopP}");
        if (!(MinP >= 0 && MinP <= 1)) throw new ArgumentException($"min-p must be in [0, 1], got {MinP}");
        if (!(FrequencyPenalty >= -2 && FrequencyPenalty <= 2)) throw new ArgumentException($"frequency penalty must be in [-2, 2], got {FrequencyPenalty}");
        if (!(PresencePenalty >= -2 && PresencePenalty <= 2)) throw new ArgumentException($"presence penalty must be in [-2, 2], got {PresencePenalty}");
        if (!(RepetitionPenalty > 0 && RepetitionPenalty <= 10)) throw new ArgumentException($"repetition penalty must be in (0, 10], got {RepetitionPenalty}");
        if (MaxNewTokens < 0) throw new ArgumentException($"max new tokens must be >= 0, got {MaxNewTokens}");
        if (TopLogprobs is < 0 or > MaxTopLogprobs) throw new ArgumentException($"top logprobs must be in [0, {MaxTopLogprobs}], got {TopLogprobs}");
    }
}
