using System.Diagnostics;
using Daop.Engine.Device;
using Daop.Engine.Model;

namespace Daop.Engine.Generate;

/// <summary>Why generation ended.</summary>
public enum FinishReason
{
    /// <summary>A stop token was produced.</summary>
    Stop,
    /// <summary>max new tokens reached.</summary>
    MaxTokens,
    /// <summary>The context is full.</summary>
    ContextFull,
    /// <summary>The caller cancelled.</summary>
    Cancelled,
}

/// <summary>Timing and counts of one generation.</summary>
public sealed class GenerationStats
{
    /// <summary>Prompt tokens prefilled.</summary>
    public int PromptTokens { get; internal set; }
    /// <summary>Time spent on prefill.</summary>
    public TimeSpan PrefillTime { get; internal set; }
    /// <summary>Tokens generated (not counting a stop token).</summary>
    public int GeneratedTokens { get; internal set; }
    /// <summary>Forward passes of single tokens during decode.</summary>
    public int DecodeSteps { get; internal set; }
    /// <summary>Time spent on decode steps.</summary>
    public TimeSpan DecodeTime { get; internal set; }
    /// <summary>How it ended.</summary>
    public FinishReason Finish { get; internal set; }
    /// <summary>
    /// With <see cref="SamplingOptions.TopLogprobs"/> set: each generated token's log-probabilities, in order, added as the
    /// token is generated (before its text is handed on); readers may take them as they come. Null otherwise.
    /// </summary>
    public System.Collections.Concurrent.ConcurrentQueue<TokenLogprob>? Logprobs { get; internal set; }
    /// <summary>Prompt tokens per second.</summary>
    public double PrefillTokensPerSecond => PromptTokens / Math.Max(PrefillTime.TotalSeconds, 1e-9);
    /// <summary>Decode tokens per second (forward passes of one token).</summary>
    public double DecodeTokensPerSecond => DecodeSteps / Math.Max(DecodeTime.TotalSeconds, 1e-9);
}

/// <summary>Thrown when a prompt does not fit the model's context.</summary>
public sealed class ContextOverflowException(string message) : Exception(message);

/// <summary>
/// Prefill then decode, one sequence at a time, on a loaded <see cref="MoeModel"/>. The KV cache is made on first use
/// and reused by every later sequence (a sequence writes each position before attention reads it), so repeated
/// generations neither grow device memory nor zero a new cache.
/// </summary>
public sealed class Generator(MoeModel model)
{
    float[] _logits = new float[model.Config.VocabSize];
    KvCache? _cache;

    /// <summary>
    /// Yields generated token ids one by one (lazily: each MoveNext runs one decode step). The prompt must
    /// leave room for at least one new token in the context.
    /// </summary>
    public IEnumerable<int> Generate(IReadOnlyList<int> prompt, SamplingOptions options, GenerationStats? stats = null,
        CancellationToken cancel = default)
    {
        options.Validate();
        if (prompt.Count == 0) throw new ArgumentException("the prompt is empty: at least one token is needed");
        if (prompt.Count >= model.ContextLength)
            throw new ContextOverflowException(
                $"the prompt has {prompt.Count} tokens but the context holds {model.ContextLength}; shorten the prompt or raise the context length");
        int vocab = model.Config.VocabSize;
        foreach (int id in prompt)
            if ((uint)id >= (uint)vocab) throw new ArgumentException($"prompt token id {id} is outside the vocabulary [0, {vocab})");
        return Run(prompt.ToArray(), options, stats ?? new GenerationStats(), cancel);
    }

    IEnumerable<int> Run(int[] prompt, SamplingOptions o, GenerationStats stats, CancellationToken cancel)
    {
        var picker = new TokenPicker(o, model.Config.VocabSize, model.Config.EosTokenIds, prompt, stats);
        KvCache cache = _cache ??= model.NewCache();
        var sw = Stopwatch.StartNew();
        model.Forward(prompt, 0, cache, _logits);
        stats.PromptTokens = prompt.Length;
        stats.PrefillTime = sw.Elapsed;
        int pos = prompt.Length;
        stats.Finish = FinishReason.MaxTokens;
        for (int i = 0; i < o.MaxNewTokens; i++)
        {
            if (cancel.IsCancellationRequested) { stats.Finish = FinishReason.Cancelled; yield break; }
            if (!picker.TryTake(_logits, out int next)) yield break;
            yield return next;
            if (picker.Limit(pos, model.ContextLength) is { } end) { stats.Finish = end; yield break; }
            long t0 = Stopwatch.GetTimestamp();
            model.Forward([next], pos++, cache, _logits);
            stats.DecodeTime += Stopwatch.GetElapsedTime(t0);
            stats.DecodeSteps++;
        }
    }
}
