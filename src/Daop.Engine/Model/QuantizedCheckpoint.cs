using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Daop.Engine.Load;
using Daop.Engine.Load.Config;
using Daop.Engine.Load.Safetensors;
using Daop.Engine.Model.Families;
using Daop.Kernels;
using Daop.Kernels.Quant;

namespace Daop.Engine.Model;

/// <summary>What <see cref="QuantizedCheckpoint.Write"/> wrote.</summary>
/// <param name="Files">The weight files written (plus the index when sharded), in order.</param>
/// <param name="Tensors">Tensors written.</param>
/// <param name="Converted">Matrices converted (the others copied byte for byte).</param>
/// <param name="SourceBytes">Bytes of the converted matrices in the source checkpoint.</param>
/// <param name="Bytes">Bytes of the converted matrices as written.</param>
/// <param name="TotalBytes">Bytes of every tensor written.</param>
/// <param name="Seconds">Wall time, reading, converting and writing.</param>
/// <param name="Quantization">The quantization_config written into config.json, or null (no block-format tensor).</param>
public sealed record QuantizeReport(IReadOnlyList<string> Files, int Tensors, int Converted, long SourceBytes, long Bytes, long TotalBytes,
    double Seconds, QuantizationConfig? Quantization);

/// <summary>
/// <c>daop quantize</c>: writes a checkpoint folder whose routed experts (and dense matrices, when asked) are stored in
/// another type, most usefully a block format, so that loading it maps the quantized bytes with no work at start-up.
/// </summary>
/// <remarks>
/// The folder is a Hugging Face folder: the same tensor names; every tensor the conversion does not touch copied byte for
/// byte; a converted matrix [rows, cols] stored as F32/F16/BF16 [rows, cols] or, for a block format, as U8
/// [rows, <c>DTypes.RowBytes(cols)</c>] holding each row's blocks in GGUF's layout (<see cref="DType"/>); config.json with
/// a <see cref="QuantizationConfig"/> naming each quantized class's format; the tokenizer, chat template and generation
/// config files copied. Weights go to <c>model.safetensors</c>, or to shards of at most the given size with
/// <c>model.safetensors.index.json</c>.
/// </remarks>
public static partial class QuantizedCheckpoint
{
    /// <summary>Largest shard by default (Hugging Face's <c>max_shard_size</c> default).</summary>
    public const long DefaultShardBytes = 5_000_000_000;

    /// <summary>Files of a model folder copied as they are, when present (besides any LICENSE file).</summary>
    public static IReadOnlyList<string> CopiedFiles { get; } =
    [
        "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "tokenizer.model",
        "vocab.json", "merges.txt", "chat_template.jinja", "chat_template.json", "generation_config.json",
    ];

    /// <summary>
    /// Converts the checkpoint in <paramref name="modelDir"/> into <paramref name="outDir"/> (created if absent; it must
    /// not hold a config.json or weights already): routed experts to <paramref name="experts"/>, attention, shared-expert and
    /// dense-MLP matrices to <paramref name="dense"/> (null: as stored); <paramref name="progress"/> hears one line per file.
    /// </summary>
    /// <exception cref="ModelLoadException">The source folder is not a model Daop loads, or a stored block format cannot become the one asked for.</exception>
    /// <exception cref="ArgumentException">No type asked for, or an output folder that is the source or already holds a model.</exception>
    public static unsafe QuantizeReport Write(string modelDir, string outDir, DType? experts, DType? dense,
        long maxShardBytes = DefaultShardBytes, Action<string>? progress = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(modelDir);
        ArgumentException.ThrowIfNullOrEmpty(outDir);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxShardBytes, 1);
        if (experts == null && dense == null) throw new ArgumentException("give an expert dtype, a dense dtype or both");
        if (!Directory.Exists(modelDir)) throw new ModelLoadException($"{modelDir}: model folder not found");
        modelDir = ModelFiles.ResolveHubCache(modelDir);
        CheckOutput(modelDir, outDir);
        var clock = Stopwatch.StartNew();
        string configPath = Path.Combine(modelDir, "config.json");
        var (family, config) = ModelFamilies.ReadConfig(configPath);
        var classes = new WeightClasses(config, family.Names);
        using var store = TensorStore.OpenDirectory(modelDir);
        if (family.Tensors(store, config) != store)
            throw new ModelLoadException($"{configPath}: 'daop quantize' writes one tensor per expert matrix and cannot yet rewrite " +
                $"{config.ModelType}'s stacked experts; convert them as the model loads instead (--expert-dtype)");
        if (config.Quantization is { } stored) store.WithBlockFormats(name => stored.For(classes.Of(name)));

        // Every matrix the model reads, found and shape-checked as loading the model finds and checks it.
        var matrices = new Dictionary<string, WeightMatrix>(StringComparer.Ordinal);
        ModelWeights.Load(new Recorder(store, matrices), config, family.Names);

        DType? Target(WeightClass c) => c switch { WeightClass.Experts => experts, WeightClass.Dense => dense, _ => null };
        var tensors = new List<SafetensorsTensor>();
        int converted = 0;
        long sourceBytes = 0, bytes = 0;
        foreach (string name in store.Names.OrderBy(NaturalKey, StringComparer.Ordinal))
        {
            var e = store.Entry(name);
            // A stack [E, rows, cols] the model reads as matrices name[e] converts whole, as [E·rows, cols], and keeps its E.
            string read = !matrices.ContainsKey(name) && e.Shape.Length == 3 && matrices.ContainsKey($"{name}[0]") ? $"{name}[0]" : name;
            if (matrices.ContainsKey($"{name}[0].T") && Target(classes.Of(name)) is { } t && t != matrices[$"{name}[0].T"].Type)
                throw new ModelLoadException($"{configPath}: tensor '{name}' holds its matrices input-major (read transposed at load); " +
                    $"daop quantize does not write it as {t.Name()} yet: quantize at load instead (--expert-dtype / --dense-dtype)");
            if (matrices.TryGetValue(read, out var m) && Target(classes.Of(read)) is { } to && to != m.Type)
            {
                if (read != name) m = new WeightMatrix(m.Data, m.Type, checked((int)(e.Shape[0] * m.Rows)), m.Cols);
                if (!WeightConvert.CanConvert(m.Type, to))
                    throw new ModelLoadException($"{configPath}: tensor '{name}' is stored as {m.Type.Name()}; converting it to {to.Name()} would " +
                        "quantize its rounding again: quantize the original F32/F16/BF16 checkpoint instead");
                tensors.Add(Converting(name, m, to, stack: read != name ? e.Shape[0] : 1));
                converted++;
                sourceBytes += m.ByteLength;
                bytes += WeightConvert.ByteLength(m, to);
            }
            else tensors.Add(new SafetensorsTensor(name, e.DType, e.Shape, e.ByteLength, SafetensorsWriter.FromMemory(store.DataPointer(name), e.ByteLength)));
        }

        DType? Written(WeightClass c) => (Target(c) ?? config.Quantization?.For(c)) is { } t && t.IsBlock() ? t : null;
        var quantization = Written(WeightClass.Experts) == null && Written(WeightClass.Dense) == null
            ? null : new QuantizationConfig(Written(WeightClass.Experts), Written(WeightClass.Dense));
        Directory.CreateDirectory(outDir);
        var files = WriteShards(outDir, tensors, maxShardBytes, progress);
        WriteConfig(configPath, Path.Combine(outDir, "config.json"), quantization);
        CopyFiles(modelDir, outDir);
        return new QuantizeReport(files, tensors.Count, converted, sourceBytes, bytes, tensors.Sum(t => t.ByteLength),
            clock.Elapsed.TotalSeconds, quantization);
    }

    static void CheckOutput(string modelDir, string outDir)
    {
        string full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(outDir));
        if (string.Equals(full, Path.TrimEndingDirectorySeparator(Path.GetFullPath(modelDir)), StringComparison.Ordinal))
            throw new ArgumentException($"{outDir}: the output folder is the model folder; give a new folder");
        if (File.Exists(full)) throw new ArgumentException($"{outDir}: is a file; give a folder");
        if (Directory.Exists(full) && (File.Exists(Path.Combine(full, "config.json")) || Directory.EnumerateFiles(full, "*.safetensors").Any()))
            throw new ArgumentException($"{outDir}: already holds a model (config.json or *.safetensors); give a new or empty folder");
        string? parent = Path.GetDirectoryName(full);
        if (parent != null && !Directory.Exists(parent)) throw new ArgumentException($"{outDir}: the folder {parent} does not exist");
    }

    // A matrix converted when its file is written, one at a time, into native memory freed right after; a stack of
    // `stack` matrices keeps its leading dimension ([E, rows / E, ...]).
    static unsafe SafetensorsTensor Converting(string name, WeightMatrix m, DType to, long stack = 1)
    {
        long bytes = WeightConvert.ByteLength(m, to);
        var (dtype, inner) = to switch
        {
            DType.F32 => (TensorDType.F32, m.Cols),
            DType.F16 => (TensorDType.F16, m.Cols),
            DType.BF16 => (TensorDType.BF16, m.Cols),
            _ => (TensorDType.U8, to.RowBytes(m.Cols)),
        };
        long[] shape = stack > 1 ? [stack, m.Rows / stack, inner] : [m.Rows, inner];
        return new SafetensorsTensor(name, dtype, shape, bytes, s =>
        {
            var p = (byte*)NativeMemory.AlignedAlloc((nuint)Math.Max(64, bytes), 64);
            try
            {
                WeightConvert.Matrix(m, p, to);
                SafetensorsWriter.FromMemory(p, bytes)(s);
            }
            finally { NativeMemory.AlignedFree(p); }
        });
    }

    // model.safetensors, or model-0000i-of-0000n.safetensors shards in name order with model.safetensors.index.json.
    static List<string> WriteShards(string outDir, List<SafetensorsTensor> tensors, long maxShardBytes, Action<string>? progress)
    {
        var shards = new List<List<SafetensorsTensor>> { new() };
        long size = 0;
        foreach (var t in tensors)
        {
            if (size > 0 && size + t.ByteLength > maxShardBytes)
            {
                shards.Add([]);
                size = 0;
            }
            shards[^1].Add(t);
            size += t.ByteLength;
        }
        var metadata = new Dictionary<string, string> { ["format"] = "pt" };
        var files = new List<string>();
        var weightMap = new JsonObject();
        for (int i = 0; i < shards.Count; i++)
        {
            string file = shards.Count == 1 ? "model.safetensors"
                : string.Create(CultureInfo.InvariantCulture, $"model-{i + 1:D5}-of-{shards.Count:D5}.safetensors");
            SafetensorsWriter.Write(Path.Combine(outDir, file), shards[i], metadata);
            files.Add(file);
            foreach (var t in shards[i]) weightMap[t.Name] = file;
            long bytes = shards[i].Sum(t => t.ByteLength);
            progress?.Invoke(string.Create(CultureInfo.InvariantCulture,
                $"wrote {file} ({shards[i].Count} tensors, {(bytes >= 1_000_000_000 ? $"{bytes / 1e9:F2} GB" : $"{bytes / 1048576.0:F1} MiB")})"));
        }
        if (shards.Count > 1)
        {
            var index = new JsonObject
            {
                ["metadata"] = new JsonObject { ["total_size"] = tensors.Sum(t => t.ByteLength) },
                ["weight_map"] = weightMap,
            };
            File.WriteAllText(Path.Combine(outDir, "model.safetensors.index.json"), index.ToJsonString(Indented) + "\n");
            files.Add("model.safetensors.index.json");
        }
        return files;
    }

    static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    // The source config.json with quantization_config set (or removed when nothing is in a block format).
    static void WriteConfig(string source, string target, QuantizationConfig? quantization)
    {
        var root = JsonNode.Parse(JsonText.SkipBom(ModelFiles.ReadAll(source, ModelFiles.MaxConfigBytes)).Span.ToArray())!.AsObject();
        root.Remove(QuantizationConfig.Field);
        if (quantization != null) root[QuantizationConfig.Field] = quantization.ToJson();
        File.WriteAllText(target, root.ToJsonString(Indented) + "\n");
    }

    static void CopyFiles(string modelDir, string outDir)
    {
        foreach (string f in Directory.EnumerateFiles(modelDir))
        {
            string name = Path.GetFileName(f);
            if (CopiedFiles.Contains(name, StringComparer.Ordinal) || name.StartsWith("LICENSE", StringComparison.OrdinalIgnoreCase))
                File.Copy(f, Path.Combine(outDir, name)); // File.Copy follows a hub snapshot's links to the blobs
        }
    }

    // "layers.10.x" after "layers.9.x": digit runs compare as numbers.
    static string NaturalKey(string name) => Digits().Replace(name, d => d.Value.PadLeft(10, '0'));

    [GeneratedRegex("[0-9]+")]
    private static partial Regex Digits();

    // Records every matrix the model asks for, passing the source's answers through.
    sealed class Recorder(ITensorSource inner, Dictionary<string, WeightMatrix> matrices) : ITensorSource
    {
        public bool Contains(string name) => inner.Contains(name);

        public WeightMatrix Matrix(string name, int rows, int cols) => matrices[name] = inner.Matrix(name, rows, cols);

        public float[] Vector(string name, int length) => inner.Vector(name, length);

        public void Dispose() { }
    }
}
