using Daop.Engine.Model;
using Daop.Kernels;

namespace Daop.Tests.Model;

public class WeightsTests
{
    [Theory]
    [InlineData("mixtral-tiny")]
    [InlineData("qwen2moe-tiny")]
    public void DenseBytesPerTokenCountsWhatADecodedTokenReads(string fixture)
    {
        using var m = MoeModel.Load(TestPaths.Fixture(fixture), new ModelOptions { ContextLength = 16 });
        var c = m.Config;
        var w = m.Weights;
        long q = (long)c.NumHeads * c.HeadDim, kv = (long)c.NumKvHeads * c.HeadDim, h = c.HiddenSize;
        long elements = (long)c.VocabSize * h; // LM head; the embedding gives one row
        foreach (var l in w.Layers)
        {
            elements += q * h + 2 * kv * h + h * q + (long)c.NumExperts * h; // q, k, v, o, router
            if (l.Shared is { } s) elements += 3L * s.Gate.Rows * h + (l.SharedGate != null ? h : 0);
        }
        Assert.Equal(elements * DType.BF16.SizeOf(), w.DenseBytesPerToken());

        // The visitor sees the embedding once as not read whole, and every norm weight as a vector.
        int notWhole = 0, vectors = 0;
        w.VisitDense((in WeightMatrix x, bool perToken) => { if (!perToken) notWhole++; }, _ => vectors++);
        Assert.Equal(1, notWhole);
        Assert.True(vectors >= 1 + 2 * c.NumLayers, $"{vectors} vectors for {c.NumLayers} layers");
    }
}
