using System.CommandLine;
using System.Runtime.CompilerServices;
using Daop.Engine.Api;
using Daop.Engine.Model;
using Daop.Engine.Schedule;

namespace Daop.Cli;

/// <summary>The options that say which model to load and where it runs (shared by run, chat, serve and inspect).</summary>
sealed class ModelArgs
{
    public Option<string?> Model { get; } = CommonOptions.Model();
    public Option<int?> Context { get; } = CommonOptions.Context();
    public Option<int?> Threads { get; } = CommonOptions.Threads();
    public Option<string?> ExpertDType { get; } = CommonOptions.ExpertDType();
    public Option<string?> DenseDType { get; } = CommonOptions.DenseDType();
    public Option<string> Device { get; } = CommonOptions.Device();
    public Option<double?> CacheRatio { get; } = CommonOptions.CacheRatio();
    public Option<long?> VramBudget { get; } = CommonOptions.VramBudget();
    public Option<string> Policy { get; } = CommonOptions.Policy();
    public Option<string?> MissDType { get; } = MissChoice.DType();
    public Option<double?> MissMaxWeight { get; } = MissChoice.MaxWeight();
    public Option<string?> PrecalcMaxDrift { get; } = new("--precalc-max-drift")
    {
        Description = "With --policy daop-checked (-degrade, -drift): take a pre-calculated expert output only while the layer's true input " +
            "is within this relative distance of the stale one it was computed from, else run that expert exactly (e.g. 0.35; " +
            "default: always take them). Bounds the approximate mode's accuracy cost; see docs/daop.md.",
    };

    /// <summary>Adds the options to <paramref name="cmd"/>; the placement options only where a GPU may run.</summary>
    public void AddTo(Command cmd, bool device = true)
    {
        // llama.cpp's -c for the context, where the command does not use -c for something else (bench serve: clients).
        if (!cmd.Options.Any(o => o.Aliases.Contains("-c"))) Context.Aliases.Add("-c");
        cmd.Options.Add(Model);
        cmd.Options.Add(Context);
        cmd.Options.Add(Threads);
        cmd.Options.Add(ExpertDType);
        cmd.Options.Add(DenseDType);
        if (!device) return;
        cmd.Options.Add(Device);
        cmd.Options.Add(CacheRatio);
        cmd.Options.Add(VramBudget);
        cmd.Options.Add(Policy);
        cmd.Options.Add(PrecalcMaxDrift);
        cmd.Options.Add(MissDType);
        cmd.Options.Add(MissMaxWeight);
    }

    // --precalc-max-drift: one bound, for a checked approximate policy only (infinity when not given).
    float MaxDrift(ParseResult r)
    {
        if (r.GetValue(PrecalcMaxDrift) is not { } text) return float.PositiveInfinity;
        var drifts = PolicyChoice.Drifts(text);
        if (drifts.Length != 1) throw new ArgumentException($"--precalc-max-drift takes one value here, got '{text}'");
        string policy = r.GetValue(Policy)!;
        if (!PolicyChoice.Create(policy).ChecksPrediction)
            throw new ArgumentException($"--precalc-max-drift bounds the checked approximate policies (daop-checked, daop-checked-degrade, daop-checked-drift); --policy is {policy}");
        return drifts[0];
    }

    /// <summary>The model folder asked for, or the embedded default.</summary>
    public string Dir(ParseResult r) => r.GetValue(Model) ?? ModelLocator.Default();

    /// <summary>
    /// Loads the model, with a progress line on a terminal unless <paramref name="quiet"/>; what converting weights cost
    /// (<c>--expert-dtype</c>, <c>--dense-dtype</c>) is one stderr line unless quiet.
    /// </summary>
    public DaopModel Load(ParseResult r, bool quiet, int parallel = 1) => Load(Dir(r), r, quiet, parallel: parallel);

    /// <summary>
    /// Loads <paramref name="dir"/> with the options of <paramref name="r"/>, as <see cref="Load(ParseResult, bool)"/>;
    /// <paramref name="reportConversion"/> false leaves the conversion line to the caller.
    /// </summary>
    public DaopModel Load(string dir, ParseResult r, bool quiet, bool reportConversion = true, int parallel = 1)
    {
        string device = r.GetValue(Device) ?? "cpu";
        if (r.GetResult(Policy) is { Implicit: false } && r.GetValue(CacheRatio) == null && r.GetValue(VramBudget) == null)
            throw new ArgumentException($"--policy {r.GetValue(Policy)} places offloaded experts: give it with --expert-cache-ratio or --vram-budget (and --device cuda)");
        var miss = MissChoice.Parse(r.GetValue(MissDType), r.GetValue(MissMaxWeight));
        if (miss != null && r.GetValue(CacheRatio) == null && r.GetValue(VramBudget) == null)
            throw new ArgumentException("--miss-dtype runs offloaded experts' misses from a low-precision copy: give it with --expert-cache-ratio or --vram-budget (and --device cuda)");
        var engine = DeviceChoice.Options(device, r.GetValue(Context), r.GetValue(CacheRatio), r.GetValue(VramBudget), r.GetValue(Policy)!, parallel,
            offload: miss == null ? null : new OffloadOptions { MissPrecision = miss }, maxDrift: MaxDrift(r));
        var options = new DaopOptions
        {
            ContextLength = r.GetValue(Context), Threads = r.GetValue(Threads), Engine = engine,
            ExpertDType = WeightTypes.Parse(r.GetValue(ExpertDType)), DenseDType = WeightTypes.Parse(r.GetValue(DenseDType)),
            Parallel = parallel,
        };
        var model = LoadProgress.Run($"loading {MoeModel.FolderName(dir)}", quiet, () => DaopModel.Load(dir, options));
        if (!quiet && reportConversion && model.Info.Conversion is { } c) Console.Error.WriteLine($"[daop] {c}");
        if (!quiet && model.Engine.Experts is OffloadedExpertScheduler { MissCopies: { } copies }) Console.Error.WriteLine($"[daop] {miss}: {copies}");
        return model;
    }
}

/// <summary>Sampling options shared by run, chat and the server's defaults.</summary>
sealed class SamplingArgs(int defaultMaxTokens)
{
    public Option<int> MaxTokens { get; } = new("--max-tokens", "-n") { Description = "Most tokens to generate.", DefaultValueFactory = _ => defaultMaxTokens };
    public Option<float> Temperature { get; } = new("--temperature", "--temp") { Description = "0 = greedy.", DefaultValueFactory = _ => 0f };
    public Option<string[]> Stop { get; } = new("--stop")
    {
        Description = "Text that ends generation (not printed); repeat for several.", AllowMultipleArgumentsPerToken = false,
    };
    public Option<int> TopK { get; } = new("--top-k") { Description = "Sample from the K most likely tokens (0 = off).", DefaultValueFactory = _ => 0 };
    public Option<float> TopP { get; } = new("--top-p") { Description = "Nucleus sampling threshold (1 = off).", DefaultValueFactory = _ => 1f };
    public Option<ulong> Seed { get; } = new("--seed") { Description = "Sampling seed.", DefaultValueFactory = _ => 42UL };
    public Option<float> MinP { get; } = new("--min-p") { Description = "Drop tokens less likely than this fraction of the most likely one (0 = off).", DefaultValueFactory = _ => 0f };
    public Option<float> RepeatPenalty { get; } = new("--repeat-penalty") { Description = "Repetition penalty over prompt and output, as llama.cpp's (1 = off).", DefaultValueFactory = _ => 1f };
    public Option<float> FrequencyPenalty { get; } = new("--frequency-penalty") { Description = "OpenAI's frequency penalty, -2 to 2 (0 = off).", DefaultValueFactory = _ => 0f };
    public Option<float> PresencePenalty { get; } = new("--presence-penalty") { Description = "OpenAI's presence penalty, -2 to 2 (0 = off).", DefaultValueFactory = _ => 0f };

    public void AddTo(Command cmd)
    {
        cmd.Options.Add(MaxTokens);
        cmd.Options.Add(Temperature);
        cmd.Options.Add(TopK);
        cmd.Options.Add(TopP);
        cmd.Options.Add(Seed);
        cmd.Options.Add(MinP);
        cmd.Options.Add(RepeatPenalty);
        cmd.Options.Add(FrequencyPenalty);
        cmd.Options.Add(PresencePenalty);
        cmd.Options.Add(Stop);
    }

    public GenerationSettings Settings(ParseResult r)
    {
        var s = new GenerationSettings
        {
            MaxTokens = r.GetValue(MaxTokens), Temperature = r.GetValue(Temperature), TopK = r.GetValue(TopK),
            TopP = r.GetValue(TopP), Seed = r.GetValue(Seed), MinP = r.GetValue(MinP), RepetitionPenalty = r.GetValue(RepeatPenalty),
            FrequencyPenalty = r.GetValue(FrequencyPenalty), PresencePenalty = r.GetValue(PresencePenalty),
            Stop = r.GetValue(Stop) is { Length: > 0 } stop ? stop : null,
        };
        s.Validate();
        return s;
    }
}
