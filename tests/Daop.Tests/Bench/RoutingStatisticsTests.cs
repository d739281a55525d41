using System.Text.Json;
using Daop.Bench.Routing;
using Daop.Engine.Schedule;
using Daop.Engine.Load.Safetensors;
using Daop.Engine.Model;
using Xunit.Abstractions;

namespace Daop.Tests.Analysis;

/// <summary>
/// Daop's routing statistics on the embedded model's 16 held-out sequences reproduce every figure that
/// PyTorch computed in routing-analysis.json, within 0.01.
/// </summary>
public class RoutingStatisticsTests(ITestOutputHelper output, RoutingStatisticsTests.Traces t) : IClassFixture<RoutingStatisticsTests.Traces>
{
    public sealed class Traces
    {
        public readonly List<RoutingTrace> All = new();
        public readonly JsonElement Reference;

        public Traces()
        {
            string dir = TestPaths.DefaultModel;
            using var seqs = TensorStore.OpenFile(Path.Combine(dir, "routing-sequences.safetensors"));
            var (ids, shape) = seqs.Int64s("input_ids");
            using var model = MoeModel.Load(dir);
            int n = (int)shape[0], len = (int)shape[1];
            for (int s = 0; s < n; s++)
                All.Add(RoutingTrace.Record(model, ids.Skip(s * len).Take(len).Select(x => (int)x).ToArray()));
            Reference = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "routing-analysis.json"))).RootElement;
        }
    }

    readonly Traces _t = t;

    const double Tol = 0.01;

    void Near(double expected, double actual, string what)
    {
        output.WriteLine($"{what}: reference {expected:F4}, daop {actual:F4}");
        Assert.True(Math.Abs(expected - actual) <= Tol, $"{what}: reference {expected:F4}, daop {actual:F4}");
    }

    [Fact]
    public void PredictorRecallMatches()
    {
        var recall = RoutingStatistics.PredictorRecall(_t.All);
        var want = _t.Reference.GetProperty("next_layer_predictor_recall").EnumerateArray().Select(x => x.GetDouble()).ToArray();
        Assert.Equal(want.Length, recall.Length);
        for (int l = 0; l < want.Length; l++) Near(want[l], recall[l], $"recall {l}->{l + 1}");
    }

    [Fact]
    public void PredictorTop1Matches()
    {
        var top1 = RoutingStatistics.PredictorTop1(_t.All);
        var want = _t.Reference.GetProperty("next_layer_predictor_top1").EnumerateArray().Select(x => x.GetDouble()).ToArray();
        Assert.Equal(want.Length, top1.Length);
        for (int l = 0; l < want.Length; l++) Near(want[l], top1[l], $"top1 {l}->{l + 1}");
    }

    [Theory]
    [InlineData("0.25")]
    [InlineData("0.5")]
    [InlineData("0.75")]
    public void DecodeHitRatesMatch(string ratio)
    {
        var r = _t.Reference.GetProperty("decode_hit_rates").GetProperty(ratio);
        int cache = r.GetProperty("cache_experts_per_layer").GetInt32();
        var got = RoutingStatistics.DecodeHitRates(_t.All, cache);
        Near(r.GetProperty("lru_hit_rate").GetDouble(), got.Lru, $"{ratio} lru");
        Near(r.GetProperty("daop_prefill_counts_hit_rate").GetDouble(), got.DaopPrefillCounts, $"{ratio} daop");
        Near(r.GetProperty("static_global_freq_hit_rate").GetDouble(), got.StaticGlobal, $"{ratio} static");
    }

    [Fact]
    public void SegmentCacheBestHitRateMatches()
    {
        var got = RoutingStatistics.SegmentCacheBestHitRate(_t.All, 16, 2 * _t.All[0].TopK);
        var want = _t.Reference.GetProperty("segment_cache_best_hit_rate_seg16_cache2k").EnumerateArray().Select(x => x.GetDouble()).ToArray();
        Assert.Equal(want.Length, got.Length);
        for (int l = 0; l < want.Length; l++) Near(want[l], got[l], $"sch layer {l}");
    }
}
