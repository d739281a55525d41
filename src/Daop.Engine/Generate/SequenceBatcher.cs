using System.Collections.Concurrent;
using System.Diagnostics;
using System.Threading.Channels;
using Daop.Engine.Device;
using Daop.Engine.Model;

namespace Daop.Engine.Generate;

/// <summary>
/// Continuous batching: up to <see cref="Slots"/> sequences decode together, one token each per
/// <see cref="MoeModel.ForwardBatch"/> step, so each dense matrix and each routed expert is read once per step for all of
/// them. Requests wait in FIFO order for a free slot, join at a step boundary, and prefill one chunk per step beside the
/// batch's decode, so running streams keep flowing while a long prompt goes in. A slot is a fixed KV cache of the whole
/// context (made on first use, reused): no paging, so any admitted request can reach the context length and memory is
/// slots × one cache, known up front. Each sequence samples with its own <see cref="Sampler"/>; a request's tokens are
/// exactly what it would get alone, up to the fp32 rounding of batched kernels.
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
    }

    readonly MoeModel _model;
    readonly ConcurrentQueue<Request> _queue = new();
    readonly Request?[] _slots;
    readonly KvCache?[] _caches;
    readonly float[] _logits;
    readonly int[] _tokens, _positions, _rows;
    readonly KvCache[] _batchCaches;
    int _waiting, _running;

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
        _tokens = new int[slots];
        _positions = new int[slots];
        _rows = new int[slots];
        _batchCaches = new KvCache[slots];
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
    /// One step on the model's thread: admit waiting requests into free slots, prefill one chunk of the first slot still
    /// prefilling, then decode one token of every other running sequence in one batched forward pass. Returns true while
    /// any request is running or waiting.
    /// </summary>
    public bool Step()
    {
        try
        {
            Admit();
            Prefill();
            Decode();
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
            _slots[i] = r;
            _caches[i] ??= _model.NewCache();
        }
    }

    // One chunk of the first slot still prefilling; its first token is sampled when the prompt is in.
    void Prefill()
    {
        int v = _model.Config.VocabSize;
        for (int i = 0; i < _slots.Length; i++)
        {
            if (_slots[i] is not { } r || r.Prefilled == r.Prompt.Length) continue;
            if (r.Cancel.IsCancellationRequested) { Finish(i, r, FinishReason.Cancelled); continue; }
            int n = Math.Min(_model.MaxChunkTokens, r.Prompt.Length - r.Prefilled);
            long t0 = Stopwatch.GetTimestamp();
            _model.Forward(r.Prompt.AsSpan(r.Prefilled, n), r.Prefilled, _caches[i]!, _logits.AsSpan(0, v));
            r.Stats.PrefillTime += Stopwatch.GetElapsedTime(t0);
            r.Prefilled += n;
            if (r.Prefilled < r.Prompt.Length) return;
            r.Stats.PromptTokens = r.Prompt.Length;
            r.Position = r.Prompt.Length;
            Sample(i, r, _logits.AsSpan(0, v));
            return;
        }
    }

    void Decode()
    {
        int b = 0, v = _model.Config.VocabSize;
        for (int i = 0; i < _slots.Length; i++)
        {
            if (_slots[i] is not { Pending: >= 0 } r) continue;
            if (r.Cancel.IsCancellationRequested) { Finish(i, r, FinishReason.Cancelled); continue; }
            _tokens[b] = r.Pending;
            _positions[b] = r.Position;
            _batchCaches[b] = _caches[i]!;
            _rows[b++] = i;
        }
        if (b == 0) return;
        long t0 = Stopwatch.GetTimestamp();
        _model.ForwardBatch(_tokens.AsSpan(0, b), _positions.AsSpan(0, b), _batchCaches.AsSpan(0, b), _logits.AsSpan(0, b * v));
        var elapsed = Stopwatch.GetElapsedTime(t0);
        for (int j = 0; j < b; j++)
        {
            int i = _rows[j];
            var r = _slots[i]!;
            r.Stats.DecodeTime += elapsed;
            r.Stats.DecodeSteps++;
            r.Position++;
            r.Pending = -1;
            Sample(i, r, _logits.AsSpan(j * v, v));
        }
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
