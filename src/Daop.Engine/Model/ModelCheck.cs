using Daop.Engine.Load;
using Daop.Engine.Load.Gguf;
using Daop.Engine.Load.Safetensors;
using Daop.Engine.Model.Families;
using Daop.Kernels;

namespace Daop.Engine.Model;

/// <summary>What <see cref="ModelCheck.Run"/> found.</summary>
/// <param name="TensorsScanned">Tensors of the checkpoint read in full.</param>
/// <param name="NonFiniteTensors">"name: element i" (or "name: the scale of block b" for block formats) for each tensor holding a NaN or ±∞, in name order.</param>
/// <param name="ForwardProblem">The first non-finite step of a checked forward pass over the probe tokens, or null.</param>
public sealed record ModelCheckReport(int TensorsScanned, IReadOnlyList<string> NonFiniteTensors, string? ForwardProblem)
{
    /// <summary>No non-finite weight and a finite forward pass.</summary>
    public bool Ok => NonFiniteTensors.Count == 0 && ForwardProblem == null;
}

/// <summary>
/// <c>daop inspect --check</c>: reads every tensor of a checkpoint for NaN/±∞ (block-format tensors: their scales) and runs a forward pass with
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
        if (GgufSplits.Find(dir) is { } gguf)
        {
            // A GGUF file: its float tensors element by element, its q8_0/q4_0/mxfp4 tensors by their block scales.
            dir = gguf;
            using var checkpoint = GgufCheckpoint.Open(gguf);
            foreach (string name in checkpoint.Tensors.Select(t => t.Name).Order(StringComparer.Ordinal))
            {
                scanned++;
                long i = checkpoint.FirstNonFinite(name);
                if (i >= 0) bad.Add($"{name}: element {i}");
            }
        }
        else
        {
            dir = ModelFiles.ResolveHubCache(dir);
            var (family, config) = ModelFamilies.ReadConfig(Path.Combine(dir, "config.json"));
            var classes = new WeightClasses(config, family.Names);
            using var store = TensorStore.OpenDirectory(dir);
            foreach (string name in store.Names.Order(StringComparer.Ordinal))
            {
                scanned++;
                if (config.Quantization?.For(classes.Of(name)) is { } block && store.Entry(name).DType == TensorDType.U8)
                {
                    long b = FirstNonFiniteScale(store, name, block);
                    if (b >= 0) bad.Add($"{name}: the scale of block {b} ({block.Name()})");
                    continue;
                }
                long i = store.FirstNonFinite(name);
                if (i >= 0) bad.Add($"{name}: element {i}");
            }
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
            catch (NotSupportedException e)
            {
                // A weight format without a kernel on this device: the tensor scan above still stands.
                forward = $"the checked forward pass could not run: {e.Message}";
            }
        }
        return new ModelCheckReport(scanned, bad, forward);
    }

    // The first block (in storage order) of a block-format tensor whose scale is not finite (a NaN or ±∞ fp16 scale, or
    // MXFP4's E8M0 NaN code 0xFF): every element of that block is then non-finite. −1 when all are finite.
    static unsafe long FirstNonFiniteScale(TensorStore store, string name, DType block)
    {
        var e = store.Entry(name);
        byte* p = store.DataPointer(name);
        int bytes = block.BlockBytes();
        for (long b = 0; b < e.ByteLength / bytes; b++)
        {
            byte* s = p + b * bytes;
            bool finite = block == DType.MXFP4 ? s[0] != 0xFF : (s[1] & 0x7C) != 0x7C; // fp16 exponent all ones
            if (!finite) return b;
        }
        return -1;
    }
}
