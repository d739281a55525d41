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
public sealed class DaopModel : IDisposable
{
    // Turn-ending tokens of common chat formats: a chat reply also stops at these when the vocabulary has them as
    // special tokens (config.json's eos_token_id often names only the base model's end-of-text token).
    static readonly string[] EndOfTurnTokens = ["<|im_end|>", "<|eot_id|>", "<|end|>", "<|endoftext|>", "<end_of_turn>", "</s>", "<|end_of_text|>"];

    readonly MoeModel _model;
    readonly ModelThread _thread;
    readonly Generator _generator;
    readonly FifoGate _gate = new();
    readonly int[] _stopIds;
    readonly int[] _chatStopIds;
    int _disposed;
    int _modelDisposed;

    DaopModel(MoeModel model, ModelThread thread, HfTokenizer tokenizer, ChatTemplate? template, int[] generationEos)
    {
        _model = model;
        _thread = thread;
        Tokenizer = tokenizer;
        ChatTemplate = template;
        _generator = new Generator(model);
        int vocab = model.Config.VocabSize;
        _stopIds = model.Config.EosTokenIds.Concat(generationEos).Concat(tokenizer.EosTokenId is { } e ? [e] : [])
            .Where(id => id >= 0 && id < vocab).Distinct().ToArray();
        _chatStopIds = _stopIds.Concat(EndOfTurnTokens.Select(t => tokenizer.TokenToId(t)).OfType<int>()
                .Where(id => tokenizer.IsSpecial(id) && id < vocab))
            .Distinct().ToArray();
        Info = ModelInfo.Of(model, template != null);
    }

    /// <summary>
    /// Loads the model folder <paramref name="path"/>: config.json, the safetensors weights (memory-mapped),
    /// tokenizer.json (+ tokenizer_config.json), the chat template when there is one, and generation_config.json's
    /// end-of-sequence ids.
    /// </summary>
    /// <exception cref="ModelLoadException">A file is missing or invalid; the message names the file and field.</exception>
    /// <exception cref="ChatTemplateException">The chat template uses Jinja syntax outside the supported subset.</exception>
    /// <exception cref="ArgumentException">An option is out of range (context length, device, threads).</exception>
    /// <exception cref="DeviceNotAvailableException">The device asked for cannot run in this process.</exception>
    public static DaopModel Load(string path, DaopOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        options ??= new DaopOptions();
        if (options.ContextLength is <= 0)
            throw new ArgumentException($"the context length must be positive, got {options.ContextLength}");
        if (options.Threads is { } t)
        {
            if (t < 1) throw new ArgumentException($"threads must be >= 1, got {t}");
            try { Daop.Kernels.Cpu.CpuWorkers.Configure(t); }
            catch (InvalidOperationException e) { throw new ArgumentException(e.Message, e); }
        }
        if (!Directory.Exists(path)) throw new ModelLoadException($"{path}: model folder not found");
        path = ModelFiles.ResolveHubCache(path);
        // What is missing is reported in the order a model folder is read: config.json, the weights, then the tokenizer.
        // The tokenizer and template are loaded before the weights: they are cheap and their errors should not wait.
        string config = Path.Combine(path, "config.json");
        if (!File.Exists(config)) throw new ModelLoadException($"{config}: file not found (a model folder holds config.json, *.safetensors weights and tokenizer.json)");
        TensorStore.CheckHasWeights(path);
        var tokenizer = HfTokenizer.FromDirectory(path);
        var template = ChatTemplate.FromDirectory(path, options.ChatTemplateLimits ?? ChatTemplateLimits.Default);
        int[] generationEos = ReadGenerationEos(path);
        var engineOptions = EngineOptions(options);
        var thread = new ModelThread($"daop model {MoeModel.FolderName(path)}");
        MoeModel? model = null;
        try
        {
            model = thread.Invoke(() => MoeModel.Load(path, engineOptions));
            CheckVocabulary(path, tokenizer, model.Config);
            return new DaopModel(model, thread, tokenizer, template, generationEos);
        }
        catch
        {
            if (model != null) thread.Invoke(() => { model.Dispose(); return 0; });
            thread.Dispose();
            throw;
        }
    }

    // Every id the tokenizer can produce must have an embedding row and a logit; otherwise the model loads and then
    // every request that meets such a token fails. (A larger embedding than vocabulary is common: padded tables.)
    static void CheckVocabulary(string dir, HfTokenizer tokenizer, ModelConfig config)
    {
        if (tokenizer.VocabSize > config.VocabSize)
            throw new ModelLoadException($"{Path.Combine(dir, "tokenizer.json")}: the tokenizer has ids up to {tokenizer.VocabSize - 1}, " +
                $"but the model's vocabulary (vocab_size in {config.Path}, the rows of the embedding) has {config.VocabSize}: " +
                "the tokenizer does not belong to these weights");
    }

    static ModelOptions EngineOptions(DaopOptions o)
    {
        if (o.Engine is { } e) return e.ContextLength == null ? e with { ContextLength = o.ContextLength } : e;
        if (o.Device == "cpu") return new ModelOptions { ContextLength = o.ContextLength };
        if (o.Device is not ("cuda" or "ilgpu-cpu"))
            throw new ArgumentException($"device must be 'cpu', 'cuda' or 'ilgpu-cpu', got '{o.Device}'");
        // Constant false when ahead-of-time compiled: the compiler then drops the GPU path and ILGPU with it.
        if (!RuntimeFeature.IsDynamicCodeSupported)
            throw new DeviceNotAvailableException(
                $"device '{o.Device}' needs the JIT runtime (ILGPU generates code at run time); this binary is ahead-of-time compiled: use 'cpu'");
        return GpuOptions(o);
    }

    static ModelOptions GpuOptions(DaopOptions o) => new()
    {
        ContextLength = o.ContextLength,
        Device = _ => CreateGpu(o.Device),
        Experts = (m, d) => new GpuExpertScheduler(m, d),
    };

    static GpuDevice CreateGpu(string device)
    {
        var dev = GpuDevice.Create(preferCuda: device == "cuda");
        if (device == "cuda" && !dev.Name.StartsWith("cuda", StringComparison.Ordinal))
        {
            dev.Dispose();
            throw new DeviceNotAvailableException("device 'cuda': no CUDA GPU was found; use 'cpu'");
        }
        return dev;
    }

    static int[] ReadGenerationEos(string dir)
    {
        string file = Path.Combine(dir, "generation_config.json");
        if (!File.Exists(file)) return [];
        try
        {
            using var doc = JsonDocument.Parse(ModelFiles.ReadAll(file, ModelFiles.MaxConfigBytes));
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new ModelLoadException($"{file}: must be a JSON object");
            if (!doc.RootElement.TryGetProperty("eos_token_id", out var eos) || eos.ValueKind == JsonValueKind.Null) return [];
            var items = eos.ValueKind == JsonValueKind.Array ? eos.EnumerateArray().ToArray() : [eos];
            return items.Select(x => x.ValueKind == JsonValueKind.Number && x.TryGetInt32(out int id)
                ? id
                : throw new ModelLoadException($"{file}: field 'eos_token_id' must be an integer or a list of integers, found {eos.GetRawText()}")).ToArray();
        }
        catch (JsonException e)
        {
            throw new ModelLoadException($"{file}: not valid JSON ({e.Message})");
        }
    }

    /// <summary>Shape, parameter counts and sizes of the model.</summary>
    public ModelInfo Info { get; }

    /// <summary>The tokenizer (thread-safe).</summary>
    public HfTokenizer Tokenizer { get; }

    /// <summary>The chat template, or null when the folder has none.</summary>
    public ChatTemplate? ChatTemplate { get; }

    /// <summary>
    /// The underlying model (config, weights, device). Do not run it while a generation is in progress, and on a GPU
    /// device not from another thread than the model's own.
    /// </summary>
    public MoeModel Engine => _model;

    /// <summary>Positions one sequence can hold: prompt tokens plus generated tokens.</summary>
    public int ContextLength => _model.ContextLength;

    /// <summary>Generations waiting for their turn (not counting the one running).</summary>
    public int QueuedGenerations => _gate.Waiting;

    /// <summary>Whether a generation is running.</summary>
    public bool IsBusy => _gate.IsHeld;

    /// <summary>Token ids that end a plain generation: config.json's and generation_config.json's eos_token_id and the tokenizer's EOS token.</summary>
    public IReadOnlyList<int> StopTokenIds => _stopIds;

    /// <summary>
    /// What fits in <paramref name="budgetBytes"/> of GPU memory if this model ran on a GPU with offloaded experts
    /// (<c>--vram-budget</c>): the dense part for one sequence of <see cref="ContextLength"/> positions and prefill chunks of
    /// <paramref name="maxChunkTokens"/> tokens, then expert slots spread evenly over the MoE layers
    /// (<see cref="Placement.SlotBudget.FromBytes"/>). Pure arithmetic: no GPU is needed.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The budget is negative or the chunk is not positive.</exception>
    public VramPlan PlanVram(long budgetBytes, int maxChunkTokens = 256)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(budgetBytes);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxChunkTokens, 1);
        var c = _model.Config;
        long dense = OffloadBudget.DenseBytes(_model, maxChunkTokens);
        int moeLayers = _model.Weights.Layers.Count(l => l.Experts.Length > 0);
        if (moeLayers == 0) return new VramPlan(budgetBytes, dense, 0, new int[c.NumLayers], 0);
        long slot = ExpertLayout.Of(_model.Weights).ExpertBytes;
        int[] slots = budgetBytes >= dense ? OffloadBudget.SlotsFromBytes(c, budgetBytes - dense, slot) : new int[c.NumLayers];
        return new VramPlan(budgetBytes, dense, slot, slots, moeLayers * c.NumExperts);
    }

    /// <summary>Encodes <paramref name="text"/> with the model's tokenizer.</summary>
    public int[] Tokenize(string text, bool addSpecialTokens = true) => Tokenizer.Encode(text, addSpecialTokens);

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
        var template = ChatTemplate ?? throw new NotSupportedException(
            $"{Info.Path}: the model has no chat template (chat_template.jinja or tokenizer_config.json chat_template)");
        return template.Render(messages, addGenerationPrompt: true, variables: null, cancellationToken);
    }

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
    /// tokens the reply ends at the chat format's end-of-turn token (e.g. &lt;|im_end|&gt;).
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
        return Run(ChatTokens(messages, cancellationToken), settings, _chatStopIds, stats, cancellationToken);
    }

    /// <summary>The prompt tokens <see cref="ChatAsync"/> would feed the model for <paramref name="messages"/>.</summary>
    public int[] ChatTokens(IReadOnlyList<ChatMessage> messages) => ChatTokens(messages, CancellationToken.None);

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

    async IAsyncEnumerable<string> Run(int[] ids, GenerationSettings s, int[] stopIds, GenerationStats? stats,
        [EnumeratorCancellation] CancellationToken cancel)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        CheckPromptLength(ids.Length);
        int vocab = _model.Config.VocabSize;
        foreach (int id in ids)
            if ((uint)id >= (uint)vocab) throw new ArgumentException($"prompt token id {id} is outside the vocabulary [0, {vocab})");
        stats ??= new GenerationStats();
        await _gate.WaitAsync(cancel).ConfigureAwait(false);
        try
        {
            ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
            cancel.ThrowIfCancellationRequested();
            var streamer = Tokenizer.CreateStreamer();
            var stop = s.Stop is { Count: > 0 } seqs ? new StopSequenceFilter(seqs) : null;
            using var tokens = _generator.Generate(ids, s.ToSampling(stopIds), stats, cancel).GetEnumerator();
            while (true)
            {
                ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
                // Prefill and each decode step run on the model's thread; the caller's thread only awaits.
                if (!await _thread.RunAsync(tokens.MoveNext).ConfigureAwait(false)) break;
                string piece = streamer.Append(tokens.Current);
                if (stop != null) piece = stop.Push(piece);
                if (piece.Length > 0) yield return piece;
                if (stop?.Stopped == true)
                {
                    stats.Finish = FinishReason.Stop;
                    break;
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
            _model.Dispose();
            return 0;
        });
        _thread.Dispose();
    }
}
