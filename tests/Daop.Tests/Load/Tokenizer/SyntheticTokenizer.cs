using System.Text.Json;
using Daop.Engine.Load.Tokenizer;

namespace Daop.Tests.Load.Tokenizer;

/// <summary>Writes small hand-made tokenizer.json files so single features can be tested in isolation.</summary>
internal static class SyntheticTokenizer
{
    /// <summary>
    /// Builds a BPE tokenizer.json. <paramref name="components"/> are raw JSON members added at the top
    /// level (e.g. "\"pre_tokenizer\": {...}"); <paramref name="modelExtra"/> raw members of "model".
    /// </summary>
    public static string Json(string[] vocab, string[][] merges, string addedTokens = "[]", string components = "", string modelExtra = "")
    {
        var vocabJson = JsonSerializer.Serialize(vocab.Select((t, i) => (t, i)).ToDictionary(x => x.t, x => x.i));
        var mergesJson = JsonSerializer.Serialize(merges);
        string extra = modelExtra.Length > 0 ? ", " + modelExtra : "";
        string comps = components.Length > 0 ? ", " + components : "";
        return $$"""
            { "version": "1.0", "added_tokens": {{addedTokens}},
              "model": { "type": "BPE", "vocab": {{vocabJson}}, "merges": {{mergesJson}}{{extra}} }{{comps}} }
            """;
    }

    public static HfTokenizer Load(string json)
    {
        string dir = TokTestPaths.NewTempDir();
        try
        {
            string path = Path.Combine(dir, "tokenizer.json");
            File.WriteAllText(path, json);
            return HfTokenizer.FromFile(path);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    public static string Added(int id, string content, bool special = true, bool lstrip = false, bool rstrip = false,
        bool singleWord = false, bool normalized = false)
        => JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["id"] = id, ["content"] = content, ["special"] = special, ["lstrip"] = lstrip,
            ["rstrip"] = rstrip, ["single_word"] = singleWord, ["normalized"] = normalized,
        });
}
