using System.Text.Json;
using Daop.Engine.Load.Safetensors;
using Daop.Engine.Load.Tokenizer;
using Daop.Engine.Model;

namespace Daop.Tests.Model;

/// <summary>The embedded default model end to end: text → our tokenizer → model → 32 greedy tokens, against transformers.</summary>
public class EmbeddedModelTests
{
    [Fact]
    public void GreedyContinuationsOfTheThreePromptsMatchExactly()
    {
        string dir = TestPaths.DefaultModel;
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "reference.json")));
        var prompts = doc.RootElement.GetProperty("prompts").EnumerateArray().Select(p => p.GetString()!).ToArray();
        using var reference = TensorStore.OpenFile(Path.Combine(dir, "reference.safetensors"));
        var (expected, shape) = reference.Int64s("greedy_new_ids");
        Assert.Equal(3, prompts.Length);
        Assert.Equal(3, shape[0]);
        int n = (int)shape[1];

        var tok = HfTokenizer.FromDirectory(dir);
        using var model = MoeModel.Load(dir);
        for (int i = 0; i < prompts.Length; i++)
        {
            var ids = tok.Encode(prompts[i], addSpecialTokens: false);
            var want = expected.Skip(i * n).Take(n).Select(x => (int)x).ToArray();
            Assert.Equal(want, GoldenTests.Greedy(model, ids, n));
        }
    }
}

public class TextGeneratorTests
{
    [Fact]
    public async Task StreamedPiecesConcatenateToTheDecodedGreedyText()
    {
        string dir = TestPaths.DefaultModel;
        var tok = HfTokenizer.FromDirectory(dir);
        using var model = MoeModel.Load(dir);
        var gen = new Daop.Engine.Generate.TextGenerator(model, tok);
        var opts = new Daop.Engine.Generate.SamplingOptions { MaxNewTokens = 40 };
        var pieces = new List<string>();
        await foreach (var p in gen.GenerateAsync("def fibonacci(n):\n", opts, addSpecialTokens: false)) pieces.Add(p);
        string whole = gen.Generate("def fibonacci(n):\n", opts, addSpecialTokens: false);
        Assert.True(pieces.Count > 1);
        Assert.Equal(whole, string.Concat(pieces));
        Assert.NotEmpty(whole.Trim());
    }

    [Fact]
    public async Task CancellationStopsTheStream()
    {
        string dir = TestPaths.DefaultModel;
        var tok = HfTokenizer.FromDirectory(dir);
        using var model = MoeModel.Load(dir);
        var gen = new Daop.Engine.Generate.TextGenerator(model, tok);
        using var cts = new CancellationTokenSource();
        var stats = new Daop.Engine.Generate.GenerationStats();
        int n = 0;
        await foreach (var _ in gen.GenerateAsync("import os\n", new() { MaxNewTokens = 500, StopTokenIds = [] }, false, stats, cts.Token))
            if (++n == 5) cts.Cancel();
        Assert.Equal(Daop.Engine.Generate.FinishReason.Cancelled, stats.Finish);
        Assert.True(stats.GeneratedTokens < 20);
    }
}
