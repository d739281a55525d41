namespace Daop.Engine.Generate;

/// <summary>
/// One sequence's per-token bookkeeping, the same for <see cref="Generator"/> (one sequence) and
/// <see cref="SequenceBatcher"/> (many): its <see cref="Sampler"/> (primed with the prompt for the repetition penalty),
/// the stop ids, and what each kept token adds to the <see cref="GenerationStats"/> (its count, its log-probabilities).
/// </summary>
sealed class TokenPicker
{
    readonly Sampler _sampler;
    readonly SamplingOptions _o;
    readonly IReadOnlyCollection<int> _stop;
    readonly GenerationStats _stats;
    readonly ITokenConstraint? _constraint;

    /// <param name="o">Sampling options; their stop ids, else <paramref name="defaultStop"/>.</param>
    /// <param name="vocab">Vocabulary size.</param>
    /// <param name="defaultStop">Stop ids when the options name none (the model's EOS ids).</param>
    /// <param name="prompt">The prompt (seen by the repetition penalty).</param>
    /// <param name="stats">The sequence's counters (its <see cref="GenerationStats.Logprobs"/> are made here when asked for).</param>
    public TokenPicker(SamplingOptions o, int vocab, IReadOnlyCollection<int> defaultStop, ReadOnlySpan<int> prompt, GenerationStats stats)
    {
        _o = o;
        _stop = o.StopTokenIds ?? defaultStop;
        _stats = stats;
        _sampler = new Sampler(o, vocab);
        _sampler.AddPrompt(prompt);
        if (o.Constraint?.Invoke() is { } c) _constraint = new NoStopUntilComplete(c, _stop);
        if (o.TopLogprobs != null) stats.Logprobs ??= new();
    }

    /// <summary>
    /// Samples the next token from <paramref name="logits"/> (which may be modified). A stop id, or a constraint that is
    /// complete (then <paramref name="next"/> is -1), ends the sequence: false, with <see cref="GenerationStats.Finish"/> =
    /// Stop. Otherwise the token is kept: counted, its log-probabilities recorded, shown to the penalties and the
    /// constraint; true.
    /// </summary>
    public bool TryTake(Span<float> logits, out int next)
    {
        if (_constraint?.IsComplete == true)
        {
            next = -1;
            _stats.Finish = FinishReason.Stop;
            return false;
        }
        next = _sampler.Next(logits, _constraint);
        if (_stop.Contains(next))
        {
            _stats.Finish = FinishReason.Stop;
            return false;
        }
        _stats.GeneratedTokens++;
        _stats.Logprobs?.Enqueue(_sampler.Logprob(next));
        _sampler.Accept(next);
        _constraint?.Accept(next);
        return true;
    }

    /// <summary>
    /// After a kept token that would go to <paramref name="position"/> of a context of <paramref name="context"/>: the
    /// limit that ends the sequence there (max new tokens, then a full context), or null to go on.
    /// </summary>
    public FinishReason? Limit(int position, int context) =>
        _stats.GeneratedTokens >= _o.MaxNewTokens ? FinishReason.MaxTokens : position >= context ? FinishReason.ContextFull : null;

    // A stop id may have text a constraint allows (an end-of-text token that is not marked special, inside a JSON
    // string): until the constrained output is complete, it is not a candidate.
    sealed class NoStopUntilComplete(ITokenConstraint inner, IReadOnlyCollection<int> stop) : ITokenConstraint
    {
        public bool Allows(int token) => !stop.Contains(token) && inner.Allows(token);
        public void Accept(int token) => inner.Accept(token);
        public bool IsComplete => inner.IsComplete;
    }
}
