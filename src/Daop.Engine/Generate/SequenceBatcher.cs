using System.Collections.Concurrent;
using System.Diagnostics;
using System.Threading.Channels;
using Daop.Engine.Device;
using Daop.Engine.Model;

namespace Daop.Engine.Generate;

/// <summary>
/// Continuous batching: up to <see cref="Slots"/> sequences run together in one
/// <see cref="MoeModel.ForwardBatch(ReadOnlySpan{int}, ReadOnlySpan{BatchSegment}, Span{float})"/> step per token, so
/// each dense matrix and each routed expert is read once per step for all of them. Requests wait in FIFO order for a
/// free slot and join at a step boundary. A step holds one token of every decoding sequence, then prompt chunks of the
/// sequences still prefilling, in arrival order, up to <see cref="MoeModel.MaxChunkTokens"/> tokens in all (chunked
/// prefill, as vLLM and llama.cpp's server do): prompts that arrive together go in together, and running streams keep
/// flowing while a long prompt goes in. A slot is a fixed KV cache of the whole context (made on first use, reused): no
/// paging, so any admitted request can reach the context length and memory is slots × one cache, known up front. Each
/// sequence samples with its own <see cref="Sampler"/>; a request's tokens are exactly what it would get alone, up to
/// the fp32 rounding of batched kernels.
/// </summary>
/// <remarks>
/// Not thread-safe except <see cref="Enqueue"/> and the counters: <see cref="Step"/> runs on the model's thread, one
/// step at a time. Generated ids go to each request's channel; it completes when the request ends (its
/// <see cref="GenerationStats.Finish"/> says why) or faults with the step's exception, which fails every sequence then
/// in a slot (their caches are in an unknown state) and frees the slots.
/// </remarks>
public sealed class SequenceBatcher
{
    /// <summary>One queued or running request.</summary>
    sealed class Request(int[] prompt, SamplingOptions o, GenerationStats stats, CancellationToken cancel, TokenPicker picker)
    {
        public readonly int[] Prompt = prompt;
        public readonly SamplingOptions Options = o;
        public readonly GenerationStats Stats = stats;
        public readonly CancellationToken Cancel = cancel;
        public readonly Channel<int> Output = Channel.CreateUnbounded<int>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        public readonly TokenPicker Picker = picker;
        public int Prefilled, Position, Pending = -1;
        public long Arrival; // admission order: prompts prefill first come, first served
    }

    readonly MoeModel _model;
    readonly ConcurrentQueue<Request> _queue = new();
    readonly Request?[] _slots;
    readonly KvCache?[] _caches;
    readonly float[] _logits;
    readonly int[] _tokens;          // the step's tokens, segment after segment [MaxChunkTokens]
    readonly BatchSegment[] _segments; // [slots]
    readonly int[] _rows;            // slot of each segment [slots]
    readonly int[] _logitRow;        // each segment's row of _logits, or -1 [slots]
    int _waiting, _running;
    long _admitted;

    /// <summary>A batcher over <paramref name="model"/> with <paramref name="slots"/> sequences at most (1..<see cref="MoeModel.MaxChunkTokens"/>).</summary>
    public SequenceBatcher(MoeModel model, int slots)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (slots < 1 || slots > model.MaxChunkTokens)
            throw new ArgumentOutOfRangeException(nameof(slots), $"parallel sequences must be 1 to {model.MaxChunkTokens} (the forward chunk), not {slots}");
        if (!model.Experts.BatchesSequences)
            throw new NotSupportedException($"the expert scheduler ({model.Experts.Description}) runs one sequence at a time " +
                "(a replayed routing trace routes by position): parallel sequences need a scheduler that batches them");
        _model = model;
        _slots = new Request?[slots];
        _caches = new KvCache?[slots];
        _logits = new float[slots * model.Config.VocabSize];
        _tokens = new int[model.MaxChunkTokens];
        _segments = new BatchSegment[slots];
        _rows = new int[slots];
        _logitRow = new int[slots];
    }

    /// <summary>Most sequences in one step.</summary>
    public int Slots => _slots.Length;
    /// <summary>Requests waiting for a slot.</summary>
    public int Waiting => Volatile.Read(ref _waiting);
    /// <summary>Requests in a slot (prefilling or decoding).</summary>
    public int Running => Volatile.Read(ref _running);

    /// <summary>
    /// Queues a generation of <paramref name="prompt"/> (validated by the caller: non-empty, ids in the vocabulary, room for
    /// one new token) and returns the channel its token ids arrive on. Thread-safe.
    /// </summary>
    public ChannelReader<int> Enqueue(int[] prompt, SamplingOptions options, GenerationStats stats, CancellationToken cancel)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(stats);
        options.Validate();
        var r = new Request(prompt, options, stats, cancel, new TokenPicker(options, _model.Config.VocabSize, _model.Config.EosTokenIds, prompt, stats));
        Interlocked.Increment(ref _waiting);
        _queue.Enqueue(r);
        return r.Output.Reader;
    }

    /// <summary>
    /// One step on the model's thread: admit waiting requests into free slots, then one batched forward pass of every
    /// decoding sequence's next token and of prompt chunks of the sequences still prefilling (oldest first, up to the
    /// forward chunk). Returns true while any request is running or waiting.
    /// </summary>
    public bool Step()
    {
        try
        {
            Admit();
            Run();
        }
        catch (Exception e)
        {
            for (int i = 0; i < _slots.Length; i++)
                if (_slots[i] is { } r) Free(i, r, e);
        }
        return Running + Waiting > 0;
    }

    void Admit()
    {
        for (int i = 0; i < _slots.Length && !_queue.IsEmpty; i++)
        {
            if (_slots[i] != null || !_queue.TryDequeue(out var r)) continue;
            Interlocked.Decrement(ref _waiting);
            Interlocked.Increment(ref _running);
            r.Arrival = _admitted++;
            _slots[i] = r;
            if (_caches[i] == null) _model.NewCaches(_caches.Length).CopyTo(_caches, 0); // one pool for every slot
        }
    }

    void Run()
    {
        int segments = 0, tokens = 0, logitRows = 0, v = _model.Config.VocabSize;
        for (int i = 0; i < _slots.Length; i++)                                 // decode: one token each
        {
            if (_slots[i] is not { Pending: >= 0 } r) continue;
            if (r.Cancel.IsCancellationRequested) { Finish(i, r, FinishReason.Cancelled); continue; }
            _tokens[tokens++] = r.Pending;
            _logitRow[segments] = logitRows++;
            _rows[segments] = i;
            _segments[segments++] = new BatchSegment(_caches[i]!, r.Position, 1);
        }
        int decodes = segments;
        while (tokens < _tokens.Length && OldestPrefilling() is int i)          // prompts: chunks, first come first served
        {
            var r = _slots[i]!;
            int n = Math.Min(_tokens.Length - tokens, r.Prompt.Length - r.Prefilled);
            bool last = r.Prefilled + n == r.Prompt.Length;
            r.Prompt.AsSpan(r.Prefilled, n).CopyTo(_tokens.AsSpan(tokens));
            _logitRow[segments] = last ? logitRows++ : -1;
            _rows[segments] = i;
            _segments[segments++] = new BatchSegment(_caches[i]!, r.Prefilled, n, last);
            tokens += n;
            r.Prefilled += n;
        }
        if (segments == 0) return;
        long t0 = Stopwatch.GetTimestamp();
        _model.ForwardBatch(_tokens.AsSpan(0, tokens), _segments.AsSpan(0, segments), _logits.AsSpan(0, logitRows * v));
        var elapsed = Stopwatch.GetElapsedTime(t0);
        for (int j = 0; j < segments; j++)
        {
            int i = _rows[j];
            var r = _slots[i]!;
            var logits = _logitRow[j] >= 0 ? _logits.AsSpan(_logitRow[j] * v, v) : default;
            if (j < decodes)
            {
                r.Stats.DecodeTime += elapsed;
                r.Stats.DecodeSteps++;
                r.Position++;
                r.Pending = -1;
                Sample(i, r, logits);
                continue;
            }
            r.Stats.PrefillTime += elapsed;
            if (_logitRow[j] < 0) continue;                                     // more of the prompt to come
            r.Stats.PromptTokens = r.Prompt.Length;
            r.Position = r.Prompt.Length;
            Sample(i, r, logits);
        }
    }

    // The slot of the earliest-admitted request with prompt left to prefill (cancelled ones are ended on the way), or null.
    int? OldestPrefilling()
    {
        int best = -1;
        for (int i = 0; i < _slots.Length; i++)
        {
            if (_slots[i] is not { } r || r.Prefilled == r.Prompt.Length) continue;
            if (r.Cancel.IsCancellationRequested) { Finish(i, r, FinishReason.Cancelled); continue; }
            if (best < 0 || r.Arrival < _slots[best]!.Arrival) best = i;
        }
        return best < 0 ? null : best;
    }

    // The next token of slot i from its logits: a stop id, the token limit, a full context or cancellation end it.
    void Sample(int i, Request r, Span<float> logits)
    {
        if (r.Cancel.IsCancellationRequested) { Finish(i, r, FinishReason.Cancelled); return; }
        if (r.Stats.GeneratedTokens >= r.Options.MaxNewTokens) { Finish(i, r, FinishReason.MaxTokens); return; }
        if (!r.Picker.TryTake(logits, out int next)) { Free(i, r, null); return; } // a stop id (Finish set)
        r.Output.Writer.TryWrite(next);
        if (r.Picker.Limit(r.Position, _model.ContextLength) is { } end) Finish(i, r, end);
        else r.Pending = next;
    }

    /// <summary>
    /// Ends every running and waiting request with <paramref name="error"/> (the model is going away). Call on the model's
    /// thread, or once no step can run.
    /// </summary>
    public void Abort(Exception error)
    {
        ArgumentNullException.ThrowIfNull(error);
        for (int i = 0; i < _slots.Length; i++)
            if (_slots[i] is { } r) Free(i, r, error);
        while (_queue.TryDequeue(out var w))
        {
            Interlocked.Decrement(ref _waiting);
            w.Output.Writer.TryComplete(error);
        }
    }

    void Finish(int i, Request r, FinishReason why)
    {
        r.Stats.Finish = why;
        Free(i, r, null);
    }

    void Free(int i, Request r, Exception? error)
    {
        _slots[i] = null;
        Interlocked.Decrement(ref _running);
        r.Output.Writer.TryComplete(error);
    }
}
