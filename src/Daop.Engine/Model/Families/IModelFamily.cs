using Daop.Engine.Load;
using Daop.Engine.Load.Config;
using Daop.Engine.Load.Safetensors;

namespace Daop.Engine.Model.Families;

/// <summary>
/// One model family: reads its config keys, names its tensors and composes its layer specs (attention, FFN and
/// routing per layer, norm, LM head). Everything else is shared layers, picked by spec type.
/// </summary>
public interface IModelFamily
{
    /// <summary>The config.json model_type values this family handles.</summary>
    IReadOnlyList<string> ModelTypes { get; }

    /// <summary>Parses config.json into the shared <see cref="ModelConfig"/>: model-level fields and per-layer specs.</summary>
    ModelConfig ReadConfig(ConfigReader c);

    /// <summary>The family's Hugging Face tensor names.</summary>
    TensorNames Names { get; }

    /// <summary>How the family reads GGUF files (llama.cpp's architecture, metadata keys and tensor names), or null when it cannot.</summary>
    GgufSupport? Gguf { get; }

    /// <summary>
    /// The checkpoint's tensors as <see cref="Names"/> names them: <paramref name="store"/> itself where the checkpoint holds
    /// one matrix per expert, or an adapter that owns the store where the family's hub layout differs (GPT-OSS's stacked experts).
    /// </summary>
    ITensorSource Tensors(TensorStore store, ModelConfig config) => store;

    /// <summary>
    /// The <c>quantization_config</c> quant_methods whose tensors <see cref="Tensors"/> reads itself (GPT-OSS's "mxfp4");
    /// any other method goes to <see cref="QuantizationConfig.Read"/>.
    /// </summary>
    IReadOnlyList<string> QuantMethods => [];
}
