using System.Text.Json.Nodes;
using Daop.Kernels;

namespace Daop.Engine.Load.Config;

/// <summary>
/// config.json's <c>quantization_config</c> of a checkpoint written by <c>daop quantize</c>: which class of weight matrix
/// (<see cref="WeightClass"/>) is stored in which block format. Such tensors are safetensors <c>U8</c> tensors of shape
/// [rows, row bytes] holding GGUF's block layout of each row (<see cref="DType"/>).
/// </summary>
/// <remarks>
/// <code>"quantization_config": {"quant_method": "daop", "version": 1, "format": {"experts": "q4_0", "dense": "q8_0"}}</code>
/// <c>quant_method</c> is "daop" because no other loader knows it: transformers names its own methods there ("gguf",
/// "mxfp4", "bitsandbytes", ...) and one of those would apply its quantizer's tensor conventions (e.g. the "mxfp4"
/// method's <c>_blocks</c>/<c>_scales</c> pairs) to these tensors. An unknown method makes transformers skip quantization
/// and load the weights as they are, where every quantized tensor fails its shape check (a U8 [rows, row bytes] never
/// matches [rows, cols]): an error, not a silently misread model.
/// </remarks>
/// <param name="Experts">Format of the routed experts' gate, up and down matrices; null when stored as F32/F16/BF16.</param>
/// <param name="Dense">Format of attention, shared-expert and dense-MLP matrices; null when stored as F32/F16/BF16.</param>
public sealed record QuantizationConfig(DType? Experts, DType? Dense)
{
    /// <summary>The field of config.json.</summary>
    public const string Field = "quantization_config";
    /// <summary>The one quant_method Daop reads and writes.</summary>
    public const string Method = "daop";
    /// <summary>The layout version written (and the only one read).</summary>
    public const int Version = 1;

    /// <summary>The block format the checkpoint stores tensors of <paramref name="c"/> in, or null (stored as a float type).</summary>
    public DType? For(WeightClass c) => c switch
    {
        WeightClass.Experts => Experts,
        WeightClass.Dense => Dense,
        _ => null,
    };

    /// <summary>
    /// Reads and checks <c>quantization_config</c>; null when config.json has none, or when its quant_method is one of
    /// <paramref name="familyMethods"/> (a hub layout the model family's tensor source reads itself).
    /// </summary>
    /// <exception cref="ModelLoadException">Another quant_method, another version, an unknown format or key; the message names the file, field and value.</exception>
    public static QuantizationConfig? Read(ConfigReader config, IReadOnlyList<string>? familyMethods = null)
    {
        var q = config.Object(Field);
        if (q == null) return null;
        string method = q.StringOrNull("quant_method") ?? throw q.Error("quant_method", "is missing");
        if (familyMethods?.Contains(method) == true) return null;
        if (method != Method)
            throw q.Error("quant_method", $"is '{method}': Daop reads its own quantized checkpoints (quant_method '{Method}', written by " +
                "'daop quantize') and unquantized F32/F16/BF16 ones; quantize the original weights with 'daop quantize' or '--expert-dtype'");
        int version = q.IntOr("version", Version);
        if (version != Version) throw q.Error("version", $"is {version}; this Daop reads version {Version}");
        var format = q.Object("format") ?? throw q.Error("format", "is missing (an object such as {\"experts\": \"q4_0\"})");
        foreach (string key in format.FieldNames)
            if (key is not ("experts" or "dense"))
                throw format.Error(key, "is not a weight class Daop stores quantized (classes: experts, dense)");
        var result = new QuantizationConfig(Format(format, "experts"), Format(format, "dense"));
        if (result.Experts == null && result.Dense == null) throw q.Error("format", "names no quantized weight class (experts, dense)");
        return result;
    }

    static DType? Format(ConfigReader format, string key)
    {
        string? name = format.StringOrNull(key);
        if (name == null) return null;
        if (!DTypes.TryParse(name, out var t) || !BlockFormats.Contains(t))
            throw format.Error(key, $"is '{name}'; the block formats are {string.Join(", ", BlockFormats.Select(b => b.Name()))}");
        return t;
    }

    /// <summary>The block formats a checkpoint may store.</summary>
    public static IReadOnlyList<DType> BlockFormats { get; } = [DType.Q8_0, DType.Q4_0, DType.MXFP4];

    /// <summary>The JSON object written into config.json.</summary>
    public JsonObject ToJson()
    {
        var format = new JsonObject();
        if (Experts is { } e) format["experts"] = e.Name();
        if (Dense is { } d) format["dense"] = d.Name();
        return new JsonObject { ["quant_method"] = Method, ["version"] = Version, ["format"] = format };
    }
}

/// <summary>
/// The classes of weight matrix that <c>--expert-dtype</c> and <c>--dense-dtype</c> convert, as llama.cpp's quantizer
/// groups them (it too keeps routers at full precision and treats the token embedding and output apart).
/// </summary>
public enum WeightClass
{
    /// <summary>Routed experts' gate, up and down matrices (<c>--expert-dtype</c>).</summary>
    Experts,
    /// <summary>Attention projections, shared experts and dense MLPs (<c>--dense-dtype</c>).</summary>
    Dense,
    /// <summary>Token embedding, LM head, routers and shared-expert gates: kept as stored.</summary>
    Kept,
}
