using Daop.Engine.Load.Config;
using Daop.Engine.Model.Layers;

namespace Daop.Tests.Model;

/// <summary>DeepSeek's routers on hand-checkable logits: group limits, the selection bias, weights and their scale.</summary>
public class GroupLimitedRouterTests
{
    static double[] Softmax(float[] x)
    {
        double max = x.Max(), sum = x.Sum(v => Math.Exp(v - max));
        return x.Select(v => Math.Exp(v - max) / sum).ToArray();
    }

    static double Sigmoid(double x) => 1 / (1 + Math.Exp(-x));

    static (int[] Ids, float[] Weights) Route(RouterSpec spec, float[] logits, int k, float[]? bias = null)
    {
        var ids = new int[k];
        var w = new float[k];
        Router.Route(spec, logits, bias, ids, w, new float[logits.Length]);
        return (ids, w);
    }

    // 4 groups of 2. Group maxima: g0 5, g2 4.95, g1 4.9; the best two groups hold experts 0, 1, 4, 5.
    static readonly float[] V2Logits = [5f, 1f, 4.9f, 4.8f, 4.95f, 0.5f, 0f, 0f];

    [Fact]
    public void SoftmaxGroupLimitKeepsTheGroupsWithTheLargestMax()
    {
        var (ids, w) = Route(new RouterSpec.GroupLimitedSoftmax(4, 2, 1.5f, Renormalize: false), V2Logits, 3);
        Assert.Equal([0, 4, 1], ids);                       // expert 2 (4.9) is outside the kept groups
        var p = Softmax(V2Logits);
        for (int i = 0; i < 3; i++) Assert.Equal(1.5 * p[ids[i]], w[i], 6);
    }

    [Fact]
    public void OneGroupIsPlainGreedy()
    {
        var (ids, w) = Route(new RouterSpec.GroupLimitedSoftmax(1, 1, 2f, Renormalize: false), V2Logits, 3);
        Assert.Equal([0, 4, 2], ids);
        var p = Softmax(V2Logits);
        for (int i = 0; i < 3; i++) Assert.Equal(2 * p[ids[i]], w[i], 6);
        var (all, _) = Route(new RouterSpec.GroupLimitedSoftmax(4, 4, 2f, Renormalize: false), V2Logits, 3);
        Assert.Equal(ids, all);                              // keeping every group is no limit either
    }

    [Fact]
    public void SoftmaxRenormalisedWeightsSumToTheScale()
    {
        var (ids, w) = Route(new RouterSpec.GroupLimitedSoftmax(4, 2, 2.5f, Renormalize: true), V2Logits, 3);
        Assert.Equal([0, 4, 1], ids);
        Assert.Equal(2.5, w.Sum(), 5);
        var p = Softmax(V2Logits);
        Assert.Equal(2.5 * p[0] / (p[0] + p[4] + p[1]), w[0], 6);
    }

    // Group 0 holds the single largest score, group 1 the largest sum of two: sigmoid(3) + sigmoid(-3) = 1 < 2·sigmoid(2).
    static readonly float[] V3Logits = [3f, -3f, 2f, 2f, -1f, -2f, -4f, -5f];

    [Fact]
    public void SigmoidGroupsAreScoredByTheSumOfTheirTopTwo()
    {
        var (ids, w) = Route(new RouterSpec.GroupLimitedSigmoid(4, 1, 1f, Renormalize: false), V3Logits, 2);
        Assert.Equal([2, 3], ids.Order().ToArray());
        Assert.All(w, x => Assert.Equal(Sigmoid(2), x, 6));
        var (two, _) = Route(new RouterSpec.GroupLimitedSigmoid(4, 2, 1f, Renormalize: false), V3Logits, 2);
        Assert.Equal([0, 2], two.Order().ToArray());         // with two groups kept, expert 0 (the top score) is back
    }

    [Fact]
    public void SelectionBiasChangesTheChoiceButNotTheWeights()
    {
        var spec = new RouterSpec.GroupLimitedSigmoid(4, 4, 2.5f, Renormalize: true);
        var (ids, w) = Route(spec, V3Logits, 2);
        Assert.Equal([0, 2], ids.Order().ToArray());
        float[] bias = [0, 0, 0, 0, 0, 0, 0, 3f];             // sigmoid(-5) + 3 beats every unbiased score
        var (biased, bw) = Route(spec, V3Logits, 2, bias);
        Assert.Equal([0, 7], biased.Order().ToArray());
        double s0 = Sigmoid(3), s7 = Sigmoid(-5);
        Assert.Equal(2.5 * s0 / (s0 + s7), bw[Array.IndexOf(biased, 0)], 5);
        Assert.Equal(2.5 * s7 / (s0 + s7), bw[Array.IndexOf(biased, 7)], 5);
        var (zero, zw) = Route(spec, V3Logits, 2, new float[8]);
        Assert.Equal(ids, zero);                              // an all-zero bias is no bias
        Assert.Equal(w, zw);
    }

    [Fact]
    public void SelectionBiasAlsoChoosesTheGroups()
    {
        // +1 on both experts of group 3 makes its top-2 sum the best; TopGroups 1 then confines the choice to it.
        float[] bias = [0, 0, 0, 0, 0, 0, 1f, 1f];
        var (ids, w) = Route(new RouterSpec.GroupLimitedSigmoid(4, 1, 1f, Renormalize: false), V3Logits, 2, bias);
        Assert.Equal([6, 7], ids.Order().ToArray());
        Assert.Equal(Sigmoid(-4), w[Array.IndexOf(ids, 6)], 6);
    }

    [Fact]
    public void SigmoidUnnormalisedWeightsAreTheScaledScores()
    {
        var (ids, w) = Route(new RouterSpec.GroupLimitedSigmoid(2, 2, 2.5f, Renormalize: false), V3Logits, 3);
        Assert.Equal([0, 2, 3], ids.Order().ToArray());
        for (int i = 0; i < 3; i++) Assert.Equal(2.5 * Sigmoid(V3Logits[ids[i]]), w[i], 5);
    }
}
