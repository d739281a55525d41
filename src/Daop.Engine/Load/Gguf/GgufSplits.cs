using System.Globalization;
using System.Text.RegularExpressions;

namespace Daop.Engine.Load.Gguf;

/// <summary>
/// Where a GGUF model's files are: a single <c>.gguf</c> file, a split set named as llama.cpp's gguf-split names it
/// (<c>name-00001-of-00003.gguf</c>, <c>split.no</c> / <c>split.count</c> / <c>split.tensors.count</c> in the metadata),
/// or a folder holding exactly one of either.
/// </summary>
public static partial class GgufSplits
{
    /// <summary>Most files of a split set (gguf-split numbers them with five digits).</summary>
    public const int MaxSplits = 99999;

    [GeneratedRegex(@"^(?<prefix>.+)-(?<no>\d{5})-of-(?<count>\d{5})\.gguf$", RegexOptions.CultureInvariant | RegexOptions.IgnoreCase)]
    private static partial Regex SplitName();

    /// <summary>True for a path that names a <c>.gguf</c> file (existing or not).</summary>
    public static bool IsGgufFile(string path) => path.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase) && !Directory.Exists(path);

    /// <summary>
    /// The GGUF file to load for <paramref name="path"/>: the path itself when it names a .gguf file, or the one .gguf model
    /// of a folder that has no config.json (a folder with config.json is a Hugging Face folder); null when it is neither.
    /// Throws when a folder holds several GGUF models.
    /// </summary>
    public static string? Find(string path)
    {
        if (IsGgufFile(path)) return path;
        if (!Directory.Exists(path) || File.Exists(Path.Combine(path, "config.json"))) return null;
        var files = Directory.GetFiles(path, "*.gguf").Order(StringComparer.Ordinal).ToArray();
        if (files.Length == 0) return null;
        var models = files.Where(f => SplitName().Match(Path.GetFileName(f)) is not { Success: true } m || m.Groups["no"].Value == "00001").ToArray();
        if (models.Length == 1) return models[0];
        throw new ModelLoadException(models.Length == 0
            ? $"{path}: holds parts of a split GGUF model but not its first part (-00001-of-)"
            : $"{path}: holds {models.Length} GGUF models ({string.Join(", ", models.Select(Path.GetFileName))}); give the file to load");
    }

    /// <summary>
    /// The files of the model <paramref name="path"/> belongs to, in split order: just the file, or every part of its split
    /// set when the name says it is one (any part may be given).
    /// </summary>
    public static string[] Parts(string path)
    {
        var m = SplitName().Match(Path.GetFileName(path));
        if (!m.Success) return [path];
        int count = int.Parse(m.Groups["count"].Value, CultureInfo.InvariantCulture);
        int no = int.Parse(m.Groups["no"].Value, CultureInfo.InvariantCulture);
        if (count < 1 || no < 1 || no > count)
            throw new ModelLoadException($"{path}: split part {no} of {count} is not a valid split name");
        string dir = Path.GetDirectoryName(path) ?? "";
        string prefix = m.Groups["prefix"].Value;
        return Enumerable.Range(1, count)
            .Select(i => Path.Combine(dir, string.Create(CultureInfo.InvariantCulture, $"{prefix}-{i:D5}-of-{count:D5}.gguf"))).ToArray();
    }

    /// <summary>
    /// Checks that the opened <paramref name="files"/> (from <see cref="Parts"/>) form one split set: each names its own
    /// number and the set's size, and the first counts the tensors of all of them.
    /// </summary>
    public static void Check(IReadOnlyList<GgufFile> files)
    {
        for (int i = 0; i < files.Count; i++)
        {
            var meta = new GgufMetadata(files[i].Path, files[i].Metadata);
            int count = meta.IntOr("split.count", 1), no = meta.IntOr("split.no", 0);
            if (count != files.Count)
                throw meta.Error("split.count", files.Count == 1
                    ? $"is {count}: the file is part of a split model; load its parts named -00001-of-{count:D5}.gguf ..."
                    : $"is {count}, but the file name says the set has {files.Count} parts");
            if (no != i) throw meta.Error("split.no", $"is {no}, but the file name says it is part {i} (counting from 0)");
        }
        if (files.Count > 1)
        {
            var first = new GgufMetadata(files[0].Path, files[0].Metadata);
            int total = files.Sum(f => f.TensorList.Count);
            if (first.IntOrNull("split.tensors.count") is { } declared && declared != total)
                throw first.Error("split.tensors.count", $"is {declared}, but the {files.Count} parts hold {total} tensors");
        }
    }
}
