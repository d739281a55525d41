using System.Numerics.Tensors;
using Daop.Engine.Api;
using Daop.Engine.Generate;
using Daop.Engine.Model;
using Daop.Kernels.Cpu;

namespace Daop.Tests.Api;

/// <summary>
/// Embeddings: <see cref="MoeModel.ForwardHidden"/> gives the states the LM head reads (its logits equal the forward
/// pass's, over several chunks), and <see cref="DaopModel.EmbedAsync"/> is their mean over the text's tokens at unit length.
/// </summary>
public class EmbeddingTests
{
    [Fact]
    public void HiddenStatesGiveTheForwardPassLogits()
    {
        using var m = MoeModel.Load(TestPaths.DefaultModel, new ModelOptions { ContextLength = 128, MaxChunkTokens = 32 });
        int v = m.Config.VocabSize, h = m.Config.HiddenSize, t = 70;
        var rng = new Random(9);
        var tokens = Enumerable.Range(0, t).Select(_ => rng.Next(v)).ToArray();
        var want = new float[t * v];
        m.Forward(tokens, 0, m.NewCache(), want, allLogits: true);
        var hidden = new float[t * h];
        m.ForwardHidden(tokens, hidden);
        var got = new float[t * v];
        MatMul.Forward(m.Weights.LmHead.W, hidden, got, t);
        for (int r = 0; r < t; r++)
            LogitsAssert.Close(want.AsSpan(r * v, v), got.AsSpan(r * v, v), $"position {r}", 1e-4);
    }

    [Fact]
    public async Task EmbeddingIsTheNormalizedMeanOfTheHiddenStates()
    {
        using var model = DaopModel.Load(TestPaths.DefaultModel);
        const string text = "def fibonacci(n):";
        var (e, n) = await model.EmbedAsync(text);
        var ids = model.Tokenize(text);
        Assert.Equal(ids.Length, n);
        int h = model.Info.HiddenSize;
        Assert.Equal(h, e.Length);
        Assert.Equal(1f, TensorPrimitives.Norm(e), 1e-5f);
        var hidden = new float[ids.Length * h];
        model.Engine.ForwardHidden(ids, hidden);
        var mean = new float[h];
        for (int t = 0; t < ids.Length; t++) TensorPrimitives.Add(mean, hidden.AsSpan(t * h, h), mean);
        TensorPrimitives.Divide(mean, TensorPrimitives.Norm(mean), mean);
        for (int i = 0; i < h; i++) Assert.Equal(mean[i], e[i], 1e-6f);
        var (other, _) = await model.EmbedAsync("import numpy as np");
        Assert.True(TensorPrimitives.CosineSimilarity(e, other) < 0.9999f);
        await Assert.ThrowsAsync<ContextOverflowException>(() => model.EmbedAsync(string.Join(" ", Enumerable.Repeat("word", model.ContextLength + 5))));
    }
}
