using Daop.Engine.Model;
using Daop.Engine.Model.Layers;
using Daop.Engine.Schedule;

namespace Daop.Tests.Schedule;

public class NextLayerPredictorTests
{
    // Predicts expert (position mod E) first and (position + 1) mod E second, whatever the layer.
    sealed class Fixed(int experts) : IRoutingOverride
    {
        public void Route(int layer, int startPos, RoutingBatch routing) { }

        public bool TryPredict(int layer, int position, Span<float> logits)
        {
            logits.Clear();
            logits[position % experts] = 3;
            logits[(position + 1) % experts] = 2;
            return true;
        }
    }

    [Fact]
    public void ScoresHeldPredictionsAndCountsWhatItWouldRoute()
    {
        using var m = MoeModel.Load(TestPaths.Fixture("mixtral-tiny"), new ModelOptions { ContextLength = 16 });
        int e = m.Config.NumExperts, k = m.Config.TopK;
        Assert.Equal(2, k);
        var p = new NextLayerPredictor(m, new Fixed(e));
        var x = new float[4 * m.Config.HiddenSize];

        // Decode: the prediction for layer 1 at position 5 is {5, 6}; the layer routes {6, 0}: one hit of two.
        p.Predict(1, 5, x);
        Assert.Equal(1, p.Layer);
        Assert.Equal(new[] { 5 % e, 6 % e }, p.Ids.ToArray());
        var r = new RoutingBatch(4, k) { Tokens = 1 };
        r.Experts[0] = 6 % e; r.Experts[1] = 0;
        var stats = new OffloadStats();
        p.Score(1, r, 1, stats);
        Assert.Equal(2, stats.PredictedActivations);
        Assert.Equal(1, stats.PredictionHits);
        Assert.Equal(-1, p.Layer);
        p.Score(1, r, 1, stats); // nothing held any more
        Assert.Equal(2, stats.PredictedActivations);

        // Prefill of positions 0..3: true counts unless CountNext made predicted ones for that layer, used once.
        r.Tokens = 4;
        for (int i = 0; i < 8; i++) r.Experts[i] = i % 2; // experts 0 and 1 for every token
        var counts = new int[e];
        p.PrefillCounts(2, r, 4, counts);
        Assert.Equal(4, counts[0]);
        Assert.Equal(4, counts[1]);
        p.CountNext(2, x, 4, startPos: 0); // predicted {0,1}, {1,2}, {2,3}, {3,4}
        p.PrefillCounts(3, r, 4, counts);  // another layer: true counts
        Assert.Equal(4, counts[0]);
        p.CountNext(2, x, 4, startPos: 0);
        p.PrefillCounts(2, r, 4, counts);
        Assert.Equal(new[] { 1, 2, 2, 2, 1 }, counts[..5]);
        Assert.Equal(8, counts.Sum());
        p.PrefillCounts(2, r, 4, counts);  // used up
        Assert.Equal(4, counts[0]);
    }
}
