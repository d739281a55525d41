using Daop.Engine.Load.Config;

namespace Daop.Engine.Model.Families;

/// <summary>
/// One model family: reads its config keys, names its tensors and picks its routing. Everything else is
/// shared layers.
/// </summary>
public interface IModelFamily
{
    /// <summary>The config.json model_type values this family handles.</summary>
    IReadOnlyList<string> ModelTypes { get; }

    /// <summary>Parses config.json into the shared <see cref="ModelConfig"/>.</summary>
    ModelConfig ReadConfig(ConfigReader c);

    /// <summary>The family's Hugging Face tensor names.</summary>
    TensorNames Names { get; }
}
