using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;

namespace Daop.Bench.Policies;

/// <summary>
/// The policy benchmark's outputs: a fixed-width table, JSON, and an SVG plot of decode tokens/s against the expert
/// cache ratio, one line per policy and one panel per routing mode (written by hand: axes, ticks, lines, legend).
/// </summary>
public static class PolicyBenchReport
{
    static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    /// <summary>Header and one line per row, per-token figures per decoded token.</summary>
    public static string Table(IEnumerable<PolicyBenchRow> rows)
    {
        ArgumentNullException.ThrowIfNull(rows);
        var sb = new StringBuilder();
        sb.AppendLine(Header);
        foreach (var r in rows) sb.AppendLine(Line(r));
        return sb.ToString();
    }

    /// <summary>The table's header line.</summary>
    public static string Header =>
        $"{"routing",-7} {"ratio",5} {"policy",-20} {"prefill",8} {"decode",8} {"e2e",8} {"vs lru",7} {"vs cpu",7} {"hit",6} {"recall",6} {"cpu/tok",7} {"MB/tok",8} {"wait ms",8} {"cpu ms",7} {"bound ms",8} {"x bound",7}";

    /// <summary>One row of the table (prefill, decode and end-to-end tok/s; hit rate; per decoded token: CPU experts, MB copied, ms waited, ms of CPU experts; the bound and ms over it).</summary>
    public static string Line(PolicyBenchRow r)
    {
        ArgumentNullException.ThrowIfNull(r);
        var d = r.Decode;
        string X(double? v) => v is { } x ? x.ToString("F2", Inv) + "x" : "-";
        return string.Create(Inv,
            $"{r.Routing,-7} {r.Ratio,5:F2} {r.Policy,-20} {r.PrefillTokensPerSecond,8:F1} {r.DecodeTokensPerSecond,8:F2} {r.EndToEndTokensPerSecond,8:F2} {X(r.SpeedupVsLru),7} {X(r.SpeedupVsStatic),7} " +
            $"{d.HitRate,6:P0} {(d.PredictedActivations == 0 ? "-" : d.PredictorRecall.ToString("F3", Inv)),6} {d.PerToken(d.CpuExpertRuns),7:F2} " +
            $"{r.TransferBytesPerToken / 1e6,8:F1} {r.GpuWaitMsPerToken,8:F2} {r.CpuMsPerToken,7:F2} " +
            $"{(r.BoundMs is { } b ? b.ToString("F2", Inv) : "-"),8} {X(r.VsBound),7}");
    }

    /// <summary>The rows as JSON under <paramref name="meta"/>'s fields (model, device, prompt set...).</summary>
    public static JsonObject Json(IEnumerable<PolicyBenchRow> rows, JsonObject? meta = null)
    {
        ArgumentNullException.ThrowIfNull(rows);
        var o = meta ?? new JsonObject();
        o["rows"] = new JsonArray(rows.Select(r =>
        {
            var d = r.Decode;
            return (JsonNode)new JsonObject
            {
                ["routing"] = r.Routing, ["policy"] = r.Policy, ["ratio"] = r.Ratio,
                ["decode_tok_s"] = r.DecodeTokensPerSecond, ["end_to_end_tok_s"] = r.EndToEndTokensPerSecond, ["prefill_tok_s"] = r.PrefillTokensPerSecond,
                ["speedup_vs_lru_on_demand"] = r.SpeedupVsLru, ["speedup_vs_static_cpu"] = r.SpeedupVsStatic,
                ["decode_steps"] = r.DecodeSteps, ["generated_tokens"] = r.GeneratedTokens, ["prompt_tokens"] = r.PromptTokens,
                ["gpu_hit_rate"] = d.HitRate, ["predictor_recall"] = d.PredictedActivations == 0 ? null : d.PredictorRecall,
                ["cpu_experts_per_token"] = d.PerToken(d.CpuExpertRuns), ["precalculated_per_token"] = d.PerToken(d.PrecalculatedRuns),
                ["substitutions_per_token"] = d.PerToken(d.Substitutions), ["transfers_per_token"] = d.PerToken(d.Transfers),
                ["transfer_bytes_per_token"] = r.TransferBytesPerToken, ["gpu_wait_ms_per_token"] = r.GpuWaitMsPerToken,
                ["copy_wait_ms_per_token"] = d.PerToken(d.CopyWaitSeconds) * 1e3, ["precalc_wait_ms_per_token"] = d.PerToken(d.PrecalcWaitSeconds) * 1e3,
                ["cpu_expert_ms_per_token"] = r.CpuMsPerToken, ["rebalance_transfers_per_token"] = d.PerToken(d.RebalanceTransfers),
                ["bound_ms_per_token"] = r.BoundMs, ["ms_per_token_over_bound"] = r.VsBound,
                ["prefill_transfers_per_prompt_token"] = r.PrefillTransfersPerPromptToken,
                ["low_precision_runs_per_token"] = d.PerToken(d.LowPrecisionRuns),
                ["low_precision_bytes_saved_per_token"] = d.PerToken(d.LowPrecisionBytesSaved),
            };
        }).ToArray());
        return o;
    }

    static readonly string[] Palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

    /// <summary>
    /// An SVG document: one panel per routing mode; x = expert cache ratio [0, 1], y = decode tokens/s from 0; a line with
    /// markers per policy (all-gpu, measured at ratio 1 only, as a dashed horizontal line); a shared legend.
    /// </summary>
    public static string Svg(IReadOnlyList<PolicyBenchRow> rows, string title)
    {
        ArgumentNullException.ThrowIfNull(rows);
        ArgumentNullException.ThrowIfNull(title);
        var routings = rows.Select(r => r.Routing).Distinct().ToList();
        if (routings.Count == 0) routings.Add("random");
        var policies = rows.Select(r => r.Policy).Distinct().ToList();
        const double pw = 460, ph = 320, ml = 64, mr = 16, mt = 56, mb = 52, legendH = 28;
        double width = routings.Count * (pw + ml + mr), height = mt + ph + mb + legendH + 8;
        double yMax = NiceCeiling(rows.Count == 0 ? 1 : rows.Max(r => r.DecodeTokensPerSecond) * 1.05);

        var sb = new StringBuilder();
        sb.Append(Inv, $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:F0}\" height=\"{height:F0}\" viewBox=\"0 0 {width:F0} {height:F0}\" font-family=\"sans-serif\" font-size=\"12\">\n");
        sb.Append(Inv, $"  <rect x=\"0\" y=\"0\" width=\"{width:F0}\" height=\"{height:F0}\" fill=\"white\"/>\n");
        sb.Append(Inv, $"  <text x=\"{width / 2:F1}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">{Escape(title)}</text>\n");
        for (int p = 0; p < routings.Count; p++)
        {
            double x0 = p * (pw + ml + mr) + ml, y0 = mt;
            double X(double ratio) => x0 + ratio * pw;
            double Y(double v) => y0 + ph - v / yMax * ph;
            sb.Append(Inv, $"  <g class=\"panel\" id=\"panel-{Escape(routings[p])}\">\n");
            sb.Append(Inv, $"    <text x=\"{x0 + pw / 2:F1}\" y=\"{mt - 12}\" text-anchor=\"middle\" font-size=\"13\">{Escape(routings[p])} routing</text>\n");
            // grid, ticks and labels
            for (int i = 0; i <= 4; i++)
            {
                double v = yMax * i / 4, y = Y(v);
                sb.Append(Inv, $"    <line x1=\"{x0:F1}\" y1=\"{y:F1}\" x2=\"{x0 + pw:F1}\" y2=\"{y:F1}\" stroke=\"#e0e0e0\"/>\n");
                sb.Append(Inv, $"    <text x=\"{x0 - 6:F1}\" y=\"{y + 4:F1}\" text-anchor=\"end\">{Format(v)}</text>\n");
                double r = i / 4.0, x = X(r);
                sb.Append(Inv, $"    <line x1=\"{x:F1}\" y1=\"{y0 + ph:F1}\" x2=\"{x:F1}\" y2=\"{y0 + ph + 5:F1}\" stroke=\"black\"/>\n");
                sb.Append(Inv, $"    <text x=\"{x:F1}\" y=\"{y0 + ph + 19:F1}\" text-anchor=\"middle\">{r:0.##}</text>\n");
            }
            sb.Append(Inv, $"    <line x1=\"{x0:F1}\" y1=\"{y0 + ph:F1}\" x2=\"{x0 + pw:F1}\" y2=\"{y0 + ph:F1}\" stroke=\"black\"/>\n");
            sb.Append(Inv, $"    <line x1=\"{x0:F1}\" y1=\"{y0:F1}\" x2=\"{x0:F1}\" y2=\"{y0 + ph:F1}\" stroke=\"black\"/>\n");
            sb.Append(Inv, $"    <text x=\"{x0 + pw / 2:F1}\" y=\"{y0 + ph + 38:F1}\" text-anchor=\"middle\">expert cache ratio (fraction of experts on the GPU)</text>\n");
            sb.Append(Inv, $"    <text x=\"{x0 - 48:F1}\" y=\"{y0 + ph / 2:F1}\" text-anchor=\"middle\" transform=\"rotate(-90 {x0 - 48:F1} {y0 + ph / 2:F1})\">decode tokens/s</text>\n");
            // one series per policy
            for (int s = 0; s < policies.Count; s++)
            {
                string color = Palette[s % Palette.Length];
                var pts = rows.Where(r => r.Routing == routings[p] && r.Policy == policies[s]).OrderBy(r => r.Ratio).ToList();
                if (pts.Count == 0) continue;
                string id = Escape(policies[s]);
                if (policies[s] == "all-gpu")
                {
                    double y = Y(pts[^1].DecodeTokensPerSecond);
                    sb.Append(Inv, $"    <line class=\"series\" data-policy=\"{id}\" x1=\"{X(0):F1}\" y1=\"{y:F1}\" x2=\"{X(1):F1}\" y2=\"{y:F1}\" stroke=\"{color}\" stroke-width=\"1.5\" stroke-dasharray=\"6 4\"/>\n");
                }
                else if (pts.Count > 1)
                {
                    string path = string.Join(" ", pts.Select(r => string.Create(Inv, $"{X(r.Ratio):F1},{Y(r.DecodeTokensPerSecond):F1}")));
                    sb.Append(Inv, $"    <polyline class=\"series\" data-policy=\"{id}\" points=\"{path}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"/>\n");
                }
                foreach (var r in pts)
                    sb.Append(Inv, $"    <circle cx=\"{X(r.Ratio):F1}\" cy=\"{Y(r.DecodeTokensPerSecond):F1}\" r=\"3.5\" fill=\"{color}\"><title>{id} @ {r.Ratio:0.##}: {r.DecodeTokensPerSecond:F2} tok/s</title></circle>\n");
            }
            sb.Append("  </g>\n");
        }
        // legend
        double lx = ml, ly = mt + ph + mb + 14;
        sb.Append("  <g class=\"legend\">\n");
        for (int s = 0; s < policies.Count; s++)
        {
            string color = Palette[s % Palette.Length];
            string dash = policies[s] == "all-gpu" ? " stroke-dasharray=\"6 4\"" : "";
            sb.Append(Inv, $"    <line x1=\"{lx:F1}\" y1=\"{ly:F1}\" x2=\"{lx + 22:F1}\" y2=\"{ly:F1}\" stroke=\"{color}\" stroke-width=\"2\"{dash}/>\n");
            sb.Append(Inv, $"    <text x=\"{lx + 27:F1}\" y=\"{ly + 4:F1}\">{Escape(policies[s])}</text>\n");
            lx += 40 + 7.5 * policies[s].Length;
        }
        sb.Append("  </g>\n</svg>\n");
        return sb.ToString();
    }

    /// <summary>The smallest of 1, 2, 2.5, 5 × 10ⁿ at or above <paramref name="v"/> (1 for v ≤ 0).</summary>
    public static double NiceCeiling(double v)
    {
        if (!(v > 0) || double.IsInfinity(v)) return 1;
        double p = Math.Pow(10, Math.Floor(Math.Log10(v)));
        foreach (double m in new[] { 1, 2, 2.5, 5, 10 })
            if (m * p >= v * (1 - 1e-12)) return m * p;
        return 10 * p;
    }

    static string Format(double v) => v >= 100 || v == Math.Floor(v) ? v.ToString("0", Inv) : v.ToString("0.##", Inv);

    static string Escape(string s) => s.Replace("&", "&amp;", StringComparison.Ordinal).Replace("<", "&lt;", StringComparison.Ordinal)
        .Replace(">", "&gt;", StringComparison.Ordinal).Replace("\"", "&quot;", StringComparison.Ordinal);
}
