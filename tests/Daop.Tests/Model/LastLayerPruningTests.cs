using Daop.Engine.Model;
using Daop.Engine.Model.Layers;
using Daop.Engine.Schedule;

namespace Daop.Tests.Model;

/// <summary>
/// A prefill that asks for the last token's logits runs the last layer's FFN on that token alone (the other rows are
/// never read): the logits equal the unpruned pass's last row (all logits asked for) to fp32 rounding, for one chunk and
/// several, and the KV cache it leaves decodes the same next token. An observer (it wants every token's routing) turns
/// pruning off: the last layer then routes every prompt token.
/// </summary>
public class LastLayerPruningTests
{
    sealed class CountingObserver : IRoutingObserver
    {
        public int LastLayerTokens;
        public int LastLayer;
        public void OnRouted(int layer, int startPos, ReadOnlySpan<float> gateInput, ReadOnlySpan<float> logits, RoutingBatch routing)
        {
            if (layer == LastLayer) LastLayerTokens += routing.Tokens;
        }
    }

    [Theory]
    [InlineData(40, 0)]   // one chunk
    [InlineData(150, 64)] // chunks of 64: the earlier chunks skip the last layer's FFN
    public void PrunedPrefillGivesTheLastRowOfTheFullPass(int promptLength, int maxChunk)
    {
        var options = new ModelOptions { ContextLength = 256 };
        if (maxChunk > 0) options = options with { MaxChunkTokens = maxChunk };
        using var m = MoeModel.Load(TestPaths.DefaultModel, options);
        Assert.True(m.Experts.AllowsLastLayerPruning);
        int v = m.Config.VocabSize;
        var rng = new Random(3);
        var prompt = Enumerable.Range(0, promptLength).Select(_ => rng.Next(v)).ToArray();

        var all = new float[promptLength * v];
        var fullCache = m.NewCache();
        m.Forward(prompt, 0, fullCache, all, allLogits: true);
        var pruned = new float[v];
        var cache = m.NewCache();
        m.Forward(prompt, 0, cache, pruned);
        var want = all.AsSpan((promptLength - 1) * v, v);
        float max = 0;
        for (int i = 0; i < v; i++) max = Math.Max(max, Math.Abs(want[i]));
        for (int i = 0; i < v; i++) Assert.True(Math.Abs(pruned[i] - want[i]) <= 1e-4f * Math.Max(1, max), $"logit {i}: {pruned[i]} vs {want[i]}");

        // The caches hold the same keys and values: one decode step from each gives the same logits.
        int next = Array.IndexOf(pruned, pruned.Max());
        var a = new float[v];
        var b = new float[v];
        m.Forward([next], promptLength, fullCache, a);
        m.Forward([next], promptLength, cache, b);
        Assert.Equal(a, b);
    }

    [Fact]
    public void AnObserverSeesEveryPromptTokenInTheLastLayer()
    {
        using var m = MoeModel.Load(TestPaths.DefaultModel, new ModelOptions { ContextLength = 64 });
        var counter = new CountingObserver { LastLayer = m.Config.NumLayers - 1 };
        m.Observer = counter;
        m.Forward(Enumerable.Range(5, 20).ToArray(), 0, m.NewCache(), new float[m.Config.VocabSize]);
        Assert.Equal(20, counter.LastLayerTokens);
    }
}
