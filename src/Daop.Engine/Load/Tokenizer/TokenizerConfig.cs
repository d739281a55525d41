using System.Text.Json;

namespace Daop.Engine.Load.Tokenizer;

/// <summary>
/// The parts of tokenizer_config.json Daop uses: the bos/eos token strings (for ids and for chat
/// templates) and the chat template when the folder has no chat_template.jinja.
/// </summary>
internal sealed class TokenizerConfig
{
    public const string FileName = "tokenizer_config.json";

    public string? BosToken { get; private init; }
    public string? EosToken { get; private init; }

    /// <summary>The "chat_template" value: a string, or the "default" entry of a named list.</summary>
    public string? ChatTemplate { get; private init; }

    /// <summary>Reads <c>modelDir/tokenizer_config.json</c>; null when the file does not exist.</summary>
    public static TokenizerConfig? FromDirectory(string modelDir)
    {
        string path = Path.Combine(modelDir, FileName);
        if (!File.Exists(path))
            return null;
        var json = new TokJson(FileName);
        using var doc = TokJson.Parse(path);
        var root = doc.RootElement;
        if (root.ValueKind != JsonValueKind.Object)
            throw json.Error($"the top level must be an object, found {root.ValueKind}");
        return new TokenizerConfig
        {
            BosToken = TokenString(root, "bos_token", json),
            EosToken = TokenString(root, "eos_token", json),
            ChatTemplate = Template(root, json),
        };
    }

    /// <summary>Special tokens appear as "&lt;s&gt;" or as an AddedToken object {"content": "&lt;s&gt;", ...}.</summary>
    private static string? TokenString(JsonElement root, string name, TokJson json)
    {
        if (!root.TryGetProperty(name, out var v))
            return null;
        return v.ValueKind switch
        {
            JsonValueKind.Null => null,
            JsonValueKind.String => v.GetString(),
            JsonValueKind.Object => json.String(v, "content", name),
            _ => throw json.Error($"{name} must be a string or an object with \"content\", found {v.ValueKind}"),
        };
    }

    private static string? Template(JsonElement root, TokJson json)
    {
        if (!root.TryGetProperty("chat_template", out var v) || v.ValueKind == JsonValueKind.Null)
            return null;
        if (v.ValueKind == JsonValueKind.String)
            return v.GetString();
        if (v.ValueKind != JsonValueKind.Array)
            throw json.Error($"chat_template must be a string or a list of {{\"name\", \"template\"}}, found {v.ValueKind}");
        int i = 0;
        foreach (var entry in v.EnumerateArray())
        {
            string where = $"chat_template[{i++}]";
            if (json.String(entry, "name", where) == "default")
                return json.String(entry, "template", where);
        }
        throw json.Error("chat_template has no entry named 'default'");
    }
}
