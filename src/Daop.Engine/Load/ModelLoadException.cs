namespace Daop.Engine.Load;

/// <summary>
/// A model folder, checkpoint, config or tokenizer that Daop cannot use. The message always names
/// the file and the field, tensor or value that is wrong.
/// </summary>
public sealed class ModelLoadException(string message, Exception? inner = null) : Exception(message, inner)
{
    /// <summary>The tensor a checkpoint lacks, when that is what went wrong (the caller may blame the config instead).</summary>
    public string? MissingTensor { get; init; }
}
