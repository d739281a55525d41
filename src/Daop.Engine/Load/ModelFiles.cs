namespace Daop.Engine.Load;

/// <summary>
/// Reading the small files of a model folder (config, tokenizer, index, templates). Sizes come from the opened file, not
/// from a directory entry: in the Hugging Face hub cache every file of <c>snapshots/&lt;rev&gt;/</c> is a symbolic link into
/// <c>blobs/</c>, and a link's own size is the length of its target's path.
/// </summary>
public static class ModelFiles
{
    /// <summary>Largest config.json, generation_config.json or tokenizer_config.json read (16 MiB; real ones are kilobytes).</summary>
    public const long MaxConfigBytes = 16 << 20;

    /// <summary>
    /// The whole of <paramref name="path"/>, following symbolic links. Throws <see cref="ModelLoadException"/> naming the
    /// file when it is missing, unreadable or larger than <paramref name="maxBytes"/>.
    /// </summary>
    public static byte[] ReadAll(string path, long maxBytes)
    {
        try
        {
            using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan);
            long len = fs.Length;
            if (len > maxBytes)
                throw new ModelLoadException($"{path}: {len} bytes exceeds the {maxBytes}-byte limit for this file");
            var bytes = new byte[len];
            fs.ReadExactly(bytes);
            return bytes;
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new ModelLoadException($"{path}: file not found" + (IsDanglingLink(path) ? " (a symbolic link whose target is missing)" : ""), e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ModelLoadException($"{path}: cannot read ({e.Message})", e);
        }
    }

    /// <summary>
    /// Runs <paramref name="open"/> on <paramref name="path"/> (a weights file reader), turning a missing file and I/O
    /// errors (permissions, a file truncated or locked while read) into a <see cref="ModelLoadException"/> naming the file.
    /// </summary>
    public static T Open<T>(string path, Func<string, T> open)
    {
        if (!File.Exists(path))
            throw new ModelLoadException($"{path}: file not found" + (IsDanglingLink(path) ? " (a symbolic link whose target is missing)" : ""));
        try { return open(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ModelLoadException($"{path}: cannot read ({e.Message})", e);
        }
    }

    static bool IsDanglingLink(string path)
    {
        try { return new FileInfo(path).LinkTarget != null; }
        catch (IOException) { return false; }
    }

    /// <summary>
    /// The snapshot folder to load when <paramref name="dir"/> is a hub cache entry (<c>models--org--name</c> holding
    /// <c>refs/main</c> and <c>snapshots/</c>), else <paramref name="dir"/> itself.
    /// </summary>
    public static string ResolveHubCache(string dir)
    {
        string refs = Path.Combine(dir, "refs", "main"), snapshots = Path.Combine(dir, "snapshots");
        if (File.Exists(Path.Combine(dir, "config.json")) || !Directory.Exists(snapshots)) return dir;
        if (File.Exists(refs))
        {
            string rev = File.ReadAllText(refs).Trim();
            string snap = Path.Combine(snapshots, rev);
            if (rev.Length is > 0 and < 256 && rev.IndexOfAny(['/', '\\']) < 0 && Directory.Exists(snap)) return snap;
        }
        // No usable ref: the one snapshot there is, if there is exactly one.
        var all = Directory.GetDirectories(snapshots);
        return all.Length == 1 ? all[0] : dir;
    }
}
