namespace Daop.Engine.Load.Gguf;

/// <summary>
/// What a family reads from a GGUF model to compose its <see cref="Config.ModelConfig"/>: the architecture's own keys
/// (<c>{arch}.block_count</c> is <c>Int("block_count")</c>), the general and tokenizer keys through <see cref="Metadata"/>,
/// and which tensors the file has (biases, shared experts and an untied output are known by their presence, as llama.cpp
/// knows them). Every failure names the file and the key, like <see cref="Config.ConfigReader"/>.
/// </summary>
public sealed class GgufConfigReader(GgufCheckpoint checkpoint)
{
    /// <summary>The model file, for messages and <see cref="Config.ModelConfig.Path"/>.</summary>
    public string Path => checkpoint.Path;
    /// <summary>general.architecture ("llama", "qwen2moe", ...).</summary>
    public string Architecture { get; } = checkpoint.Architecture;
    /// <summary>All metadata.</summary>
    public GgufMetadata Metadata => checkpoint.Metadata;

    /// <summary>The full key of an architecture field: "{arch}.{field}".</summary>
    public string Key(string field) => $"{Architecture}.{field}";

    /// <summary>True if the architecture key is present.</summary>
    public bool Has(string field) => Metadata.Has(Key(field));
    /// <summary>A required positive integer architecture key.</summary>
    public int PositiveInt(string field) => Metadata.PositiveInt(Key(field));
    /// <summary>An optional integer architecture key.</summary>
    public int IntOr(string field, int fallback) => Metadata.IntOr(Key(field), fallback);
    /// <summary>An optional integer architecture key, or null.</summary>
    public int? IntOrNull(string field) => Metadata.IntOrNull(Key(field));
    /// <summary>An optional number architecture key.</summary>
    public double NumberOr(string field, double fallback) => Metadata.NumberOr(Key(field), fallback);
    /// <summary>An optional number architecture key, or null.</summary>
    public double? NumberOrNull(string field) => Metadata.NumberOrNull(Key(field));
    /// <summary>An optional string architecture key.</summary>
    public string? StringOrNull(string field) => Metadata.StringOrNull(Key(field));

    /// <summary>
    /// A per-layer count (llama.cpp's get_key_or_arr: a number, or an array of one per layer) that must be the same in every
    /// layer, or null when absent.
    /// </summary>
    public int? UniformIntOrNull(string field, int layers)
    {
        string key = Key(field);
        if (Metadata.Raw(key) is not { IsArray: true }) return Metadata.IntOrNull(key);
        var values = Metadata.IntsOrNull(key)!;
        if (values.Length != layers) throw Error(field, $"has {values.Length} entries for {layers} layers");
        if (values.Distinct().Count() != 1)
            throw Error(field, $"differs between layers ({string.Join(", ", values.Distinct())}); Daop needs the same value in every layer");
        return values[0];
    }

    /// <summary>True if the file has tensor <paramref name="name"/>.</summary>
    public bool HasTensor(string name) => checkpoint.Find(name) != null;

    /// <summary>The tensor <paramref name="name"/>, or null.</summary>
    public GgufTensorInfo? Tensor(string name) => checkpoint.Find(name);

    /// <summary>A float vector tensor of <paramref name="length"/> widened to fp32 (RoPE factors), or null when absent.</summary>
    public float[]? VectorOrNull(string name, int length) => HasTensor(name) ? checkpoint.Vector(name, length) : null;

    /// <summary>An error naming this file and the architecture key.</summary>
    public ModelLoadException Error(string field, string what) => Metadata.Error(Key(field), what);
}
