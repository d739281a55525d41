using System.Runtime.CompilerServices;
using System.Text.Json;
using Daop.Engine.Device.Gpu;
using Daop.Engine.Load;
using Daop.Engine.Load.Chat;
using Daop.Engine.Load.Config;
using Daop.Engine.Load.Gguf;
using Daop.Engine.Load.Safetensors;
using Daop.Engine.Load.Tokenizer;
using Daop.Engine.Model;
using Daop.Engine.Schedule;

namespace Daop.Engine.Api;

// Loading: the files of a model folder in the order they are read, the engine options for a device, the vocabulary check.
public sealed partial class DaopModel
{
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
        if (GgufSplits.Find(path) is { } gguf) return LoadGguf(gguf, options); // a .gguf file, or a folder of one: DaopModel.Gguf.cs
        if (!Directory.Exists(path)) throw new ModelLoadException($"{path}: model folder not found");
        path = ModelFiles.ResolveHubCache(path);
        if (GgufSplits.Find(path) is { } cached) return LoadGguf(cached, options); // a hub snapshot of a GGUF repository
        // What is missing is reported in the order a model folder is read: config.json, the weights, then the tokenizer.
        // The tokenizer and template are loaded before the weights: they are cheap and their errors should not wait.
        string config = Path.Combine(path, "config.json");
        if (!File.Exists(config)) throw new ModelLoadException($"{config}: file not found (a model folder holds config.json, *.safetensors weights and tokenizer.json)");
        TensorStore.CheckHasWeights(path);
        var tokenizer = HfTokenizer.FromDirectory(path);
        var template = ChatTemplate.FromDirectory(path, options.ChatTemplateLimits ?? ChatTemplateLimits.Default);
        var (generationEos, sampling) = ReadGenerationConfig(path);
        var engineOptions = EngineOptions(options);
        var thread = new ModelThread($"daop model {MoeModel.FolderName(path)}");
        MoeModel? model = null;
        try
        {
            model = thread.Invoke(() => MoeModel.Load(path, engineOptions));
            CheckVocabulary(path, tokenizer, model.Config);
            return new DaopModel(model, thread, tokenizer, template, generationEos, sampling, options.Parallel);
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
        if (o.Engine is { } e)
            return e with { ContextLength = e.ContextLength ?? o.ContextLength, ExpertDType = e.ExpertDType ?? o.ExpertDType, DenseDType = e.DenseDType ?? o.DenseDType };
        if (o.Device == "cpu") return new ModelOptions { ContextLength = o.ContextLength, ExpertDType = o.ExpertDType, DenseDType = o.DenseDType };
        if (o.Device is not ("cuda" or "ilgpu-cpu"))
            throw new ArgumentException($"device must be 'cpu', 'cuda' or 'ilgpu-cpu', got '{o.Device}'");
        // CUDA runs the kernels precompiled into this build through the driver, JIT or not; ILGPU's CPU accelerator
        // compiles them at run time. Constant false when ahead-of-time compiled, so the compiler drops that path.
        if (o.Device == "ilgpu-cpu" && !RuntimeFeature.IsDynamicCodeSupported)
            throw new DeviceNotAvailableException(
                "device 'ilgpu-cpu' needs the JIT runtime (ILGPU compiles its kernels at run time); this binary is ahead-of-time compiled: use 'cpu' or 'cuda'");
        return GpuOptions(o);
    }

    static ModelOptions GpuOptions(DaopOptions o) => new()
    {
        ContextLength = o.ContextLength,
        ExpertDType = o.ExpertDType,
        DenseDType = o.DenseDType,
        Device = _ => CreateGpu(o.Device),
        Experts = (m, d) => new GpuExpertScheduler(m, d),
        WarmUp = true,
    };

    static GpuDevice CreateGpu(string device) => device == "cuda" ? GpuDevice.CreateCuda() : GpuDevice.Create(preferCuda: false);

    // generation_config.json: extra end-of-generation ids and the sampling defaults.
    static (int[] Eos, SamplingDefaults Sampling) ReadGenerationConfig(string dir)
    {
        string file = Path.Combine(dir, "generation_config.json");
        if (!File.Exists(file)) return ([], SamplingDefaults.None);
        try
        {
            using var doc = JsonDocument.Parse(ModelFiles.ReadAll(file, ModelFiles.MaxConfigBytes));
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new ModelLoadException($"{file}: must be a JSON object");
            var sampling = SamplingDefaults.Read(doc.RootElement, file);
            if (!doc.RootElement.TryGetProperty("eos_token_id", out var eos) || eos.ValueKind == JsonValueKind.Null) return ([], sampling);
            var items = eos.ValueKind == JsonValueKind.Array ? eos.EnumerateArray().ToArray() : [eos];
            return (items.Select(x => x.ValueKind == JsonValueKind.Number && x.TryGetInt32(out int id)
                ? id
                : throw new ModelLoadException($"{file}: field 'eos_token_id' must be an integer or a list of integers, found {eos.GetRawText()}")).ToArray(), sampling);
        }
        catch (JsonException e)
        {
            throw new ModelLoadException($"{file}: not valid JSON ({e.Message})");
        }
    }
}
