using System;

namespace Daop.Generators.Config;

/// <summary>Which additional files are model configs, and what to call the model each describes.</summary>
internal static class ConfigFiles
{
    /// <summary>
    /// True for <c>…/models/…/config.json</c> (a checkpoint folder's config; exactly that name, so
    /// <c>generation_config.json</c> and <c>tokenizer_config.json</c> next to it are not taken) and for any
    /// <c>…/models/configs/*.json</c> (configs collected without their weights).
    /// </summary>
    public static bool IsModelConfig(string path)
    {
        var parts = Split(path);
        if (parts.Length < 2) return false;
        string file = parts[parts.Length - 1];
        if (!file.EndsWith(".json", StringComparison.OrdinalIgnoreCase)) return false;
        if (parts.Length >= 3 && Is(parts[parts.Length - 2], "configs") && Is(parts[parts.Length - 3], "models")) return true;
        if (!Is(file, "config.json")) return false;
        for (int i = 0; i < parts.Length - 1; i++)
            if (Is(parts[i], "models")) return true;
        return false;
    }

    /// <summary>The checkpoint folder's name for <c>…/name/config.json</c>, else the file name without <c>.json</c>.</summary>
    public static string ModelName(string path)
    {
        var parts = Split(path);
        string file = parts[parts.Length - 1];
        if (Is(file, "config.json") && parts.Length >= 2) return parts[parts.Length - 2];
        return file.Substring(0, file.Length - ".json".Length);
    }

    static string[] Split(string path) => path.Replace('\\', '/').Split(new[] { '/' }, StringSplitOptions.RemoveEmptyEntries);

    static bool Is(string a, string b) => string.Equals(a, b, StringComparison.OrdinalIgnoreCase);
}
