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

    /// <summary>
    /// Penalties by hand: logits [2, −1, 1.5, 0]; token 0 in the prompt, token 2 generated twice, token 3 once.
    /// Repetition 2 halves the positive seen logits and doubles the negative; frequency 0.25 and presence 0.5 count only
    /// generated tokens: 0 → 1, 2 → 0.75 − 0.5 − 0.5 = −0.25, 3 → 0 − 0.25 − 0.5 = −0.75, 1 (unseen) stays −1.
    /// </summary>
    [Fact]
    public void PenaltiesFollowTheirDefinitions()
    {
        var s = new Sampler(new SamplingOptions { RepetitionPenalty = 2, FrequencyPenalty = 0.25f, PresencePenalty = 0.5f }, 4);
        s.AddPrompt([0]);
        s.Accept(2);
        s.Accept(2);
        s.Accept(3);
        float[] logits = [2f, -1f, 1.5f, 0f];
        Assert.Equal(0, s.Next(logits)); // greedy after penalties
        Assert.Equal([1f, -1f, -0.25f, -0.75f], logits);
        // A negative seen logit is multiplied: token 1 generated once.
        s.Accept(1);
        logits = [2f, -1f, 1.5f, 0f];
        s.Next(logits);
        Assert.Equal(-1f * 2 - 0.25f - 0.5f, logits[1]);
    }

    [Fact]
    public void GreedyWithoutPenaltiesIgnoresHistory()
    {
        var s = new Sampler(new SamplingOptions(), 3);
        s.AddPrompt([1]);
        s.Accept(1);
        float[] logits = [0f, 3f, 1f];
        Assert.Equal(1, s.Next(logits));
        Assert.Equal([0f, 3f, 1f], logits);
    }

    /// <summary>min-p 0.2: probabilities 0.5, 0.3, 0.15, 0.05 keep the first two only (floor 0.1 excludes 0.05, and
    /// 0.15 ≥ 0.1 stays): over many seeds tokens 2's share is about 0.15 / 0.95 and token 3 never comes.</summary>
    [Fact]
    public void MinPDropsTokensBelowTheFloor()
    {
        float[] probs = [0.5f, 0.3f, 0.15f, 0.05f];
        var logits = probs.Select(p => MathF.Log(p)).ToArray();
        var counts = new int[4];
        for (ulong seed = 1; seed <= 4000; seed++)
            counts[new Sampler(new SamplingOptions { Temperature = 1, MinP = 0.2f, Seed = seed }, 4).Next((float[])logits.Clone())]++;
        Assert.Equal(0, counts[3]);
        Assert.InRange(counts[2] / 4000.0, 0.15 / 0.95 - 0.03, 0.15 / 0.95 + 0.03);
        // With top-k the candidates are sorted first; min-p still cuts the tail.
        counts = new int[4];
        for (ulong seed = 1; seed <= 2000; seed++)
            counts[new Sampler(new SamplingOptions { Temperature = 1, MinP = 0.4f, TopK = 3, Seed = seed }, 4).Next((float[])logits.Clone())]++;
        Assert.Equal(0, counts[2] + counts[3]);
        Assert.True(counts[1] > 0);
    }

    [Theory]
    [InlineData(1.5f, 0f, 0f, 1f)]   // min-p above 1
    [InlineData(0f, 2.5f, 0f, 1f)]   // frequency outside [-2, 2]
    [InlineData(0f, 0f, -3f, 1f)]    // presence outside [-2, 2]
    [InlineData(0f, 0f, 0f, 0f)]     // repetition must be > 0
    [InlineData(0f, 0f, 0f, 11f)]    // and <= 10
    public void OutOfRangePenaltiesAreRefused(float minP, float frequency, float presence, float repetition)
    {
        var o = new SamplingOptions { MinP = minP, FrequencyPenalty = frequency, PresencePenalty = presence, RepetitionPenalty = repetition };
        Assert.Throws<ArgumentException>(() => o.Validate());
    }
}
