using System.Text.Json;
using System.Text.Json.Nodes;

namespace Daop.Tests.Load.Config;

/// <summary>A temporary copy of a fixture model folder whose config or weights a test can damage.</summary>
sealed class TempModelDir : IDisposable
{
    public string Path { get; }

    public TempModelDir(string fixture)
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "daop-test-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
        foreach (var f in Directory.GetFiles(fixture)) File.Copy(f, System.IO.Path.Combine(Path, System.IO.Path.GetFileName(f)));
    }

    public string ConfigPath => System.IO.Path.Combine(Path, "config.json");

    /// <summary>Edits config.json as a JSON object.</summary>
    public void EditConfig(Action<JsonObject> edit)
    {
        var node = JsonNode.Parse(File.ReadAllText(ConfigPath))!.AsObject();
        edit(node);
        File.WriteAllText(ConfigPath, node.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    /// <summary>Rewrites model.safetensors with the header edited (data section unchanged).</summary>
    public void EditWeightsHeader(Action<JsonObject> edit)
    {
        string file = System.IO.Path.Combine(Path, "model.safetensors");
        var bytes = File.ReadAllBytes(file);
        long n = BitConverter.ToInt64(bytes, 0);
        var header = JsonNode.Parse(bytes.AsSpan(8, (int)n))!.AsObject();
        edit(header);
        var newHeader = System.Text.Encoding.UTF8.GetBytes(header.ToJsonString());
        using var fs = File.Create(file);
        fs.Write(BitConverter.GetBytes((long)newHeader.Length));
        fs.Write(newHeader);
        fs.Write(bytes.AsSpan(8 + (int)n));
    }

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { }
    }
}
