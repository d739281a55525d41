using Daop.Engine.Load;
using Daop.Engine.Model;
using Daop.Kernels;

namespace Daop.Engine.Api;

/// <summary>What a loaded model is: its shape, parameter counts and how many bytes its parts take in their stored dtype.</summary>
public sealed record ModelInfo
{
    /// <summary>The model folder's name.</summary>
    public required string Name { get; init; }
    /// <summary>The model folder.</summary>
    public required string Path { get; init; }
    /// <summary>config.json's model_type ("mixtral", "qwen3_moe", ...).</summary>
    public required string Architecture { get; init; }
    /// <summary>Decoder layers.</summary>
    public required int Layers { get; init; }
    /// <summary>Decoder layers with a mixture-of-experts block (the others have a dense MLP).</summary>
    public required int MoeLayers { get; init; }
    /// <summary>Routed experts per MoE layer.</summary>
    public required int Experts { get; init; }
    /// <summary>Experts each token is routed to.</summary>
    public required int ExpertsPerToken { get; init; }
    /// <summary>Whether each MoE layer also has an always-active shared expert.</summary>
    public required bool SharedExpert { get; init; }
    /// <summary>Model width.</summary>
    public required int HiddenSize { get; init; }
    /// <summary>Intermediate width of one routed expert.</summary>
    public required int ExpertIntermediateSize { get; init; }
    /// <summary>Attention heads.</summary>
    public required int Heads { get; init; }
    /// <summary>Key/value heads (grouped-query attention).</summary>
    public required int KvHeads { get; init; }
    /// <summary>Width of one head.</summary>
    public required int HeadDim { get; init; }
    /// <summary>Vocabulary size of the model's embedding.</summary>
    public required int VocabSize { get; init; }
    /// <summary>Positions the loaded model's KV cache holds.</summary>
    public required int ContextLength { get; init; }
    /// <summary>The trained context (max_position_embeddings).</summary>
    public required int MaxPositions { get; init; }
    /// <summary>Stored dtype of the routed experts (or of the embedding when there are none), as loaded: "BF16", "F16", "F32", "Q8_0", "Q4_0" or "MXFP4".</summary>
    public required string WeightType { get; init; }
    /// <summary>Stored type of the routed experts' matrices as loaded ("bf16", "q4_0", ...; types joined with '+' when they differ; "" when there are none).</summary>
    public required string ExpertWeightType { get; init; }
    /// <summary>Stored type of the attention, shared-expert and dense-MLP matrices as loaded (<c>--dense-dtype</c>'s class).</summary>
    public required string DenseWeightType { get; init; }
    /// <summary>Stored type of the token embedding, LM head, routers and shared-expert gates (always kept as stored).</summary>
    public required string KeptWeightType { get; init; }
    /// <summary>What converting weights at load cost (<see cref="DaopOptions.ExpertDType"/>, <see cref="DaopOptions.DenseDType"/>), or null.</summary>
    public WeightConversion? Conversion { get; init; }
    /// <summary>All parameters (a tied embedding counts once).</summary>
    public required long TotalParameters { get; init; }
    /// <summary>Parameters one token uses: everything but the routed experts, plus top-k routed experts per MoE layer.</summary>
    public required long ActiveParameters { get; init; }
    /// <summary>Parameters of one routed expert (gate, up and down).</summary>
    public required long ExpertParameters { get; init; }
    /// <summary>Parameters of all routed experts.</summary>
    public required long RoutedExpertParameters { get; init; }
    /// <summary>Bytes of one routed expert as stored (in its block format for quantized experts).</summary>
    public required long ExpertBytes { get; init; }
    /// <summary>Bytes of all routed experts as stored.</summary>
    public required long RoutedExpertBytes { get; init; }
    /// <summary>Bytes of everything that is not a routed expert (embedding, attention, norms, routers, shared/dense MLPs, LM head).</summary>
    public required long DenseBytes { get; init; }
    /// <summary>Where dense compute runs ("cpu", "cuda: ...").</summary>
    public required string Device { get; init; }
    /// <summary>Where the experts run (the expert scheduler's description).</summary>
    public required string ExpertPlacement { get; init; }
    /// <summary>Whether the folder has a chat template (needed by <see cref="DaopModel.ChatAsync(IReadOnlyList{Load.Chat.ChatMessage}, GenerationSettings?, Generate.GenerationStats?, CancellationToken)"/>).</summary>
    public required bool HasChatTemplate { get; init; }

    internal static unsafe ModelInfo Of(MoeModel m, bool hasChatTemplate)
    {
        var c = m.Config;
        var w = m.Weights;
        var seen = new HashSet<nint>();
        var seenVectors = new HashSet<float[]>(ReferenceEqualityComparer.Instance);
        long denseParams = 0, denseBytes = 0, expertParamsAll = 0, expertBytesAll = 0;
        void M(in WeightMatrix x, bool perToken)
        {
            if (!seen.Add((nint)x.Data)) return;
            denseParams += (long)x.Rows * x.Cols;
            denseBytes += x.ByteLength;
        }
        w.VisitDense(M, v =>
        {
            if (!seenVectors.Add(v)) return;
            denseParams += v.Length;
            denseBytes += (long)v.Length * (m.Weights.Embed.Type.IsBlock() ? 4 : m.Weights.Embed.Type.SizeOf()); // vectors of a block-format file are f32
        });
        int moeLayers = 0;
        long oneExpertParams = 0, oneExpertBytes = 0;
        foreach (var l in w.Layers)
        {
            if (l.Experts.Length > 0) moeLayers++;
            foreach (var e in l.Experts)
            {
                long p = (long)e.Gate.Rows * e.Gate.Cols + (long)e.Up.Rows * e.Up.Cols + (long)e.Down.Rows * e.Down.Cols;
                expertParamsAll += p;
                expertBytesAll += e.ByteLength;
                oneExpertParams = p;
                oneExpertBytes = e.ByteLength;
            }
        }
        var firstExpert = w.Layers.SelectMany(l => l.Experts).Select(e => (ExpertWeights?)e).FirstOrDefault();
        var (expertTypes, denseTypes, keptTypes) = (new SortedSet<string>(), new SortedSet<string>(), new SortedSet<string>());
        void Add(SortedSet<string> set, in WeightMatrix x) => set.Add(x.Type.Name());
        Add(keptTypes, w.Embed);
        Add(keptTypes, w.LmHead.W);
        foreach (var l in w.Layers)
        {
            l.Attention.Visit((in WeightMatrix x, bool _) => Add(denseTypes, x), _ => { });
            foreach (var e in l.Experts) e.Visit((in WeightMatrix x, bool _) => Add(expertTypes, x));
            l.Shared?.Visit((in WeightMatrix x, bool _) => Add(denseTypes, x));
            l.Dense?.Visit((in WeightMatrix x, bool _) => Add(denseTypes, x));
            if (l.Router is { } r) Add(keptTypes, r.W);
            if (l.SharedGate is { } g) Add(keptTypes, g.W);
        }
        return new ModelInfo
        {
            Name = m.Name,
            Path = m.Directory,
            Architecture = c.ModelType,
            Layers = c.NumLayers,
            MoeLayers = moeLayers,
            Experts = c.NumExperts,
            ExpertsPerToken = c.TopK,
            SharedExpert = w.Layers.Any(l => l.Shared != null),
            HiddenSize = c.HiddenSize,
            ExpertIntermediateSize = c.ExpertIntermediate,
            Heads = c.NumHeads,
            KvHeads = c.NumKvHeads,
            HeadDim = c.HeadDim,
            VocabSize = c.VocabSize,
            ContextLength = m.ContextLength,
            MaxPositions = c.MaxPositions,
            WeightType = (firstExpert?.Gate.Type ?? w.Embed.Type).ToString(),
            ExpertWeightType = string.Join('+', expertTypes),
            DenseWeightType = string.Join('+', denseTypes),
            KeptWeightType = string.Join('+', keptTypes),
            Conversion = m.Conversion,
            TotalParameters = denseParams + expertParamsAll,
            ActiveParameters = denseParams + (long)moeLayers * c.TopK * oneExpertParams,
            ExpertParameters = oneExpertParams,
            RoutedExpertParameters = expertParamsAll,
            ExpertBytes = oneExpertBytes,
            RoutedExpertBytes = expertBytesAll,
            DenseBytes = denseBytes,
            Device = m.Device.Name,
            ExpertPlacement = m.Experts.Description,
            HasChatTemplate = hasChatTemplate,
        };
    }
}

/// <summary>
/// What fits in a GPU memory budget when the model runs with offloaded experts: the dense part first (non-expert
/// weights, one KV cache of the loaded context per parallel sequence, activations and scratch), then as many expert
/// slots as the rest holds, spread evenly over the MoE layers.
/// </summary>
/// <param name="BudgetBytes">The budget asked about.</param>
/// <param name="DenseBytes">Device bytes of everything but the expert slots.</param>
/// <param name="SlotBytes">Device bytes of one expert slot in the experts' device formats (<see cref="SlotFormats"/>; rows padded to 16 bytes).</param>
/// <param name="SlotsPerLayer">Expert slots of each decoder layer (0 for dense layers, or all when the dense part does not fit).</param>
/// <param name="TotalExperts">Routed experts of the whole model.</param>
public sealed record VramPlan(long BudgetBytes, long DenseBytes, long SlotBytes, IReadOnlyList<int> SlotsPerLayer, int TotalExperts)
{
    /// <summary>Whether the budget holds the dense part at all.</summary>
    public bool DenseFits => BudgetBytes >= DenseBytes;
    /// <summary>Sequences decoded together (<see cref="DaopOptions.Parallel"/>): one KV cache each, in the dense part.</summary>
    public int Sequences { get; init; } = 1;
    /// <summary>Device bytes of one sequence's KV cache (fp32 keys and values of every layer over the loaded context).</summary>
    public long KvCacheBytes { get; init; }
    /// <summary>Expert slots over all layers.</summary>
    public int TotalSlots => SlotsPerLayer.Sum();
    /// <summary>Fraction of routed experts resident on the GPU.</summary>
    public double ResidentFraction => TotalExperts == 0 ? 0 : (double)TotalSlots / TotalExperts;
    /// <summary>Slots set aside for streamed prefill experts (<c>OffloadedExpertScheduler.StagingSlots</c>, or 0 when the budget is too small).</summary>
    public int StagingSlots { get; init; }
    /// <summary>Bytes the plan uses: dense part plus slots and staging slots (0 when the dense part does not fit).</summary>
    public long UsedBytes => DenseFits ? DenseBytes + (TotalSlots + StagingSlots) * SlotBytes : 0;
    /// <summary>Device bytes of one expert slot were the experts stored as bf16 (equal to <see cref="SlotBytes"/> for a bf16 model).</summary>
    public long Bf16SlotBytes { get; init; }
    /// <summary>Expert slots the same budget would hold were the experts bf16 (the dense part as loaded): what quantized experts gain.</summary>
    public int Bf16TotalSlots { get; init; }
    /// <summary>
    /// The formats a slot holds the expert's matrices in, e.g. "gate q4_K, up q4_K, down q8_0": the stored ones where the
    /// GPU has kernels for them, Q8_0 (requantized at load) otherwise or where layers store a matrix in different formats.
    /// </summary>
    public string SlotFormats { get; init; } = "";
}
