using Daop.Engine.Generate;

namespace Daop.Tests.Generate;

/// <summary>The sampler's log-probabilities: log-softmax of the logits it was given, before penalties and temperature.</summary>
public class SamplerLogprobTests
{
    [Fact]
    public void LogprobsAreTheRawLogSoftmaxWithTheBestAlternatives()
    {
        float[] logits = [1f, 3f, -2f, 2.5f, 0f];
        double lse = Math.Log(logits.Sum(l => Math.Exp(l)));
        var s = new Sampler(new SamplingOptions { TopLogprobs = 3, RepetitionPenalty = 5, Temperature = 0 }, logits.Length);
        s.AddPrompt([1]); // the penalty makes token 1 lose the arg-max; log-probabilities still describe the raw logits
        int next = s.Next(logits.ToArray());
        Assert.Equal(3, next);
        var lp = s.Logprob(next);
        Assert.Equal(3, lp.Token);
        Assert.Equal(2.5 - lse, lp.Logprob, 5);
        Assert.Equal([1, 3, 0], lp.Top.Select(t => t.Token));
        Assert.Equal(3 - lse, lp.Top[0].Logprob, 5);
        Assert.Throws<InvalidOperationException>(() => new Sampler(new SamplingOptions(), 5).Logprob(0));
        Assert.Throws<ArgumentException>(() => new SamplingOptions { TopLogprobs = 21 }.Validate());
        var none = new Sampler(new SamplingOptions { TopLogprobs = 0 }, logits.Length);
        none.Next(logits.ToArray());
        Assert.Empty(none.Logprob(1).Top);
    }
}
