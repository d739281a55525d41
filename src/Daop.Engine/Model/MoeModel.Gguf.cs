using Daop.Engine.Load;
using Daop.Engine.Load.Gguf;
using Daop.Engine.Model.Families;

namespace Daop.Engine.Model;

// Loading a GGUF model: one file (or split set) holds the config as metadata and the weights; the family that claims its
// architecture composes the config and names the tensors, and the rest is the safetensors path's.
public sealed partial class MoeModel
{
    /// <summary>
    /// Loads the GGUF model <paramref name="path"/> (a .gguf file; for a split set, any part): tensors mapped as stored,
    /// converted at load where <see cref="ModelOptions.ExpertDType"/> or <see cref="ModelOptions.DenseDType"/> ask for another type.
    /// </summary>
    /// <exception cref="ModelLoadException">The file is invalid, its architecture unsupported, or a tensor missing or of a type Daop cannot compute with.</exception>
    public static MoeModel LoadGguf(string path, ModelOptions? options = null) => FromGguf(GgufCheckpoint.Open(path), options);

    /// <summary>A model over an opened GGUF checkpoint, which the model then owns (disposed with it, or here on failure).</summary>
    public static MoeModel FromGguf(GgufCheckpoint checkpoint, ModelOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        ITensorSource source = checkpoint;
        try
        {
            var (family, config) = GgufFamilies.ReadConfig(checkpoint);
            source = GgufFamilies.Source(checkpoint, family, config);
            options ??= new ModelOptions();
            source = Converting(source, new WeightClasses(config, family.Gguf!.Names), options); // --expert-dtype, --dense-dtype
            ModelWeights weights;
            try
            {
                weights = ModelWeights.Load(source, config, family.Gguf!.Names);
            }
            catch (ModelLoadException e) when (e.MissingTensor != null)
            {
                throw new ModelLoadException($"{e.Message}, which the metadata of {config.Path} ({checkpoint.Architecture}, " +
                    $"{config.NumLayers} layers, {config.NumExperts} experts) calls for", e);
            }
            var model = new MoeModel(checkpoint.Path, config, family, source, weights) { Conversion = ConversionOf(source) };
            model.Start(options);
            return model;
        }
        catch
        {
            source.Dispose();
            throw;
        }
    }
}
