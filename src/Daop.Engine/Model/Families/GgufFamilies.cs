using Daop.Engine.Load;
using Daop.Engine.Load.Config;
using Daop.Engine.Load.Gguf;

namespace Daop.Engine.Model.Families;

/// <summary>The families that read GGUF files, keyed by <c>general.architecture</c>.</summary>
public static class GgufFamilies
{
    /// <summary>The family that claims <paramref name="architecture"/> and accepts the file <paramref name="reader"/> reads.</summary>
    static IModelFamily? Find(string architecture, GgufConfigReader reader) => ModelFamilies.All.FirstOrDefault(f =>
        f.Gguf is { } g && g.Architecture == architecture && g.Accepts?.Invoke(reader) != false);

    /// <summary>The family and config of <paramref name="checkpoint"/>, read from its metadata and tensor list.</summary>
    public static (IModelFamily Family, ModelConfig Config) ReadConfig(GgufCheckpoint checkpoint)
    {
        var meta = checkpoint.Metadata;
        string arch = meta.StringOrNull("general.architecture") ?? throw meta.Error("general.architecture", "is missing");
        var reader = new GgufConfigReader(checkpoint);
        var family = Find(arch, reader) ?? throw meta.Error("general.architecture", $"'{arch}' is not a supported architecture (supported: " +
            string.Join(", ", ModelFamilies.All.Select(f => f.Gguf?.Architecture).OfType<string>().Distinct()) + ")");
        return (family, family.Gguf!.ReadConfig(reader));
    }

    /// <summary>
    /// The tensors the model loads from: the checkpoint itself, or (for files whose q/k rows llama.cpp reordered) a
    /// <see cref="RopeRowOrder"/> over it that puts every layer's q and k rows back. The source owns the checkpoint.
    /// </summary>
    public static ITensorSource Source(GgufCheckpoint checkpoint, IModelFamily family, ModelConfig config)
    {
        var gguf = family.Gguf!;
        return gguf.QkRowsPermuted ? QkRowsInHalves(checkpoint, config, gguf.Names) : checkpoint;
    }

    /// <summary>
    /// A <see cref="RopeRowOrder"/> over <paramref name="inner"/> that puts every layer's q and k rows (and biases) from
    /// adjacent-pair order into rotate_half order; <paramref name="inner"/> itself when the attention has no q/k.
    /// </summary>
    public static ITensorSource QkRowsInHalves(ITensorSource inner, ModelConfig config, TensorNames names)
    {
        if (names.Attention is not GqaNames n) return inner;
        var heads = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int l = 0; l < config.NumLayers; l++)
        {
            var a = config.Layers[l].Attention;
            foreach (var (pattern, h) in new[] { (n.Q, a.Heads), (n.K, a.KvHeads) })
            {
                string name = TensorNames.Format(pattern, l);
                heads[name] = h;
                heads[TensorNames.Bias(name)] = h;
            }
        }
        return new RopeRowOrder(inner, heads);
    }
}
