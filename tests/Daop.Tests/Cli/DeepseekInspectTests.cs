using System.Text.Json.Nodes;
using Daop.Tests.Load.Config;

namespace Daop.Tests.Cli;

/// <summary><c>daop inspect</c> on a DeepSeek model: the KV cache it plans is MLA's compressed latent.</summary>
[Collection(ConsoleCollection.Name)]
public class DeepseekInspectTests
{
    // The fixture with tiny-mixtral-code's tokenizer cut to the fixture's 512 ids (inspect loads a tokenizer).
    static TempModelDir WithTokenizer(string fixture)
    {
        var dir = new TempModelDir(TestPaths.Fixture(fixture));
        var t = JsonNode.Parse(File.ReadAllText(Path.Combine(TestPaths.DefaultModel, "tokenizer.json")))!.AsObject();
        var model = t["model"]!.AsObject();
        var vocab = new JsonObject(model["vocab"]!.AsObject().Where(p => p.Value!.GetValue<int>() < 512)
            .Select(p => KeyValuePair.Create(p.Key, (JsonNode?)p.Value!.GetValue<int>())));
        bool Known(string s) => vocab.ContainsKey(s);
        var merges = new JsonArray(model["merges"]!.AsArray().Select(m => m!.GetValueKind() == System.Text.Json.JsonValueKind.String
                ? m.GetValue<string>().Split(' ') : m.AsArray().Select(x => x!.GetValue<string>()).ToArray())
            .Where(p => Known(p[0]) && Known(p[1]) && Known(p[0] + p[1]))
            .Select(p => (JsonNode?)JsonValue.Create(p[0] + " " + p[1])).ToArray());
        model["vocab"] = vocab;
        model["merges"] = merges;
        File.WriteAllText(Path.Combine(dir.Path, "tokenizer.json"), t.ToJsonString());
        return dir;
    }

    [Theory]
    [InlineData("deepseekv2-tiny")]
    [InlineData("deepseekv3-tiny")]
    public async Task KvCacheIsTheCompressedLatent(string fixture)
    {
        using var dir = WithTokenizer(fixture);
        var r = await CliRunner.Run("inspect", dir.Path, "--vram-budget", "64MiB", "--ctx-size", "4096");
        Assert.True(r.ExitCode == 0, r.Err);
        // 3 layers × 4096 positions × (kv_lora_rank 24 + qk_rope_head_dim 8) fp32 = 1.5 MiB, where expanded K and V would
        // take 3 × 4096 × 2 × 4 heads × (16 + 8) floats: six times as much.
        Assert.Contains("one KV cache of 4096 positions (1.5 MiB)", r.Out);
    }
}
