using Daop.Engine.Generate;
using Daop.Engine.Load.Config;
using Daop.Engine.Model.Layers;

namespace Daop.Tests.Generate;

public class SamplerTests
{
    /// <summary>
    /// Low temperature over large logits: logits / T reach hundreds, where an unshifted softmax overflows to NaN and the
    /// draw fell through to the last token of the vocabulary.
    /// </summary>
    [Theory]
    [InlineData(0.05f, 30f)]
    [InlineData(0.01f, 20f)]
    [InlineData(1f, 200f)]
    public void LowTemperatureOverLargeLogitsPicksTheLeaders(float temperature, float top)
    {
        const int vocab = 4096;
        var logits = new float[vocab];
        for (int i = 0; i < vocab; i++) logits[i] = top - 10 - (i % 97) * 0.1f;
        logits[1234] = top;          // the clear winner
        logits[77] = top - 0.001f;    // a near tie: may be drawn too
        var counts = new Dictionary<int, int>();
        for (ulong seed = 1; seed <= 50; seed++)
        {
            var s = new Sampler(new SamplingOptions { Temperature = temperature, Seed = seed }, vocab);
            int id = s.Next((float[])logits.Clone());
            counts[id] = counts.GetValueOrDefault(id) + 1;
        }
        Assert.All(counts.Keys, id => Assert.Contains(id, new[] { 1234, 77 }));
        Assert.True(counts.GetValueOrDefault(1234) > 0);
    }

    [Fact]
    public void DrawFrequenciesFollowTheSoftmax()
    {
        // logits 1000, 1000 + ln 3: probabilities 1/4 and 3/4 at T = 1.
        float[] logits = [1000f, 1000f + MathF.Log(3)];
        int ones = 0;
        var s = new Sampler(new SamplingOptions { Temperature = 1, Seed = 7 }, 2);
        for (int i = 0; i < 4000; i++) ones += s.Next((float[])logits.Clone());
        Assert.InRange(ones / 4000.0, 0.72, 0.78);
    }

    [Fact]
    public void RouterWeightsStayFiniteForLargeLogits()
    {
        float[] logits = [900f, 1000f, 999f, -1000f];
        var ids = new int[2];
        var w = new float[2];
        Router.Route(new RouterSpec.SoftmaxTopK(Renormalize: false), logits, ids, w, new float[4]);
        Assert.Equal([1, 2], ids);
        Assert.Equal(1 / (1 + Math.Exp(-1)), w[0], 1e-6);
        Assert.Equal(Math.Exp(-1) / (1 + Math.Exp(-1)), w[1], 1e-6);
        Router.Route(new RouterSpec.SparseMixer(0.01f), logits, ids, w, new float[4]);
        Assert.Equal([1, 2], ids);
        Assert.All(w, x => Assert.True(float.IsFinite(x) && x > 0, $"weight {x}"));
    }
}
