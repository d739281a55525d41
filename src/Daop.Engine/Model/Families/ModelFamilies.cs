using System.Text.Json;
using Daop.Engine.Load;
using Daop.Engine.Load.Config;

namespace Daop.Engine.Model.Families;

/// <summary>The registry of supported families, keyed by config.json model_type.</summary>
public static class ModelFamilies
{
    /// <summary>Every supported family.</summary>
    public static IReadOnlyList<IModelFamily> All { get; } = [new Mixtral(), new Qwen2Moe(), new Qwen3Moe(), new Olmoe(), new PhiMoe(), new GraniteMoe(), new DenseLlama(), new Qwen2(), new Llama4(), new Llama4Multimodal(), new DeepseekV2(), new DeepseekV3(), new GptOss()];

    /// <summary>The family for <paramref name="modelType"/>, or null.</summary>
    public static IModelFamily? Find(string modelType) => All.FirstOrDefault(f => f.ModelTypes.Contains(modelType));

    /// <summary>Reads <paramref name="configPath"/> and returns its family and parsed config.</summary>
    public static (IModelFamily Family, ModelConfig Config) ReadConfig(string configPath)
    {
        if (!File.Exists(configPath)) throw new ModelLoadException($"{configPath}: file not found");
        ReadOnlyMemory<byte> bytes = JsonText.SkipBom(ModelFiles.ReadAll(configPath, ModelFiles.MaxConfigBytes));
        JsonDocument doc;
        try { doc = JsonDocument.Parse(bytes); }
        catch (JsonException e) { throw new ModelLoadException($"{configPath}: not valid JSON ({e.Message})"); }
        using (doc)
        {
            JsonText.CheckStrings(configPath, bytes.Span, doc.RootElement);
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new ModelLoadException($"{configPath}: must be a JSON object");
            var c = new ConfigReader(configPath, doc.RootElement);
            string type = c.StringOrNull("model_type") ?? throw c.Error("model_type", "is missing");
            var family = Find(type) ?? throw c.Error("model_type",
                $"'{type}' is not a supported architecture (supported: {string.Join(", ", All.SelectMany(f => f.ModelTypes))})");
            // Shared by every family: how the checkpoint stores its matrices (null for F32/F16/BF16 checkpoints).
            return (family, family.ReadConfig(c) with { Quantization = QuantizationConfig.Read(c, family.QuantMethods) });
        }
    }
}
