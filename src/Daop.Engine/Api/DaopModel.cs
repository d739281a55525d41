using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Text.Json;
using Daop.Engine.Device.Gpu;
using Daop.Engine.Generate;
using Daop.Engine.Load;
using Daop.Engine.Load.Chat;
using Daop.Engine.Load.Config;
using Daop.Engine.Load.Safetensors;
using Daop.Engine.Load.Tokenizer;
using Daop.Engine.Model;
using Daop.Engine.Schedule;
using Daop.Kernels;

namespace Daop.Engine.Api;

/// <summary>
/// A model ready to generate text: the weights (<see cref="MoeModel"/>), its tokenizer and its chat template, loaded
/// from one Hugging Face model folder.
/// </summary>
/// <remarks>
/// <para>Thread-safe. The model runs one generation at a time; concurrent calls wait for their turn and are served in
/// the order they arrived (first come, first served). A caller whose token is cancelled while it waits leaves the queue.</para>
/// <para>All model work (loading, forward passes, disposal) runs on one thread the model owns, as GPU devices require;
/// callers only await it, so a UI thread that enumerates
/// <see cref="GenerateAsync(string, GenerationSettings?, CancellationToken)"/> stays responsive.</para>
/// </remarks>
/// <example>
/// <code>
/// using var model = DaopModel.Load("models/tiny-mixtral-code");
/// await foreach (string piece in model.GenerateAsync("def fibonacci(n):", new GenerationSettings { MaxTokens = 64 }))
///     Console.Write(piece);
/// </code>
/// </example>
public sealed partial class DaopModel : IDisposable
{
    // Turn-ending tokens of common chat formats: a chat reply also stops at these when the vocabulary has them as
    // special tokens (config.json's eos_token_id often names only the base model's end-of-text token).
    static readonly string[] EndOfTurnTokens = ["<|im_end|>", "<|eot_id|>", "<|end|>", "<|endoftext|>", "<end_of_turn>", "</s>", "<|end_of_text|>"];

    // Harmony (GPT-OSS): <|end|> ends one message of a reply (its analysis), not the reply; <|return|> (the answer) and
    // <|call|> (a tool call) end it.
    static readonly string[] HarmonyEndOfTurnTokens = [HarmonyReply.Return, HarmonyReply.Call, "<|endoftext|>"];

    readonly MoeModel _model;
    readonly ModelThread _thread;
    readonly Generator _generator;
    readonly FifoGate _gate = new();
    readonly SequenceBatcher? _batcher; // Parallel > 1
    int _pumping;
    readonly int[] _stopIds;
    readonly int[] _chatStopIds;
    int _disposed;
    int _modelDisposed;

    string[]? _tokenTexts;
    readonly IReadOnlySet<string> _shownMarkers;              // the tool-call format's markers, shown when decoding a reply with calls
    readonly IReadOnlyDictionary<int, string> _markerTokens; // token id → the marker it writes, for forced calls

    DaopModel(MoeModel model, ModelThread thread, HfTokenizer tokenizer, ChatTemplate? template, int[] generationEos, SamplingDefaults sampling,
        int parallel)
    {
        if (parallel != 1) _batcher = new SequenceBatcher(model, parallel);
        _model = model;
        SamplingDefaults = sampling;
        _thread = thread;
        Tokenizer = tokenizer;
        ChatTemplate = template;
        _generator = new Generator(model);
        int vocab = model.Config.VocabSize;
        _stopIds = model.Config.EosTokenIds.Concat(generationEos).Concat(tokenizer.EosTokenId is { } e ? [e] : [])
            .Where(id => id >= 0 && id < vocab).Distinct().ToArray();
        _chatStopIds = _stopIds.Concat((template?.ToolCallSyntax == ToolCallSyntax.Harmony ? HarmonyEndOfTurnTokens : EndOfTurnTokens)
                .Select(t => tokenizer.TokenToId(t)).OfType<int>()
                .Where(id => tokenizer.IsSpecial(id) && id < vocab))
            .Distinct().ToArray();
        Info = ModelInfo.Of(model, template != null);
        ToolCallFormat = ToolCallFormat.Of(template);
        var markers = ToolCallFormat?.Markers ?? [];
        _shownMarkers = markers.ToHashSet(StringComparer.Ordinal);
        _markerTokens = markers.Select(m => (Id: tokenizer.TokenToId(m), Marker: m)).Where(t => t.Id is { } id && id < vocab)
            .ToDictionary(t => t.Id!.Value, t => t.Marker);
    }

    /// <summary>Shape, parameter counts and sizes of the model.</summary>
    public ModelInfo Info { get; }

    /// <summary>The sampling values generation_config.json sets (<see cref="Api.SamplingDefaults.None"/> without one).</summary>
    public SamplingDefaults SamplingDefaults { get; }

    /// <summary>The tokenizer (thread-safe).</summary>
    public HfTokenizer Tokenizer { get; }

    /// <summary>The chat template, or null when the folder has none.</summary>
    public ChatTemplate? ChatTemplate { get; }

    /// <summary>
    /// The underlying model (config, weights, device). Do not run it while a generation is in progress, and on a GPU
    /// device not from another thread than the model's own.
    /// </summary>
    public MoeModel Engine => _model;

    /// <summary>
    /// When experts are offloaded (<see cref="OffloadedExpertScheduler"/> or its CPU stand-in), their counts so far
    /// (<see cref="PlacementDriver.CountsNow"/>: activations, GPU hits, CPU runs, transfers and bytes); else null.
    /// </summary>
    public OffloadStats? ExpertCounts => _model.Experts switch
    {
        OffloadedExpertScheduler o => o.Driver.CountsNow,
        CpuStandInScheduler c => c.Driver.CountsNow,
        _ => null,
    };

    /// <summary>Positions one sequence can hold: prompt tokens plus generated tokens.</summary>
    public int ContextLength => _model.ContextLength;

    /// <summary>Generations waiting for their turn (not counting the one running).</summary>
    public int QueuedGenerations => _batcher?.Waiting ?? _gate.Waiting;

    /// <summary>Generations running now: in a batch slot, or the one holding the model (0 or 1 without batching).</summary>
    public int RunningGenerations => _batcher?.Running ?? (_gate.IsHeld ? 1 : 0);

    /// <summary>Most generations that run at once (<see cref="DaopOptions.Parallel"/>).</summary>
    public int Parallel => _batcher?.Slots ?? 1;

    /// <summary>Whether a generation is running.</summary>
    public bool IsBusy => RunningGenerations > 0;

    /// <summary>Token ids that end a plain generation: config.json's and generation_config.json's eos_token_id and the tokenizer's EOS token.</summary>
    public IReadOnlyList<int> StopTokenIds => _stopIds;

    /// <summary>
    /// What fits in <paramref name="budgetBytes"/> of GPU memory if this model ran on a GPU with offloaded experts
    /// (<c>--vram-budget</c>): the dense part for one sequence of <see cref="ContextLength"/> positions and prefill chunks of
    /// <paramref name="maxChunkTokens"/> tokens, then expert slots spread evenly over the MoE layers
    /// (<see cref="Placement.SlotBudget.FromBytes"/>) after the staging slots for streamed prefill experts, each slot sized
    /// by the experts' stored format (block formats included), and for comparison the slots were they bf16. Pure
    /// arithmetic: no GPU is needed.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The budget is negative or the chunk is not positive.</exception>
    public VramPlan PlanVram(long budgetBytes, int maxChunkTokens = 256, int sequences = 1)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(budgetBytes);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxChunkTokens, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(sequences, 1);
        var c = _model.Config;
        long dense = OffloadBudget.DenseBytes(_model, maxChunkTokens, sequences);
        long kv = Daop.Engine.Model.ContextLimit.KvCacheBytes(c, _model.ContextLength);
        int moeLayers = _model.Weights.Layers.Count(l => l.Experts.Length > 0);
        if (moeLayers == 0) return new VramPlan(budgetBytes, dense, 0, new int[c.NumLayers], 0) { Sequences = sequences, KvCacheBytes = kv };
        var layout = ExpertLayout.Of(_model.Weights);
        long slot = layout.ExpertBytes, bf16 = layout.Bf16.ExpertBytes;
        int experts = moeLayers * c.NumExperts;
        // As the scheduler does: staging slots for streamed prefill experts when the budget holds enough experts of that size.
        int Staging(long bytes) => OffloadedExpertScheduler.StagingSlotsFor(budgetBytes - dense, bytes, experts);
        int[] Slots(long bytes) => budgetBytes >= dense
            ? OffloadBudget.SlotsFromBytes(c, budgetBytes - dense - Staging(bytes) * bytes, bytes) : new int[c.NumLayers];
        return new VramPlan(budgetBytes, dense, slot, Slots(slot), experts)
        {
            Bf16SlotBytes = bf16, Bf16TotalSlots = Slots(bf16).Sum(), Sequences = sequences, KvCacheBytes = kv, StagingSlots = Staging(slot),
            SlotFormats = $"gate {layout.GateType.Name()}, up {layout.UpType.Name()}, down {layout.DownType.Name()}",
        };
    }

    /// <summary>Encodes <paramref name="text"/> with the model's tokenizer.</summary>
    public int[] Tokenize(string text, bool addSpecialTokens = true) => Tokenizer.Encode(text, addSpecialTokens);

    // [V] each token's text on its own (special tokens and ids the tokenizer lacks: empty), made on first use, for
    // constrained decoding.
    string[] TokenTexts()
    {
        if (Volatile.Read(ref _tokenTexts) is { } done) return done;
        var texts = new string[_model.Config.VocabSize];
        for (int id = 0; id < texts.Length; id++) texts[id] = Tokenizer.Decode([id], skipSpecialTokens: true);
        return Interlocked.CompareExchange(ref _tokenTexts, texts, null) ?? texts;
    }

    /// <summary>
    /// The prompt text of a conversation: the chat template rendered with the generation prompt (the opening of the
    /// assistant's turn) appended.
    /// </summary>
    /// <exception cref="NotSupportedException">The model has no chat template.</exception>
    /// <exception cref="ChatTemplateException">The template rejected the conversation (e.g. roles out of order) or broke a limit.</exception>
    public string RenderChat(IReadOnlyList<ChatMessage> messages) => RenderChat(messages, CancellationToken.None);

    /// <summary>Like <see cref="RenderChat(IReadOnlyList{ChatMessage})"/>, stopping when <paramref name="cancellationToken"/> is cancelled.</summary>
    /// <exception cref="NotSupportedException">The model has no chat template.</exception>
    /// <exception cref="ChatTemplateException">The template rejected the conversation (e.g. roles out of order) or broke a limit.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    public string RenderChat(IReadOnlyList<ChatMessage> messages, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(messages);
        return Template().Render(messages, addGenerationPrompt: true, variables: null, cancellationToken);
    }

    ChatTemplate Template() => ChatTemplate ?? throw new NotSupportedException(
        $"{Info.Path}: the model has no chat template (chat_template.jinja or tokenizer_config.json chat_template)");

    /// <summary>
    /// Streams the continuation of <paramref name="prompt"/> as text pieces that concatenate to the whole
    /// continuation (each piece is complete UTF-8 text). Waits for its turn if another generation is running.
    /// </summary>
    /// <exception cref="ArgumentException">A setting is out of range, or the prompt encodes to no tokens.</exception>
    /// <exception cref="ContextOverflowException">The prompt does not leave room for one new token in the context.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled (while queued or generating).</exception>
    public IAsyncEnumerable<string> GenerateAsync(string prompt, GenerationSettings? settings = null, CancellationToken cancellationToken = default) =>
        GenerateAsync(prompt, settings, null, cancellationToken);

    /// <summary>
    /// Like <see cref="GenerateAsync(string, GenerationSettings?, CancellationToken)"/>, filling <paramref name="stats"/>
    /// (token counts, speed, why it stopped) as it goes.
    /// </summary>
    public IAsyncEnumerable<string> GenerateAsync(string prompt, GenerationSettings? settings, GenerationStats? stats, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        settings ??= GenerationSettings.Default;
        settings.Validate();
        return Run(Tokenize(prompt, settings.AddSpecialTokens), settings, _stopIds, stats, cancellationToken);
    }

    /// <summary>Streams the continuation of already-encoded prompt tokens (see <see cref="Tokenize"/>).</summary>
    public IAsyncEnumerable<string> GenerateAsync(IReadOnlyList<int> promptTokens, GenerationSettings? settings, GenerationStats? stats = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(promptTokens);
        settings ??= GenerationSettings.Default;
        settings.Validate();
        return Run(promptTokens.ToArray(), settings, _stopIds, stats, cancellationToken);
    }

    /// <summary>
    /// Streams the assistant's reply to a conversation, rendered with the model's chat template. Besides the usual stop
    /// tokens the reply ends at the chat format's end-of-turn token (e.g. &lt;|im_end|&gt;). A harmony reply (GPT-OSS) keeps
    /// its channel markers, for <see cref="HarmonyReply"/> to split it into answer, reasoning and calls.
    /// </summary>
    /// <exception cref="NotSupportedException">The model has no chat template.</exception>
    /// <exception cref="ChatTemplateException">The template rejected the conversation.</exception>
    /// <exception cref="ContextOverflowException">The conversation does not leave room for one new token in the context.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    public IAsyncEnumerable<string> ChatAsync(IReadOnlyList<ChatMessage> messages, GenerationSettings? settings = null,
        GenerationStats? stats = null, CancellationToken cancellationToken = default)
    {
        settings ??= GenerationSettings.Default;
        settings.Validate();
        if (ToolCallSyntax == ToolCallSyntax.Harmony) settings = settings with { KeepToolCallMarkers = true };
        return Run(ChatTokens(messages, cancellationToken), settings, _chatStopIds, stats, cancellationToken);
    }

    /// <summary>
    /// Like <see cref="ChatAsync(IReadOnlyList{ChatMessage}, GenerationSettings?, GenerationStats?, CancellationToken)"/>
    /// with <paramref name="tools"/> offered to the model through its chat template. The reply is the model's text, tool
    /// calls included in its syntax (their markers shown, <see cref="GenerationSettings.KeepToolCallMarkers"/>):
    /// <see cref="ToolCallFormat"/> splits it (whole or as it streams). To force a call, set
    /// <see cref="GenerationSettings.RequiredToolCall"/>.
    /// </summary>
    /// <exception cref="NotSupportedException">The model has no chat template, or its template describes no tool-call format Daop parses.</exception>
    /// <exception cref="ChatTemplateException">The template rejected the conversation, or a tool's parameters are not JSON.</exception>
    public IAsyncEnumerable<string> ChatAsync(IReadOnlyList<ChatMessage> messages, IReadOnlyList<ToolDefinition> tools,
        GenerationSettings? settings = null, GenerationStats? stats = null, CancellationToken cancellationToken = default)
    {
        settings ??= GenerationSettings.Default;
        settings.Validate();
        if (tools.Count > 0 || ToolCallSyntax == ToolCallSyntax.Harmony) settings = settings with { KeepToolCallMarkers = true };
        return Run(ChatTokens(messages, tools, cancellationToken), settings, _chatStopIds, stats, cancellationToken);
    }

    /// <summary>How the model writes tool calls, as its chat template tells (<see cref="ToolCallSyntax.None"/> without a template or a known format).</summary>
    public ToolCallSyntax ToolCallSyntax => ChatTemplate?.ToolCallSyntax ?? ToolCallSyntax.None;

    /// <summary>The format the model writes tool calls in (parsing, forcing, ids), or null when its template describes none Daop knows.</summary>
    public ToolCallFormat? ToolCallFormat { get; }

    /// <summary>The prompt tokens <see cref="ChatAsync(IReadOnlyList{ChatMessage}, GenerationSettings?, GenerationStats?, CancellationToken)"/> would feed the model for <paramref name="messages"/>.</summary>
    public int[] ChatTokens(IReadOnlyList<ChatMessage> messages) => ChatTokens(messages, CancellationToken.None);

    /// <summary>
    /// The prompt tokens for <paramref name="messages"/> with <paramref name="tools"/> offered (none: as without them).
    /// </summary>
    /// <exception cref="NotSupportedException">Tools are given and the model's template describes no tool-call format Daop parses.</exception>
    public int[] ChatTokens(IReadOnlyList<ChatMessage> messages, IReadOnlyList<ToolDefinition> tools, CancellationToken cancellationToken = default) =>
        ChatTokens(messages, tools, null, cancellationToken);

    /// <summary>
    /// The prompt tokens for <paramref name="messages"/> with <paramref name="tools"/> offered (none: as without them) and
    /// the chat template's own <paramref name="templateVariables"/> set (e.g. <c>reasoning_effort</c> for GPT-OSS,
    /// <c>enable_thinking</c> for Qwen3: vLLM's <c>chat_template_kwargs</c>); null or empty: the template's defaults.
    /// </summary>
    /// <exception cref="NotSupportedException">Tools are given and the model's template describes no tool-call format Daop parses.</exception>
    /// <exception cref="ChatTemplateException">The template rejected the conversation or a variable's value.</exception>
    /// <exception cref="ArgumentException">More than <see cref="ChatTemplateVariables.MaxCount"/> variables, or one the
    /// renderer sets itself or whose name is not an identifier (<see cref="ChatTemplateVariables.NameProblem"/>).</exception>
    public int[] ChatTokens(IReadOnlyList<ChatMessage> messages, IReadOnlyList<ToolDefinition> tools,
        IReadOnlyDictionary<string, object?>? templateVariables, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(messages);
        ArgumentNullException.ThrowIfNull(tools);
        ChatTemplateVariables.Check(templateVariables);
        var template = Template();
        if (tools.Count > 0 && ToolCallFormat == null)
            throw new NotSupportedException($"{Info.Path}: the model's chat template describes no tool-call format Daop parses ({ToolCallFormat.Known})");
        return Tokenize(template.RenderWithTools(messages, addGenerationPrompt: true, tools, templateVariables, cancellationToken), addSpecialTokens: false);
    }

    /// <summary>Like <see cref="ChatTokens(IReadOnlyList{ChatMessage})"/>; <paramref name="cancellationToken"/> stops the template's render.</summary>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    public int[] ChatTokens(IReadOnlyList<ChatMessage> messages, CancellationToken cancellationToken) =>
        Tokenize(RenderChat(messages, cancellationToken), addSpecialTokens: false);

    /// <summary>The ids at which a chat reply stops (<see cref="StopTokenIds"/> plus the end-of-turn tokens in the vocabulary).</summary>
    public IReadOnlyList<int> ChatStopTokenIds => _chatStopIds;

    /// <summary>
    /// Streams the continuation of <paramref name="promptTokens"/> stopping at <paramref name="stopTokenIds"/>: the
    /// building block of the other generate methods, for callers that render their own prompts.
    /// </summary>
    public IAsyncEnumerable<string> GenerateAsync(IReadOnlyList<int> promptTokens, IReadOnlyCollection<int> stopTokenIds,
        GenerationSettings? settings, GenerationStats? stats = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(promptTokens);
        ArgumentNullException.ThrowIfNull(stopTokenIds);
        settings ??= GenerationSettings.Default;
        settings.Validate();
        return Run(promptTokens.ToArray(), settings, stopTokenIds.ToArray(), stats, cancellationToken);
    }

    /// <summary>Throws the exception generation would throw for a prompt of <paramref name="promptTokens"/> tokens, if any.</summary>
    /// <exception cref="ArgumentException">The prompt is empty.</exception>
    /// <exception cref="ContextOverflowException">The prompt does not leave room for one new token.</exception>
    public void CheckPromptLength(int promptTokens)
    {
        if (promptTokens == 0) throw new ArgumentException("the prompt is empty: at least one token is needed");
        if (promptTokens >= ContextLength)
            throw new ContextOverflowException(
                $"the prompt has {promptTokens} tokens but the context holds {ContextLength}; shorten the prompt or raise the context length");
    }

    // The constrained decoding the settings ask for (one constraint per sequence), or null for free text.
    Func<ITokenConstraint>? Constraint(GenerationSettings s)
    {
        if (!s.JsonObject && s.JsonSchema == null && s.RequiredToolCall == null) return null;
        if (s.RequiredToolCall != null && ToolCallFormat == null)
            throw new NotSupportedException($"{Info.Path}: the model's chat template describes no tool-call format Daop can force ({ToolCallFormat.Known})");
        var texts = TokenTexts();
        if (s.JsonObject) return () => new JsonObjectConstraint(texts);
        if (s.JsonSchema is { } schema)
        {
            var grammar = JsonSchemaGrammar.Compile(schema);
            return () => new JsonSchemaConstraint(texts, grammar);
        }
        var tools = s.RequiredToolCall!;
        var names = tools.Select(t => t.Name).ToArray();
        var schemas = tools.Select(t => ToolCallConstraint.ArgumentsGrammar(t.Parameters)).ToArray();
        var format = ToolCallFormat!;
        return () => format.Constraint(texts, names, schemas, _markerTokens);
    }

    async IAsyncEnumerable<string> Run(int[] ids, GenerationSettings s, int[] stopIds, GenerationStats? stats,
        [EnumeratorCancellation] CancellationToken cancel)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        CheckPromptLength(ids.Length);
        int vocab = _model.Config.VocabSize;
        foreach (int id in ids)
            if ((uint)id >= (uint)vocab) throw new ArgumentException($"prompt token id {id} is outside the vocabulary [0, {vocab})");
        stats ??= new GenerationStats();
        // A reply with tool calls keeps the format's markers (special tokens) so the parser sees where calls begin.
        var streamer = s.KeepToolCallMarkers || s.RequiredToolCall != null ? Tokenizer.CreateStreamer(_shownMarkers) : Tokenizer.CreateStreamer();
        var stop = s.Stop is { Count: > 0 } seqs ? new StopSequenceFilter(seqs) : null;
        var sampling = s.ToSampling(stopIds) with { Constraint = Constraint(s) };
        var tokens = _batcher != null ? Batched(ids, sampling, stats, cancel) : OneAtATime(ids, sampling, stats, cancel);
        await using (var e = tokens.GetAsyncEnumerator(cancel))
        {
            while (await e.MoveNextAsync().ConfigureAwait(false))
            {
                string piece = streamer.Append(e.Current);
                if (stop != null) piece = stop.Push(piece);
                if (piece.Length > 0) yield return piece;
                if (stop?.Stopped == true)
                {
                    stats.Finish = FinishReason.Stop;
                    break;
                }
            }
        }
        if (stop?.Stopped != true)
        {
            string tail = streamer.Flush();
            if (stop != null) tail = stop.Push(tail) + stop.Flush();
            if (stop?.Stopped == true) stats.Finish = FinishReason.Stop;
            if (tail.Length > 0) yield return tail;
        }
        if (stats.Finish == FinishReason.Cancelled) throw new OperationCanceledException(cancel);
    }

    // One generation holds the model (FIFO); prefill and each decode step run on the model's thread, the caller only awaits.
    async IAsyncEnumerable<int> OneAtATime(int[] ids, SamplingOptions o, GenerationStats stats, [EnumeratorCancellation] CancellationToken cancel)
    {
        await _gate.WaitAsync(cancel).ConfigureAwait(false);
        try
        {
            ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
            cancel.ThrowIfCancellationRequested();
            using var tokens = _generator.Generate(ids, o, stats, cancel).GetEnumerator();
            while (true)
            {
                ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
                if (!await _thread.RunAsync(tokens.MoveNext).ConfigureAwait(false)) break;
                yield return tokens.Current;
            }
        }
        finally
        {
            if (Volatile.Read(ref _disposed) != 0) DisposeModel();
            _gate.Release();
        }
    }

    // The request joins the batch; the pump runs steps on the model's thread while any sequence runs or waits.
    async IAsyncEnumerable<int> Batched(int[] ids, SamplingOptions o, GenerationStats stats, [EnumeratorCancellation] CancellationToken cancel)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        cancel.ThrowIfCancellationRequested();
        var reader = _batcher!.Enqueue(ids, o, stats, cancel);
        Pump();
        if (Volatile.Read(ref _modelDisposed) != 0) _batcher.Abort(new ObjectDisposedException(nameof(DaopModel))); // raced a Dispose
        while (await reader.WaitToReadAsync(CancellationToken.None).ConfigureAwait(false))
            while (reader.TryRead(out int id))
            {
                ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
                yield return id;
            }
    }

    // Starts the step loop unless it runs; a loop that ends re-checks for work queued while it was stopping.
    void Pump()
    {
        if (Interlocked.Exchange(ref _pumping, 1) != 0) return;
        _ = Task.Run(async () =>
        {
            do
            {
                try
                {
                    while (Volatile.Read(ref _modelDisposed) == 0 && await _thread.RunAsync(_batcher!.Step).ConfigureAwait(false)) { }
                }
                catch (ObjectDisposedException) { return; } // the model thread is gone: nothing can run
                Volatile.Write(ref _pumping, 0);
            }
            while (_batcher!.Waiting > 0 && Interlocked.Exchange(ref _pumping, 1) == 0);
        });
    }

    /// <summary>
    /// The embedding of <paramref name="text"/>: the mean over its tokens (special tokens added as for a plain prompt) of
    /// the final-normed hidden states, scaled to unit length. Waits its turn behind generations, like them.
    /// </summary>
    /// <returns>A vector of <see cref="ModelInfo.HiddenSize"/> floats and the number of tokens it pooled.</returns>
    public async Task<(float[] Embedding, int Tokens)> EmbedAsync(string text, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        var ids = Tokenize(text, addSpecialTokens: true);
        if (ids.Length == 0) throw new ArgumentException("the text has no tokens to embed");
        if (ids.Length > ContextLength)
            throw new ContextOverflowException($"the text has {ids.Length} tokens but the context holds {ContextLength}");
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
            int h = _model.Config.HiddenSize;
            var hidden = new float[ids.Length * h];
            await _thread.RunAsync(() => { _model.ForwardHidden(ids, hidden); return true; }).ConfigureAwait(false);
            var mean = new float[h];
            for (int t = 0; t < ids.Length; t++) TensorPrimitives.Add(mean, hidden.AsSpan(t * h, h), mean);
            float norm = TensorPrimitives.Norm(mean);
            if (norm > 0) TensorPrimitives.Divide(mean, norm, mean);
            return (mean, ids.Length);
        }
        finally
        {
            if (Volatile.Read(ref _disposed) != 0) DisposeModel();
            _gate.Release();
        }
    }

    /// <summary>
    /// Releases the weights and the device. A generation still running ends with <see cref="ObjectDisposedException"/>
    /// before its next token and the weights are released when it does; queued generations fail the same way.
    /// </summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        if (_gate.TryEnter())
        {
            DisposeModel();
            _gate.Release();
        }
    }

    void DisposeModel()
    {
        if (Interlocked.Exchange(ref _modelDisposed, 1) != 0) return;
        _thread.Invoke(() =>
        {
            _batcher?.Abort(new ObjectDisposedException(nameof(DaopModel)));
            _model.Dispose();
            return 0;
        });
        _thread.Dispose();
    }
}
