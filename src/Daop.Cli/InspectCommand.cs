using System.CommandLine;
using System.Globalization;
using Daop.Engine.Api;
using Daop.Engine.Load.Gguf;
using Daop.Engine.Model;
using Daop.Kernels.Cpu;

namespace Daop.Cli;

/// <summary>
/// <c>daop inspect [MODEL]</c>: architecture, parameter counts (total and active per token), weight types per class, expert
/// and dense sizes in their stored formats, and with <c>--vram-budget</c> how many expert slots per layer a GPU of that size
/// would hold (and how many it would hold were the experts bf16).
/// </summary>
static class InspectCommand
{
    public static Command Create()
    {
        var m = new ModelArgs();
        var dir = new Argument<string?>("model") { Description = "Model folder or .gguf file (default: the embedded tiny-mixtral-code, or --model).", Arity = ArgumentArity.ZeroOrOne };
        var budget = new Option<long?>("--vram-budget") { Description = "GPU memory for the whole model, in bytes (suffixes K, M, G, T and KiB, MiB, GiB, TiB allowed): what fits." };
        var chunk = new Option<int>("--chunk-tokens") { Description = "Prefill chunk the GPU activations are sized for.", DefaultValueFactory = _ => 256 };
        var json = new Option<bool>("--json") { Description = "Print one JSON object." };
        var parallel = new Option<int>("--parallel", "-np") { Description = "Sequences served at once (serve --parallel): one KV cache each in the VRAM plan.", DefaultValueFactory = _ => 1 };
        var check = new Option<bool>("--check") { Description = "Read every weight for NaN/Inf and run a forward pass that names the first layer producing one (exit 2 if any)." };
        var cmd = new Command("inspect", "Show a model's architecture, parameter counts, expert sizes and what fits in a VRAM budget.") { dir, budget, chunk, json, check, parallel };
        m.AddTo(cmd, device: false);
        cmd.SetAction((r, cancel) => CliErrors.Run(() =>
        {
            long? vram = r.GetValue(budget);
            string? path = r.GetValue(dir);
            if (path != null && r.GetValue(m.Model) != null) throw new ArgumentException("give the model folder either as an argument or with --model, not both");
            using var model = m.Load(path ?? m.Dir(r), r, quiet: r.GetValue(json), reportConversion: false);
            var plan = vram is { } v ? model.PlanVram(v, r.GetValue(chunk), r.GetValue(parallel)) : null;
            string? gguf = GgufSplits.Find(model.Info.Path); // a GGUF file: its tensor classes too
            if (r.GetValue(json)) WriteJson(model.Info, plan, gguf);
            else
            {
                WriteText(model.Info, plan, r.GetValue(chunk));
                if (gguf != null) GgufInspect.WriteText(gguf);
            }
            return Task.FromResult(r.GetValue(check) ? Check(model) : 0);
        }));
        return cmd;
    }

    // A short prompt through the tokenizer, so the forward pass sees ids the model really meets.
    const string Probe = "The quick brown fox jumps over the lazy dog.\ndef add(a, b):\n    return a + b\n";

    static int Check(DaopModel model)
    {
        var report = ModelCheck.Run(model.Info.Path, model.Tokenize(Probe));
        foreach (string t in report.NonFiniteTensors) Console.Error.WriteLine($"daop: non-finite weight in {t}");
        if (report.ForwardProblem != null) Console.Error.WriteLine($"daop: {report.ForwardProblem}");
        if (report.Ok) Console.Error.WriteLine($"check          {report.TensorsScanned} tensors finite; a checked forward pass over the probe prompt is finite");
        return report.Ok ? 0 : 2;
    }

    static void WriteText(ModelInfo i, VramPlan? plan, int chunk)
    {
        var o = Console.Out;
        o.WriteLine($"model          {i.Name} ({i.Path})");
        o.WriteLine($"architecture   {i.Architecture}: {i.Layers} layers ({i.MoeLayers} MoE), hidden {i.HiddenSize}, {i.Heads} heads / {i.KvHeads} KV heads x {i.HeadDim}, vocab {i.VocabSize}");
        o.WriteLine($"experts        {i.Experts} per MoE layer, top-{i.ExpertsPerToken}{(i.SharedExpert ? " + a shared expert" : "")}, intermediate {i.ExpertIntermediateSize}, {i.WeightType}");
        o.WriteLine($"weight types   experts {Type(i.ExpertWeightType)}, dense (attention, shared/dense MLPs) {Type(i.DenseWeightType)}, " +
            $"embedding/LM head/routers {Type(i.KeptWeightType)}");
        o.WriteLine($"context        {i.ContextLength} positions loaded (trained {i.MaxPositions})");
        o.WriteLine($"parameters     {Count(i.TotalParameters)} total, {Count(i.ActiveParameters)} active per token ({Pct(i.ActiveParameters, i.TotalParameters)})");
        o.WriteLine($"  routed       {i.MoeLayers * i.Experts} experts x {Count(i.ExpertParameters)} = {Count(i.RoutedExpertParameters)} ({Pct(i.RoutedExpertParameters, i.TotalParameters)})");
        o.WriteLine($"bytes          {Size(i.DenseBytes + i.RoutedExpertBytes)} stored: {Size(i.RoutedExpertBytes)} routed experts ({Size(i.ExpertBytes)} each, {Type(i.ExpertWeightType)}) + {Size(i.DenseBytes)} dense");
        if (i.Conversion is { } c) o.WriteLine($"load           {c}");
        o.WriteLine($"chat template  {(i.HasChatTemplate ? "yes" : "no")}");
        o.WriteLine($"cpu            {CpuWorkers.Threads} threads; {AmxInfo.Status}");
        if (plan == null) return;
        o.WriteLine($"VRAM budget    {Size(plan.BudgetBytes)} ({plan.BudgetBytes} bytes)");
        string caches = plan.Sequences == 1 ? $"one KV cache of {i.ContextLength} positions ({Size(plan.KvCacheBytes)})"
            : $"{plan.Sequences} KV caches of {i.ContextLength} positions ({plan.Sequences} x {Size(plan.KvCacheBytes)})";
        o.WriteLine($"  dense part   {Size(plan.DenseBytes)} (non-expert weights, {caches}, activations for {chunk}-token chunks)");
        if (!plan.DenseFits)
        {
            o.WriteLine($"  does not fit: the dense part alone needs {Size(plan.DenseBytes - plan.BudgetBytes)} more; experts would all stay in host memory");
            return;
        }
        o.WriteLine($"  expert slot  {Size(plan.SlotBytes)} ({plan.SlotFormats}, rows padded to 16 bytes)");
        o.WriteLine($"  fits         {plan.TotalSlots} of {plan.TotalExperts} experts ({plan.ResidentFraction:P1}) on the GPU, " +
            $"{Size(plan.UsedBytes)} used; the rest run from host memory");
        if (plan.Bf16SlotBytes != plan.SlotBytes)
            o.WriteLine($"  vs bf16      {plan.Bf16TotalSlots} experts in {Size(plan.Bf16SlotBytes)} bf16 slots: {Type(i.ExpertWeightType)} fits " +
                (plan.Bf16TotalSlots > 0 ? $"{(double)plan.TotalSlots / plan.Bf16TotalSlots:F2}x as many" : $"{plan.TotalSlots} more"));
        o.WriteLine($"  slots/layer  {string.Join(" ", plan.SlotsPerLayer)}");
        if (plan.StagingSlots > 0) o.WriteLine($"  staging      {plan.StagingSlots} slots for prompt experts streamed from host memory");
    }

    static void WriteJson(ModelInfo i, VramPlan? plan, string? gguf) => JsonOut.Write(w =>
    {
        w.WriteString("name", i.Name);
        w.WriteString("path", i.Path);
        w.WriteString("architecture", i.Architecture);
        w.WriteNumber("layers", i.Layers);
        w.WriteNumber("moe_layers", i.MoeLayers);
        w.WriteNumber("experts", i.Experts);
        w.WriteNumber("experts_per_token", i.ExpertsPerToken);
        w.WriteBoolean("shared_expert", i.SharedExpert);
        w.WriteNumber("hidden_size", i.HiddenSize);
        w.WriteNumber("expert_intermediate_size", i.ExpertIntermediateSize);
        w.WriteNumber("heads", i.Heads);
        w.WriteNumber("kv_heads", i.KvHeads);
        w.WriteNumber("head_dim", i.HeadDim);
        w.WriteNumber("vocab_size", i.VocabSize);
        w.WriteNumber("context_length", i.ContextLength);
        w.WriteNumber("max_positions", i.MaxPositions);
        w.WriteString("weight_type", i.WeightType);
        w.WriteString("expert_weight_type", i.ExpertWeightType);
        w.WriteString("dense_weight_type", i.DenseWeightType);
        w.WriteString("kept_weight_type", i.KeptWeightType);
        if (i.Conversion is { } c)
        {
            w.WriteStartObject("conversion");
            w.WriteNumber("matrices", c.Matrices);
            w.WriteNumber("source_bytes", c.SourceBytes);
            w.WriteNumber("bytes", c.Bytes);
            w.WriteNumber("seconds", Math.Round(c.Seconds, 3));
            w.WriteEndObject();
        }
        w.WriteString("cpu_tiles", AmxInfo.Status);
        w.WriteNumber("total_parameters", i.TotalParameters);
        w.WriteNumber("active_parameters", i.ActiveParameters);
        w.WriteNumber("expert_parameters", i.ExpertParameters);
        w.WriteNumber("routed_expert_parameters", i.RoutedExpertParameters);
        w.WriteNumber("expert_bytes", i.ExpertBytes);
        w.WriteNumber("routed_expert_bytes", i.RoutedExpertBytes);
        w.WriteNumber("dense_bytes", i.DenseBytes);
        w.WriteBoolean("chat_template", i.HasChatTemplate);
        if (gguf != null) GgufInspect.WriteJson(w, gguf);
        if (plan == null) return;
        w.WriteStartObject("vram");
        w.WriteNumber("budget_bytes", plan.BudgetBytes);
        w.WriteNumber("dense_bytes", plan.DenseBytes);
        w.WriteNumber("sequences", plan.Sequences);
        w.WriteNumber("kv_cache_bytes", plan.KvCacheBytes);
        w.WriteBoolean("dense_fits", plan.DenseFits);
        w.WriteNumber("slot_bytes", plan.SlotBytes);
        w.WriteString("slot_formats", plan.SlotFormats);
        w.WriteNumber("total_slots", plan.TotalSlots);
        w.WriteNumber("total_experts", plan.TotalExperts);
        w.WriteNumber("resident_fraction", Math.Round(plan.ResidentFraction, 4));
        w.WriteNumber("used_bytes", plan.UsedBytes);
        w.WriteNumber("staging_slots", plan.StagingSlots);
        w.WriteNumber("bf16_slot_bytes", plan.Bf16SlotBytes);
        w.WriteNumber("bf16_total_slots", plan.Bf16TotalSlots);
        w.WriteStartArray("slots_per_layer");
        foreach (int s in plan.SlotsPerLayer) w.WriteNumberValue(s);
        w.WriteEndArray();
        w.WriteEndObject();
    });

    static string Count(long n) => n switch
    {
        >= 1_000_000_000 => $"{n / 1e9:F2}B",
        >= 1_000_000 => $"{n / 1e6:F2}M",
        >= 1_000 => $"{n / 1e3:F1}K",
        _ => n.ToString(CultureInfo.InvariantCulture),
    };

    static string Type(string t) => t.Length == 0 ? "-" : t;

    static string Pct(long part, long whole) => whole == 0 ? "-" : $"{100.0 * part / whole:F1} %";

    static string Size(long b) => b switch
    {
        >= 1L << 30 => $"{b / (double)(1L << 30):F2} GiB",
        >= 1L << 20 => $"{b / (double)(1L << 20):F1} MiB",
        >= 1L << 10 => $"{b / 1024.0:F1} KiB",
        _ => $"{b} B",
    };
}
