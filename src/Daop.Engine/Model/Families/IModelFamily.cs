using Daop.Engine.Load.Config;

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
}
