using System.Security.Cryptography;
using System.Text.Json;
using Daop.Engine.Load.Gguf;
using Daop.Engine.Load.Safetensors;
using Daop.Engine.Model;
using Daop.Tests.Model;

namespace Daop.Tests.Load.Gguf;

/// <summary>
/// llama.cpp's results on the GGUF fixtures (tests/fixtures/gguf/llamacpp-reference.*, made by
/// tests/tools/gguf-references.py): logits of each fixture's reference input_ids, greedy continuations, tokenizations,
/// and each file's tensor hash, so a file the tests rewrite (<see cref="GgufFixtureFiles.Written"/>) is known to be the
/// one llama.cpp ran on.
/// </summary>
sealed class LlamaCppReference : IDisposable
{
    readonly TensorStore _refs = TensorStore.OpenFile(System.IO.Path.Combine(GgufFixtureFiles.Dir, "llamacpp-reference.safetensors"));
    readonly JsonDocument _manifest = JsonDocument.Parse(File.ReadAllBytes(System.IO.Path.Combine(GgufFixtureFiles.Dir, "llamacpp-reference.json")));

    /// <summary>The manifest (commands, per-file hashes and llama.cpp-vs-transformers numbers, tokenizations).</summary>
    public JsonElement Manifest => _manifest.RootElement;

    /// <summary>llama.cpp's logits for <paramref name="file"/>: [rows, positions, V].</summary>
    public (float[] Data, long[] Shape) Logits(string file) => _refs.Floats($"{file}/logits");

    /// <summary>llama.cpp's greedy ids for <paramref name="file"/>: [rows, n].</summary>
    public (long[] Data, long[] Shape) Greedy(string file) => _refs.Int64s($"{file}/greedy");

    /// <summary>llama.cpp's tokenization of prompt <paramref name="i"/> of tiny-mixtral-code (no BOS).</summary>
    public int[] PromptIds(string file, int i) => _refs.Int64s($"{file}/prompt_ids.{i}").Data.Select(x => (int)x).ToArray();

    /// <summary>The tensor hash llama.cpp's input had.</summary>
    public string TensorHash(string file) => Manifest.GetProperty("files").GetProperty(file).GetProperty("tensor_sha256").GetString()!;

    /// <summary>
    /// The path of <paramref name="file"/>: committed, or rewritten into <paramref name="tmp"/> and checked to hold exactly
    /// the tensors llama.cpp ran on.
    /// </summary>
    public string Path(string file, string tmp)
    {
        string committed = GgufFixtureFiles.Committed(file);
        if (File.Exists(committed)) return committed;
        var (_, fixture, type, mha) = GgufFixtureFiles.Written().Single(w => w.File == file || w.File == file.Replace("-q8_0.gguf", "-q8_0c.gguf"));
        string path = GgufFixtureFiles.Write(fixture, type, System.IO.Path.Combine(tmp, file), mha);
        Assert.True(TensorHash(file) == HashTensors(path), $"{file}: the rewritten file's tensors differ from those llama.cpp ran on");
        return path;
    }

    /// <summary>SHA-256 over (name, type, dims, bytes) of every tensor, by name (as the reference script computes it).</summary>
    public static string HashTensors(string path)
    {
        using var c = GgufCheckpoint.Open(path);
        using var h = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var t in c.Tensors.OrderBy(t => t.Name, StringComparer.Ordinal))
        {
            h.AppendData(System.Text.Encoding.UTF8.GetBytes(t.Name));
            h.AppendData(BitConverter.GetBytes((uint)t.Type));
            foreach (long d in t.Dims) h.AppendData(BitConverter.GetBytes((ulong)d));
            var f = c.Files.Single(f => f.Tensors.ContainsKey(t.Name));
            h.AppendData(f.Bytes(t));
        }
        return Convert.ToHexStringLower(h.GetHashAndReset());
    }

    /// <summary>Daop's logits of the fixture's reference input_ids on <paramref name="model"/>: [rows, positions, V] (positions as the reference keeps them).</summary>
    public static float[] DaopLogits(MoeModel model, string fixture, int[]? positions = null)
    {
        using var hf = TensorStore.OpenFile(System.IO.Path.Combine(GgufFixtureFiles.Source(fixture), "reference.safetensors"));
        var (ids, shape) = hf.Int64s("input_ids");
        int rows = (int)shape[0], len = (int)shape[1], v = model.Config.VocabSize;
        var keep = positions ?? Enumerable.Range(0, len).ToArray();
        var result = new float[rows * keep.Length * v];
        for (int b = 0; b < rows; b++)
        {
            var logits = new float[len * v];
            model.Forward(ids.Skip(b * len).Take(len).Select(x => (int)x).ToArray(), 0, model.NewCache(), logits, allLogits: true);
            for (int i = 0; i < keep.Length; i++) logits.AsSpan(keep[i] * v, v).CopyTo(result.AsSpan((b * keep.Length + i) * v, v));
        }
        return result;
    }

    /// <summary>Daop's KV-cached greedy continuation of each of the fixture's greedy_prompt_ids rows.</summary>
    public static int[][] DaopGreedy(MoeModel model, string fixture, int n)
    {
        using var hf = TensorStore.OpenFile(System.IO.Path.Combine(GgufFixtureFiles.Source(fixture), "reference.safetensors"));
        var (prompts, shape) = hf.Int64s("greedy_prompt_ids");
        return Enumerable.Range(0, (int)shape[0]).Select(b => GoldenTests.Greedy(model,
            prompts.Skip(b * (int)shape[1]).Take((int)shape[1]).Select(x => (int)x).ToArray(), n)).ToArray();
    }

    public void Dispose()
    {
        _refs.Dispose();
        _manifest.Dispose();
    }
}
