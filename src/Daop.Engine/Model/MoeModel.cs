using System.Numerics.Tensors;
using Daop.Engine.Device;
using Daop.Engine.Device.Cpu;
using Daop.Engine.Load;
using Daop.Engine.Load.Config;
using Daop.Engine.Load.Gguf;
using Daop.Engine.Load.Safetensors;
using Daop.Engine.Model.Families;
using Daop.Engine.Model.Layers;
using Daop.Engine.Schedule;

namespace Daop.Engine.Model;

/// <summary>
/// A loaded MoE decoder: config, memory-mapped weights, the device it computes on and the expert scheduler.
/// <see cref="Forward"/> is the whole model, top to bottom. One sequence runs at a time; each has its own
/// <see cref="KvCache"/>.
/// </summary>
public sealed partial class MoeModel : IDisposable
{
    readonly IDisposable _owner;
    RunState _s = null!;
    RopeTable[] _rope = []; // per layer (layers with the same RoPE share one table)
    float[]? _checkBuffer; // [T, H] host copy of the residual stream, only with ModelOptions.CheckFinite
    SequenceBatch? _batch;     // ForwardBatch's segments [MaxTokens], made on first use
    BatchSegment[]? _segments; // the one-token-per-sequence overload's segments [MaxTokens]

    /// <summary>The folder the model came from.</summary>
    public string Directory { get; }
    /// <summary>The model's name: its folder's name.</summary>
    public string Name => FolderName(Directory);

    /// <summary>The name of the folder <paramref name="dir"/> (a trailing separator ignored), which names the model in logs and reports.</summary>
    public static string FolderName(string dir) => Path.GetFileName(Path.TrimEndingDirectorySeparator(dir));
    /// <summary>Parsed config.</summary>
    public ModelConfig Config { get; }
    /// <summary>The family that read it.</summary>
    public IModelFamily Family { get; }
    /// <summary>Weights (views into the checkpoint).</summary>
    public ModelWeights Weights { get; }
    /// <summary>The compute device.</summary>
    public IDevice Device { get; private set; } = null!;
    /// <summary>Where experts run.</summary>
    public IExpertScheduler Experts { get; private set; } = null!;
    /// <summary>Positions each sequence can hold.</summary>
    public int ContextLength { get; private set; }
    /// <summary>Most tokens one forward chunk holds (<see cref="ModelOptions.MaxChunkTokens"/>, at most the context): what expert schedulers must size for.</summary>
    public int MaxChunkTokens { get; private set; }
    /// <summary>What converting weights at load cost (<see cref="ModelOptions.ExpertDType"/>, <see cref="ModelOptions.DenseDType"/>), or null when nothing was converted.</summary>
    public WeightConversion? Conversion { get; private init; }
    /// <summary>
    /// Σ over MoE layer calls of the distinct experts each call's tokens route to: the expert matrices the model had to
    /// read at least once (a batch reads an expert once for all its tokens). Exact where routing runs on the host; a
    /// decode call routed on the GPU (up to two tokens) counts its tokens × top-k, at most the layer's experts.
    /// </summary>
    public long ExpertReads => _s.ExpertReads;
    /// <summary>Routing callbacks, if any (null in normal generation).</summary>
    public IRoutingObserver? Observer { get; set; }

    // The decode step RunStep replays (MoeModel.Forward): its token, position and cache, and whether every MoE layer
    // routes on the device (softmax top-k, SwiGLU experts) so that the step never waits for the host.
    readonly int[] _stepToken = new int[1];
    int _stepStart;
    KvCache? _stepCache;
    readonly BatchSegment[] _lone = new BatchSegment[1];                        // a one-sequence chunk as a step's segments
    Action? _decodeStep;
    bool _decodeRoutesOnDevice;

    MoeModel(string dir, ModelConfig config, IModelFamily family, IDisposable owner, ModelWeights weights)
    {
        Directory = dir; Config = config; Family = family; _owner = owner; Weights = weights;
    }

    /// <summary>
    /// Loads config.json and the safetensors weights of <paramref name="dir"/>: memory-mapped as stored (a
    /// <c>daop quantize</c> checkpoint's block-format tensors too), converted at load where <see cref="ModelOptions.ExpertDType"/>
    /// or <see cref="ModelOptions.DenseDType"/> ask for another type (<see cref="Conversion"/> says what that cost).
    /// </summary>
    public static MoeModel Load(string dir, ModelOptions? options = null)
    {
        options ??= new ModelOptions();
        if (GgufSplits.Find(dir) is { } gguf) return LoadGguf(gguf, options); // a .gguf file, or a folder of one
        if (!System.IO.Directory.Exists(dir)) throw new ModelLoadException($"{dir}: model folder not found");
        dir = ModelFiles.ResolveHubCache(dir);
        var (family, config) = ModelFamilies.ReadConfig(Path.Combine(dir, "config.json"));
        var classes = new WeightClasses(config, family.Names);
        var store = TensorStore.OpenDirectory(dir);
        if (config.Quantization is { } q) store.WithBlockFormats(name => q.For(classes.Of(name)));
        ITensorSource source = Converting(family.Tensors(store, config), classes, options);
        try
        {
            ModelWeights weights;
            try
            {
                weights = ModelWeights.Load(source, config, family.Names);
            }
            catch (ModelLoadException e) when (e.MissingTensor != null)
            {
                // Usually the config, not the checkpoint, is wrong (layer or expert counts, dense layers, model_type).
                throw new ModelLoadException($"{e.Message}, which {config.Path} ({config.ModelType}, {config.NumLayers} layers, " +
                    $"{config.NumExperts} experts) calls for: the config does not match the checkpoint", e);
            }
            var model = new MoeModel(dir, config, family, source, weights) { Conversion = ConversionOf(source) };
            model.Start(options);
            return model;
        }
        catch
        {
            source.Dispose();
            throw;
        }
    }

    /// <summary>
    /// A model over weights from any <see cref="ITensorSource"/> (synthetic weights for benchmarks); the
    /// model owns and disposes the source. <see cref="ModelOptions.ExpertDType"/> and <see cref="ModelOptions.DenseDType"/> apply.
    /// </summary>
    public static MoeModel FromSource(string name, string configPath, ITensorSource source, ModelOptions? options = null,
        Func<ModelConfig, ModelConfig>? adjust = null)
    {
        options ??= new ModelOptions();
        try
        {
            var (family, config) = ModelFamilies.ReadConfig(configPath);
            if (adjust != null) config = adjust(config);
            source = Converting(source, new WeightClasses(config, family.Names), options);
            var model = new MoeModel(name, config, family, source, ModelWeights.Load(source, config, family.Names))
            {
                Conversion = ConversionOf(source),
            };
            model.Start(options);
            return model;
        }
        catch
        {
            source.Dispose();
            throw;
        }
    }

    static WeightConversion? ConversionOf(ITensorSource source) =>
        source is ConvertingTensorSource { Report: { Matrices: > 0 } r } ? r : null;

    // The source itself, or a converting one over it when the options ask for other stored types.
    static ITensorSource Converting(ITensorSource source, WeightClasses classes, ModelOptions o) =>
        o.ExpertDType == null && o.DenseDType == null ? source : new ConvertingTensorSource(source, classes.Of, o.ExpertDType, o.DenseDType);

    void Start(ModelOptions o)
    {
        int ctx = o.ContextLength ?? Math.Min(Config.MaxPositions, 4096);
        ContextLimit.Check(Config, ctx, kvOnHost: o.Device == null);
        ContextLength = ctx;
        int chunk = Math.Clamp(o.MaxChunkTokens, 1, ctx);
        MaxChunkTokens = chunk;
        Device = o.Device?.Invoke(this) ?? new CpuDevice();
        try
        {
            Device.CheckFormats(Weights);
        }
        catch
        {
            Device.Dispose();
            throw;
        }
        Experts = o.Experts?.Invoke(this, Device) ?? new LocalExpertScheduler(Weights, Config.HiddenSize, Config.NumExperts,
            Config.TopK, Config.ExpertIntermediate, chunk);
        _s = new RunState(Device, Config, chunk);
        _rope = RopeTables(ctx);
        _checkBuffer = o.CheckFinite ? new float[chunk * Config.HiddenSize] : null;
        _decodeRoutesOnDevice = Weights.Layers.All(l => l.Ffn is not MoeBlock m
            || (m.Router != null && m.Spec.Router.DeviceRenormalize != null && m.Spec.Act is (Activation.SwiGlu or Activation.ClampedSwiGlu)));
        if (o.WarmUp && Experts is GpuExpertScheduler) WarmUpKernels();
    }

    // A prompt of up to 16 tokens (the batched kernels), then one decode step (the single-token ones), through a scratch
    // cache that is freed after; the outputs are dropped. Leaves no state behind: the next sequence starts at position 0.
    void WarmUpKernels()
    {
        int n = Math.Min(16, Math.Min(MaxChunkTokens, ContextLength - 1));
        var tokens = new int[n + 1];
        for (int i = 0; i < tokens.Length; i++) tokens[i] = i % Config.VocabSize;
        var logits = new float[Config.VocabSize];
        var cache = NewCache(n + 1);
        try
        {
            if (n > 0) Forward(tokens.AsSpan(0, n), 0, cache, logits);
            Forward(tokens.AsSpan(n, 1), n, cache, logits);
        }
        finally
        {
            (cache as IDisposable)?.Dispose();
        }
    }

    // One RoPE table per distinct (spec, rotated head width) over the layers' attention: [ctx, rot/2] cos and sin each.
    RopeTable[] RopeTables(int ctx)
    {
        var tables = new Dictionary<(RopeSpec, int), RopeTable>();
        var byLayer = new RopeTable[Config.NumLayers];
        for (int l = 0; l < byLayer.Length; l++)
        {
            var a = Config.Layers[l].Attention;
            if (!tables.TryGetValue((a.Rope, a.RopeDim), out var table))
                tables[(a.Rope, a.RopeDim)] = table = new RopeTable(a.Rope, a.RopeDim, ctx, Config.MaxPositions);
            byLayer[l] = table;
        }
        return byLayer;
    }

    /// <summary>
    /// Replaces the expert scheduler (e.g. to compare placement policies on one loaded model); the previous one is
    /// disposed if it is disposable. The factory gets the model and its device.
    /// </summary>
    public void UseExperts(Func<MoeModel, IDevice, IExpertScheduler> factory)
    {
        (Experts as IDisposable)?.Dispose();
        Experts = null!;
        Experts = factory(this, Device);
    }

    /// <summary>A fresh KV cache for one sequence of up to <paramref name="positions"/> positions (default: the context).</summary>
    public KvCache NewCache(int? positions = null)
    {
        int n = positions ?? ContextLength;
        if (n < 1 || n > ContextLength) throw new ArgumentOutOfRangeException(nameof(positions), $"a cache holds 1 to {ContextLength} positions, not {n}");
        // Multi-head latent attention caches one compressed stream (c, k_pe) per position instead of K and V.
        return Config.Attention is AttentionSpec.Mla
            ? Device.CreateLatentCache(Config.NumLayers, n, Config.KvCacheWidth)
            : Device.CreateKvCache(Config.NumLayers, n, Config.KvWidth);
    }

    /// <summary>
    /// <paramref name="count"/> fresh KV caches of up to <paramref name="positions"/> positions (default: the context) for
    /// sequences that share batched steps (the server's parallel slots): on the GPU one pool, so that a step's attention
    /// is one launch per layer for all of them.
    /// </summary>
    public KvCache[] NewCaches(int count, int? positions = null)
    {
        if (count < 1) throw new ArgumentOutOfRangeException(nameof(count), $"at least one cache, not {count}");
        int n = positions ?? ContextLength;
        if (n < 1 || n > ContextLength) throw new ArgumentOutOfRangeException(nameof(positions), $"a cache holds 1 to {ContextLength} positions, not {n}");
        if (Config.Attention is AttentionSpec.Mla)                              // latent caches run per sequence
        {
            var caches = new KvCache[count];
            for (int i = 0; i < count; i++) caches[i] = Device.CreateLatentCache(Config.NumLayers, n, Config.KvCacheWidth);
            return caches;
        }
        return Device.CreateKvCaches(Config.NumLayers, n, Config.KvWidth, count);
    }

    /// <summary>
    /// Runs <paramref name="tokens"/> from position 0 through the model and writes the final-normed hidden state of every
    /// position to <paramref name="hidden"/> [T, H] (what the LM head reads; embeddings pool it). Uses a cache of T positions.
    /// </summary>
    public void ForwardHidden(ReadOnlySpan<int> tokens, Span<float> hidden)
    {
        int h = Config.HiddenSize, t = tokens.Length;
        if (t == 0 || t > ContextLength) throw new ArgumentOutOfRangeException(nameof(tokens), $"{t} tokens: 1 to {ContextLength} fit the context");
        if (hidden.Length < t * h) throw new ArgumentException($"hidden holds {hidden.Length} floats, need {t}x{h}", nameof(hidden));
        var cache = NewCache(t);
        for (int done = 0; done < t; done += _s.MaxTokens)
        {
            int n = Math.Min(_s.MaxTokens, t - done);
            ForwardChunk(tokens.Slice(done, n), done, cache, n);
            Device.Copy(_s.X, 0, _s.Xn, 0, n * h);
            Device.Norm(Weights.FinalNorm, _s.Xn, _s.Xn, n);                  // [n, H]
            Device.CopyToHost(_s.Xn, 0, hidden.Slice(done * h, n * h));
        }
    }

    /// <summary>
    /// Runs <paramref name="tokens"/> at positions startPos.. through the model, appending to
    /// <paramref name="cache"/>. Writes logits [T, V] when <paramref name="allLogits"/>, else only the last
    /// token's [V].
    /// </summary>
    public void Forward(ReadOnlySpan<int> tokens, int startPos, KvCache cache, Span<float> logits, bool allLogits = false)
    {
        int v = Config.VocabSize;
        if (startPos < 0 || startPos + tokens.Length > cache.Capacity)
            throw new ArgumentOutOfRangeException(nameof(tokens),
                $"positions {startPos}..{startPos + tokens.Length - 1} do not fit the context of {cache.Capacity}");
        if (logits.Length < (allLogits ? tokens.Length * v : v))
            throw new ArgumentException($"logits holds {logits.Length} floats, need {(allLogits ? tokens.Length : 1)}x{v}", nameof(logits));
        if (tokens.Length == 1 && !allLogits && Device.StepGraphs && Observer == null && _checkBuffer == null
            && Experts.DecodeStepQueuesOnly && _decodeRoutesOnDevice)
        {
            // A decode step that only queues GPU work: captured and replayed as one graph, the logits read after it.
            (_stepToken[0], _stepStart, _stepCache) = (tokens[0], startPos, cache);
            Device.RunStep(_decodeStep ??= DecodeStep);
            _stepCache = null;
            LmHeadRead(1, logits[..v], startPos);
            return;
        }
        for (int done = 0; done < tokens.Length; done += _s.MaxTokens)
        {
            int n = Math.Min(_s.MaxTokens, tokens.Length - done);
            bool last = done + n == tokens.Length;
            int lastRow = ForwardChunk(tokens.Slice(done, n), startPos + done, cache, allLogits ? n : last ? 1 : 0);
            if (allLogits) LmHead(0, n, logits.Slice(done * v, n * v), startPos + done);
            else if (last) LmHead(lastRow, 1, logits[..v], startPos + done);
        }
    }

    /// <summary>
    /// One decode step of B independent sequences: token b at position <paramref name="positions"/>[b] of
    /// <paramref name="caches"/>[b]; writes logits [B, V]. <see cref="ForwardBatch(ReadOnlySpan{int}, ReadOnlySpan{BatchSegment}, Span{float})"/>
    /// with one token per sequence.
    /// </summary>
    public void ForwardBatch(ReadOnlySpan<int> tokens, ReadOnlySpan<int> positions, ReadOnlySpan<KvCache> caches, Span<float> logits)
    {
        int b = tokens.Length;
        if (positions.Length != b || caches.Length != b)
            throw new ArgumentException($"{b} tokens, {positions.Length} positions and {caches.Length} caches: one each per sequence");
        if (b > _s.MaxTokens) throw new ArgumentException($"a batch of {b} sequences exceeds the chunk of {_s.MaxTokens} tokens", nameof(tokens));
        var segments = _segments ??= new BatchSegment[_s.MaxTokens];
        for (int i = 0; i < b; i++) segments[i] = new BatchSegment(caches[i], positions[i], 1);
        ForwardBatch(tokens, segments.AsSpan(0, b), logits);
    }

    /// <summary>
    /// One step of several independent sequences (continuous batching): <paramref name="tokens"/> holds each segment's
    /// tokens in turn (decode tokens and prompt chunks alike), each run at its own positions of its own cache and
    /// appended to it. Writes logits [S, V] for the last token of each of the S segments that ask for them, in order.
    /// Dense matrices and experts are read once for the whole step (experts grouped across sequences); on the GPU, RoPE
    /// and attention are one launch per layer for caches of one pool (<see cref="NewCaches"/>), one per pool otherwise. At most <see cref="MaxChunkTokens"/> tokens in all; one segment per cache.
    /// </summary>
    public void ForwardBatch(ReadOnlySpan<int> tokens, ReadOnlySpan<BatchSegment> segments, Span<float> logits)
    {
        int t = tokens.Length, v = Config.VocabSize, wanted = 0, total = 0;
        if (segments.Length == 0 && t == 0) return;
        if (t > _s.MaxTokens) throw new ArgumentException($"a batch of {t} tokens exceeds the chunk of {_s.MaxTokens} tokens", nameof(tokens));
        for (int i = 0; i < segments.Length; i++)
        {
            var s = segments[i];
            if (s.Cache == null) throw new ArgumentNullException(nameof(segments), $"segment {i}: its cache is null");
            if (s.Tokens < 1) throw new ArgumentOutOfRangeException(nameof(segments), $"segment {i}: {s.Tokens} tokens (at least 1)");
            if (s.StartPos < 0 || s.StartPos + s.Tokens > s.Cache.Capacity)
                throw new ArgumentOutOfRangeException(nameof(segments),
                    $"segment {i}: position {(s.StartPos < 0 ? s.StartPos : s.StartPos + s.Tokens - 1)} does not fit its context of {s.Cache.Capacity}");
            for (int j = 0; j < i; j++)
                if (ReferenceEquals(segments[j].Cache, s.Cache)) throw new ArgumentException($"segments {j} and {i} share a cache: one segment per sequence", nameof(segments));
            total += s.Tokens;
            if (s.Logits) wanted++;
        }
        if (total != t) throw new ArgumentException($"the segments hold {total} tokens, {t} were given", nameof(tokens));
        if (logits.Length < wanted * v) throw new ArgumentException($"logits holds {logits.Length} floats, need {wanted}x{v}", nameof(logits));
        if (segments.Length == 1)
        {
            // One sequence: exactly Forward's chunk (a decode step keeps its next-layer prediction).
            var s = segments[0];
            int last = ForwardChunk(tokens, s.StartPos, s.Cache, wanted);
            if (wanted > 0) LmHead(last, 1, logits[..v], s.StartPos);
            return;
        }
        if (!Experts.BatchesSequences)
            throw new NotSupportedException($"the expert scheduler ({Experts.Description}) runs one sequence at a time (a replayed routing trace routes by position)");
        if (Observer != null) throw new NotSupportedException("a routing observer records one sequence; batched steps are not recorded");
        var batch = _batch ??= new SequenceBatch(_s.MaxTokens);
        batch.Set(segments);
        ForwardChunk(tokens, segments[0].StartPos, segments[0].Cache, wanted, batch);
        LmHead(0, wanted, logits[..(wanted * v)], segments[0].StartPos);
    }

    // embed → per layer { x += Attn(norm(x)); x += FFN(norm(x)) } → final norm (in LmHead). Only `keep` rows of the
    // output are read: without a batch the last 0, 1 or T; with one, its logit rows. When the scheduler allows it and no
    // observer wants every token's routing, the last layer's FFN runs on those rows alone, moved to the front (the KV
    // entries are written by then). Returns the row of x that holds the chunk's last token; with a batch, its logit
    // rows are rows 0.. on return.
    int ForwardChunk(ReadOnlySpan<int> tokens, int startPos, KvCache cache, int keep, SequenceBatch? batch = null)
    {
        var d = Device;
        int t = tokens.Length, h = Config.HiddenSize, lastLayer = Config.NumLayers - 1;
        bool prune = keep < t && (keep <= 1 || batch != null) && Observer == null && Experts.AllowsLastLayerPruning;
        if (batch != null) Experts.BeginBatch(t, batch.Prompt);
        else Experts.BeginChunk(startPos, t);
        d.Embed(tokens, Weights.Embed, _s.X);                                   // x [T, H]
        _lone[0] = new BatchSegment(cache, startPos, t);
        d.BeginStep(batch != null ? batch.Segments : _lone);                    // each token's cache and position, once per chunk
        if (Config.EmbeddingScale != 1) d.Scale(_s.X, t * h, Config.EmbeddingScale);
        CheckResidual(t, startPos, null, "embedding");
        // Each residual add is fused with the norm after it (one launch on the GPU) unless a check or the last layer's
        // pruning comes between them; `pending` says x still lacks the previous sublayer's out.
        bool pending = false, split = _checkBuffer != null;
        int rows = t;
        for (int l = 0; l < Config.NumLayers; l++)
        {
            var w = Weights.Layers[l];
            AddNorm(w.AttnNorm, t, ref pending);                                // x += ffn; xn = norm(x) [T, H]
            w.Attention.Forward(new LayerStep(d, _s, l, t, startPos, batch), _rope[l], cache); // out [T, H]
            ScaleBranch(t);
            pending = true;                                                     // x += attn
            if (split || (l == lastLayer && prune))
            {
                d.Add(_s.X, _s.Out, t * h);
                pending = false;
                CheckResidual(t, startPos, l, "attention");
            }
            if (l == lastLayer && prune)
            {
                if (keep == 0) return 0;
                if (batch != null) batch.GatherLogitRows(d, _s.X, h);            // x [keep, H]: the logit rows
                else d.Copy(_s.X, (t - 1) * h, _s.X, 0, h);                     // x [1, H]: the last token only
                rows = keep;
            }
            int first = startPos + t - rows;
            AddNorm(w.FfnNorm, rows, ref pending);                              // xn [rows, H]
            w.Ffn.Forward(new LayerStep(d, _s, l, rows, first), Experts, Observer); // out [rows, H]: MoE block or dense MLP
            ScaleBranch(rows);
            pending = true;                                                     // x += ffn
            if (split)
            {
                d.Add(_s.X, _s.Out, rows * h);
                pending = false;
                CheckResidual(rows, first, l, w.Ffn.Stage);
            }
        }
        if (pending) d.Add(_s.X, _s.Out, rows * h);
        if (batch != null && !prune) batch.GatherLogitRows(d, _s.X, h);
        return prune ? 0 : t - 1;
    }

    // out [rows, H] *= the residual multiplier, where the model has one (Granite).
    void ScaleBranch(int rows)
    {
        if (Config.ResidualScale != 1) Device.Scale(_s.Out, rows * Config.HiddenSize, Config.ResidualScale);
    }

    // xn = norm(x) over `rows` rows, adding the previous sublayer's out to x first when it is pending.
    void AddNorm(NormWeights norm, int rows, ref bool pending)
    {
        if (pending) Device.AddNorm(norm, _s.X, _s.Out, _s.Xn, rows);
        else Device.Norm(norm, _s.X, _s.Xn, rows);
        pending = false;
    }

    // With ModelOptions.CheckFinite: the residual stream x [T, H] after a step must be finite.
    void CheckResidual(int t, int startPos, int? layer, string stage)
    {
        if (_checkBuffer == null) return;
        int n = t * Config.HiddenSize;
        Device.CopyToHost(_s.X, 0, _checkBuffer.AsSpan(0, n));
        NonFiniteException.ThrowIfAny(_checkBuffer.AsSpan(0, n), Config.HiddenSize, startPos, layer, stage);
    }

    // final norm and lm_head for rows [first, first+n) of the last chunk, LogitRows at a time
    void LmHead(int first, int n, Span<float> dst, int startPos)
    {
        int v = Config.VocabSize;
        for (int i = 0; i < n; i += RunState.LogitRows)
        {
            int m = Math.Min(RunState.LogitRows, n - i);
            LmHeadQueue(first + i, m);
            LmHeadRead(m, dst.Slice(i * v, m * v), startPos + first + i);
        }
    }

    // logits [m, V] = lm_head(norm(x[first..first+m))) on the device
    void LmHeadQueue(int first, int m)
    {
        var d = Device;
        int h = Config.HiddenSize;
        d.Copy(_s.X, first * h, _s.Xn, 0, m * h);
        d.Norm(Weights.FinalNorm, _s.Xn, _s.Xn, m);
        d.Linear(Weights.LmHead, _s.Xn, _s.Logits, m);                          // [m, V]
    }

    // the device logits [m, V] into dst (waits for the device), scaled and checked
    void LmHeadRead(int m, Span<float> dst, int position)
    {
        int v = Config.VocabSize;
        Device.CopyToHost(_s.Logits, 0, dst[..(m * v)]);
        if (Config.LmHead.Scale != 1) TensorPrimitives.Multiply(dst[..(m * v)], Config.LmHead.Scale, dst[..(m * v)]);
        NonFiniteException.ThrowIfAny(dst[..(m * v)], v, position, null, "logits");
    }

    // One decode step's device work, for IDevice.RunStep (state in the _step fields: no closure per token).
    void DecodeStep() => LmHeadQueue(ForwardChunk(_stepToken, _stepStart, _stepCache!, 1), 1);

    /// <inheritdoc />
    public void Dispose()
    {
        (Experts as IDisposable)?.Dispose();
        Device?.Dispose();
        _owner.Dispose();
    }
}
