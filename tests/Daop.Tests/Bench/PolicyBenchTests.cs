using System.Text.Json;
using System.Xml.Linq;
using Daop.Engine.Device.Gpu;
using Daop.Engine.Load.Safetensors;
using Daop.Engine.Model;
using Daop.Engine.Placement;
using Daop.Engine.Schedule;
using Daop.Tests.Gpu;
using Xunit.Abstractions;
using Daop.Bench.Policies;

namespace Daop.Tests.Analysis;

/// <summary>The policy benchmark end to end on the ILGPU CPU accelerator (tiny fixture), and its table / JSON / SVG writers.</summary>
[Collection(GpuCollection.Name)]
public class PolicyBenchTests(GpuFixture gpu, ITestOutputHelper output)
{
    static readonly XNamespace Svg = "http://www.w3.org/2000/svg";

    [Fact]
    public void RunsEveryPolicyWithRandomAndReplayedRouting()
    {
        string dir = TestPaths.Fixture("mixtral-tiny");
        int[] tokens;
        using (var st = TensorStore.OpenFile(Path.Combine(dir, "reference.safetensors")))
        {
            var (ids, shape) = st.Int64s("input_ids");
            tokens = ids.Take((int)shape[1]).Select(x => (int)x).ToArray();
        }
        RoutingTrace trace;
        using (var cpu = MoeModel.Load(dir, new ModelOptions { ContextLength = 64 })) trace = RoutingTrace.Record(cpu, tokens);
        var replay = new TraceReplay([trace]);

        using var model = MoeModel.Load(dir, new ModelOptions
        {
            ContextLength = 32,
            MaxChunkTokens = 8,
            Device = _ => new GpuDevice(gpu.Accelerator),
            Experts = (m, d) => OffloadedExpertScheduler.FromRatio(m, d, new StaticPolicy(), 0),
        });
        var specs = new List<PolicySpec>
        {
            new("lru-on-demand", () => new LruPolicy(false)),
            new("static-cpu", () => new StaticPolicy()),
            new("daop", () => new DaopPolicy(true)),
        };
        var seen = new List<PolicyBenchRow>();
        var rows = PolicyBenchmark.Run(model, new PolicyBenchOptions
        {
            Ratios = [0.5], Policies = specs, Prompts = 1, PromptTokens = 6, NewTokens = 3, Repeats = 3,
            Bound = new BoundModel(CpuGBps: 10, PcieGBps: 5, GpuGBps: 100, ExpertBytes: 1_000_000, DenseBytesPerToken: 2_000_000),
        }, replay, seen.Add);
        output.WriteLine(PolicyBenchReport.Table(rows));
        Assert.Equal(2 * 4, rows.Count); // all-gpu + 3 policies, random and replayed
        Assert.Equal(rows.Count, seen.Count);
        Assert.Equal(["random", "replay"], rows.Select(r => r.Routing).Distinct());
        foreach (var r in rows)
        {
            Assert.Equal(r.Policy == "all-gpu" ? 1 : 3, r.Repeats);
            // bound = max(CPU experts × 1 MB / 10 GB/s, copied bytes / 5 GB/s, (2 MB + GPU experts × 1 MB) / 100 GB/s), in ms
            var d = r.Decode;
            double bound = Math.Max(d.PerToken(d.CpuExpertRuns) * 0.1, Math.Max(d.PerToken(d.TransferBytes) / 5e6, (2 + d.PerToken(d.GpuExpertRuns)) * 0.01));
            Assert.Equal(bound, r.BoundMs!.Value, 9);
            Assert.Equal(1e3 / r.DecodeTokensPerSecond / bound, r.VsBound!.Value, 9);
            Assert.Equal(2, r.DecodeSteps);
            Assert.Equal(3, r.GeneratedTokens);
            Assert.Equal(2, r.Decode.Tokens);
            Assert.True(r.DecodeTokensPerSecond > 0 && r.EndToEndTokensPerSecond > 0);
            if (r.Policy == "all-gpu")
            {
                Assert.Equal(1.0, r.Ratio);
                Assert.Equal(1.0, r.Decode.HitRate);
                Assert.Null(r.SpeedupVsLru);
                continue;
            }
            Assert.NotNull(r.SpeedupVsLru);
            Assert.NotNull(r.SpeedupVsStatic);
            Assert.True(r.Decode.PredictedActivations > 0);
        }
        Assert.Equal(1.0, rows.First(r => r.Policy == "lru-on-demand").SpeedupVsLru);
        Assert.Equal(1.0, rows.First(r => r.Policy == "static-cpu").SpeedupVsStatic);
        Assert.All(rows.Where(r => r.Policy == "daop"), r => Assert.True(r.Decode.PrecalculatedRuns > 0 || r.Decode.CpuExpertRuns == 0));
        Assert.IsType<OffloadedExpertScheduler>(model.Experts);
    }

    static PolicyBenchRow Row(string routing, string policy, double ratio, double seconds) =>
        new(routing, policy, ratio, 64, 10, 11, 0.5, seconds, new OffloadStats());

    [Fact]
    public void WritersProduceWellFormedJsonAndSvg()
    {
        var rows = PolicyBenchmark.WithSpeedups(
        [
            Row("random", "all-gpu", 1, 0.1),
            Row("random", "lru-on-demand", 0.25, 2), Row("random", "static-cpu", 0.25, 1), Row("random", "daop", 0.25, 0.5),
            Row("random", "lru-on-demand", 0.5, 1), Row("random", "static-cpu", 0.5, 0.8), Row("random", "daop", 0.5, 0.4),
            Row("replay", "lru-on-demand", 0.25, 3), Row("replay", "static-cpu", 0.25, 1), Row("replay", "daop <&>", 0.25, 0.6),
        ]);
        Assert.Equal(4.0, rows.First(r => r.Policy == "daop").SpeedupVsLru!.Value, 9);
        Assert.Equal(2.0, rows.First(r => r.Policy == "daop").SpeedupVsStatic!.Value, 9);

        var json = PolicyBenchReport.Json(rows, new() { ["model"] = "m" }).ToJsonString();
        using var doc = JsonDocument.Parse(json);
        Assert.Equal("m", doc.RootElement.GetProperty("model").GetString());
        Assert.Equal(rows.Count, doc.RootElement.GetProperty("rows").GetArrayLength());
        Assert.Equal(100.0, doc.RootElement.GetProperty("rows")[0].GetProperty("decode_tok_s").GetDouble(), 9);

        string svg = PolicyBenchReport.Svg(rows, "title <with> & specials");
        var x = XDocument.Parse(svg); // well-formed XML
        Assert.Equal(Svg + "svg", x.Root!.Name);
        Assert.Equal(2, x.Descendants(Svg + "g").Count(g => (string?)g.Attribute("class") == "panel"));
        // one polyline per policy with several ratios in each panel, the all-gpu dashed line, a marker per row, a legend entry per policy
        var series = x.Descendants().Where(e => (string?)e.Attribute("class") == "series").ToList();
        Assert.Equal(3 + 1, series.Count(e => e.Name == Svg + "polyline") + series.Count(e => e.Name == Svg + "line"));
        Assert.Equal(rows.Count, x.Descendants(Svg + "circle").Count());
        var legend = x.Descendants(Svg + "g").Single(g => (string?)g.Attribute("class") == "legend");
        Assert.Equal(["all-gpu", "lru-on-demand", "static-cpu", "daop", "daop <&>"], legend.Elements(Svg + "text").Select(t => t.Value));
        foreach (var p in x.Descendants(Svg + "polyline"))
            foreach (var pt in ((string)p.Attribute("points")!).Split(' '))
                Assert.All(pt.Split(','), v => Assert.True(double.TryParse(v, System.Globalization.CultureInfo.InvariantCulture, out double d) && double.IsFinite(d)));
        Assert.Equal(200, PolicyBenchReport.NiceCeiling(105));
        Assert.Equal(2.5, PolicyBenchReport.NiceCeiling(2.1));
        Assert.Equal(1, PolicyBenchReport.NiceCeiling(0));
        string table = PolicyBenchReport.Table(rows);
        Assert.Equal(rows.Count + 1, table.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);
    }
}
