using Daop.Engine.Load;
using Daop.Engine.Load.Gguf;
using Daop.Engine.Load.Safetensors;

namespace Daop.Engine.Model;

/// <summary>What <see cref="ModelCheck.Run"/> found.</summary>
/// <param name="TensorsScanned">Tensors of the checkpoint read in full.</param>
/// <param name="NonFiniteTensors">"name: element i" for each tensor holding a NaN or ±∞, in name order.</param>
/// <param name="ForwardProblem">The first non-finite step of a checked forward pass over the probe tokens, or null.</param>
public sealed record ModelCheckReport(int TensorsScanned, IReadOnlyList<string> NonFiniteTensors, string? ForwardProblem)
{
    /// <summary>No non-finite weight and a finite forward pass.</summary>
    public bool Ok => NonFiniteTensors.Count == 0 && ForwardProblem == null;
}

/// <summary>
/// <c>daop inspect --check</c>: reads every tensor of a checkpoint for NaN/±∞ and runs a forward pass with
/// <see cref="ModelOptions.CheckFinite"/>, so a broken checkpoint or a config that overflows is named (tensor, layer,
/// step) instead of surfacing as a generation that stops early or a stream of one repeated token.
/// </summary>
public static class ModelCheck
{
    /// <summary>Checks the model folder (or GGUF file) <paramref name="dir"/> with a forward pass over <paramref name="probe"/> (token ids).</summary>
    public static ModelCheckReport Run(string dir, IReadOnlyList<int> probe)
    {
        ArgumentNullException.ThrowIfNull(probe);
        if (probe.Count == 0) throw new ArgumentException("the probe needs at least one token", nameof(probe));
        var bad = new List<string>();
        int scanned = 0;
        void Scan(IEnumerable<string> names, Func<string, long> firstNonFinite)
        {
            foreach (string name in names.Order(StringComparer.Ordinal))
            {
                scanned++;
                long i = firstNonFinite(name);
                if (i >= 0) bad.Add($"{name}: element {i}");
            }
        }
        if (GgufSplits.Find(dir) is { } gguf)
        {
            dir = gguf;
            using var checkpoint = GgufCheckpoint.Open(gguf);
            Scan(checkpoint.Tensors.Select(t => t.Name), checkpoint.FirstNonFinite);
        }
        else
        {
            dir = ModelFiles.ResolveHubCache(dir);
            using var store = TensorStore.OpenDirectory(dir);
            Scan(store.Names, store.FirstNonFinite);
        }
        string? forward = null;
        using (var model = MoeModel.Load(dir, new ModelOptions { CheckFinite = true, ContextLength = probe.Count + 1 }))
        {
            try
            {
                model.Forward(probe.ToArray(), 0, model.NewCache(), new float[probe.Count * model.Config.VocabSize], allLogits: true);
            }
            catch (NonFiniteException e)
            {
                forward = e.Message;
            }
        }
        return new ModelCheckReport(scanned, bad, forward);
    }
}
