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
