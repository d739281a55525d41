using Daop.Engine.Load.Config;
using Daop.Engine.Model.Layers;

namespace Daop.Tests.Model;

public class RouterTests
{
    [Fact]
    public void TopKSoftmaxPicksTheSameExpertsAndWeightsAsRenormalisedSoftmaxTopK()
    {
        var rng = new Random(5);
        for (int trial = 0; trial < 50; trial++)
        {
            int e = 2 + rng.Next(30), k = 1 + rng.Next(Math.Min(e, 8));
            var logits = Enumerable.Range(0, e).Select(_ => (float)(rng.NextDouble() * 8 - 4)).ToArray();
            int[] ids = new int[k], want = new int[k];
            float[] w = new float[k], wantW = new float[k], probs = new float[e];
            Router.Route(new RouterSpec.TopKSoftmax(), logits, ids, w, probs);
            Router.Route(new RouterSpec.SoftmaxTopK(Renormalize: true), logits, want, wantW, probs);
            Assert.Equal(want, ids);
            for (int i = 0; i < k; i++) Assert.Equal(wantW[i], w[i], 1e-6f);
        }
    }

    [Fact]
    public void TopKSoftmaxWeighsOnlyTheChosenLogits()
    {
        // Logits 3, 1, 2, -50: top-2 are experts 0 and 2, weighted e^3/(e^3+e^2) and e^2/(e^3+e^2); expert 3's tiny
        // exponential never enters the sum (softmax over all E then renormalising gives the same, within rounding).
        int[] ids = new int[2];
        float[] w = new float[2];
        Router.TopKSoftmax([3f, 1f, 2f, -50f], ids, w);
        Assert.Equal([0, 2], ids);
        Assert.Equal(1 / (1 + MathF.Exp(-1)), w[0], 1e-6f);
        Assert.Equal(1 / (1 + MathF.Exp(1)), w[1], 1e-6f);
    }
}
