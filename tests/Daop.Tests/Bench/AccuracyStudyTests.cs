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

    /// <summary>
    /// Variants of the weights: the same checkpoint loaded again is identical to the reference; q8_0 and q4_0 experts are
    /// not, cost more perplexity the fewer bits they keep, and q8_0 keeps nearly every top-1 choice.
    /// </summary>
    [Fact]
    public void FormatVariantsAreScoredAgainstTheExactModel()
    {
        var seqs = Sequences();
        var options = new ModelOptions { ContextLength = 128 };
        using var model = MoeModel.Load(TestPaths.DefaultModel, options);
        var report = AccuracyStudy.CompareVariants(model,
        [
            ("same", () => MoeModel.Load(TestPaths.DefaultModel, options)),
            ("q8_0", () => MoeModel.Load(TestPaths.DefaultModel, options with { ExpertDType = Daop.Kernels.DType.Q8_0 })),
            ("q4_0", () => MoeModel.Load(TestPaths.DefaultModel, options with { ExpertDType = Daop.Kernels.DType.Q4_0 })),
        ], seqs, new AccuracyOptions { GreedyTokens = Greedy });
        foreach (var r in report.Rows) output.WriteLine($"{r.Policy}: ppl {r.Perplexity:F4}, top-1 {r.Top1Agreement:P1}, greedy {r.GreedyMatch:P1}");
        Assert.Equal(["same", "q8_0", "q4_0"], report.Rows.Select(r => r.Policy));
        var (same, q8, q4) = (report.Rows[0], report.Rows[1], report.Rows[2]);
        Assert.True(same.IdenticalLogits);
        Assert.Equal(report.Reference.MeanNll, same.MeanNll);
        Assert.False(q8.IdenticalLogits);
        Assert.False(q4.IdenticalLogits);
        double ref0 = report.Reference.Perplexity;
        Assert.True(Math.Abs(q8.Perplexity / ref0 - 1) < 0.01, $"q8_0 {q8.Perplexity} vs {ref0}");
        Assert.True(Math.Abs(q4.Perplexity / ref0 - 1) < 0.05, $"q4_0 {q4.Perplexity} vs {ref0}");
        Assert.True(Math.Abs(q8.MeanNll - report.Reference.MeanNll) < Math.Abs(q4.MeanNll - report.Reference.MeanNll));
        Assert.True(q8.Top1Agreement >= 0.95, $"q8_0 top-1 {q8.Top1Agreement}");
        Assert.Throws<ArgumentException>(() => AccuracyStudy.CompareVariants(model,
            [("other", () => MoeModel.Load(TestPaths.Fixture("mixtral-tiny"), options))], seqs, new AccuracyOptions { GreedyTokens = Greedy }));
    }
}
