using Daop.Engine.Load.Safetensors;
using Daop.Engine.Model;
using Daop.Engine.Placement;
using Xunit.Abstractions;
using Daop.Bench.Policies;

namespace Daop.Tests.Analysis;

/// <summary>
/// The accuracy study on the embedded model: its reference perplexity equals a direct computation (one prefill with every
/// position's logits), exact policies reproduce the reference bit for bit, DAOP's approximate mode does not.
/// </summary>
public class AccuracyStudyTests(ITestOutputHelper output)
{
    const int Count = 2, Length = 48, Greedy = 8;

    static List<int[]> Sequences()
    {
        using var st = TensorStore.OpenFile(Path.Combine(TestPaths.DefaultModel, "routing-sequences.safetensors"));
        var (ids, shape) = st.Int64s("input_ids");
        int len = (int)shape[1];
        return Enumerable.Range(0, Count).Select(s => ids.Skip(s * len).Take(Length).Select(x => (int)x).ToArray()).ToList();
    }

    [Fact]
    public void ReferencePerplexityEqualsADirectComputationAndExactPoliciesAreIdentical()
    {
        var seqs = Sequences();
        using var model = MoeModel.Load(TestPaths.DefaultModel, new ModelOptions { ContextLength = 128 });
        int v = model.Config.VocabSize, half = Length / 2;

        // Direct: all logits of the whole sequence in one forward call; position i−1 predicts token i.
        double nll = 0;
        int n = 0;
        foreach (var s in seqs)
        {
            var logits = new float[Length * v];
            model.Forward(s, 0, model.NewCache(), logits, allLogits: true);
            for (int i = half; i < Length; i++, n++) nll += AccuracyStudy.Nll(logits.AsSpan((i - 1) * v, v), s[i]);
        }
        double direct = Math.Exp(nll / n);

        var policies = new List<Func<IPlacementPolicy>>
        {
            () => new LruPolicy(false), () => new StaticPolicy(), () => new DaopPolicy(false), () => new DaopPolicy(true),
        };
        var report = AccuracyStudy.Run(model, seqs, policies, new AccuracyOptions { Ratios = [0.25, 0.5], GreedyTokens = Greedy });
        output.WriteLine($"direct {direct:F6}, study {report.Reference.Perplexity:F6}");
        Assert.Equal(n, report.Reference.ScoredTokens);
        Assert.Equal(direct, report.Reference.Perplexity, direct * 1e-4); // batched prefill vs one token at a time: fp32 order only
        Assert.True(report.Reference.IdenticalLogits);
        Assert.Equal(8, report.Rows.Count);
        foreach (var r in report.Rows)
        {
            output.WriteLine($"{r.Policy} @ {r.Ratio}: ppl {r.Perplexity:F4}, top-1 {r.Top1Agreement:P1}, greedy {r.GreedyMatch:P1}, hit {r.Decode.HitRate:P1}");
            if (r.Policy == "daop")
            {
                Assert.False(r.IdenticalLogits);
                Assert.True(r.Decode.PrecalculatedRuns > 0);
                continue;
            }
            Assert.True(r.IdenticalLogits, $"{r.Policy} @ {r.Ratio}");
            Assert.Equal(report.Reference.MeanNll, r.MeanNll);
            Assert.Equal(1.0, r.Top1Agreement);
            Assert.Equal(1.0, r.GreedyMatch);
            Assert.Equal(Greedy, r.MeanFirstDivergence);
        }
        var json = report.ToJson().ToJsonString();
        using var doc = System.Text.Json.JsonDocument.Parse(json);
        Assert.Equal(8, doc.RootElement.GetProperty("rows").GetArrayLength());
        // the model's scheduler is the local one again
        Assert.IsType<Daop.Engine.Schedule.LocalExpertScheduler>(model.Experts);
    }
}
