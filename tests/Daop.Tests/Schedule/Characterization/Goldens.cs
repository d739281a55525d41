using System.Globalization;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Daop.Engine.Placement;
using Daop.Engine.Schedule;

namespace Daop.Tests.Schedule.Characterization;

/// <summary>
/// Golden records of the placement machinery, captured from the code before issue 12's refactor (one placement driver)
/// and checked after it. One JSON file per model and executor under <c>Goldens/</c>: scenario name → a string array of
/// the values that must not change. Set <c>DAOP_CAPTURE_GOLDENS=1</c> to (re)write them instead of checking.
/// </summary>
/// <remarks>
/// Logits are kept as FNV-1a hashes of their bit patterns, so they are bit-exact only on a machine with the same vector
/// instruction sets as the one that captured them (<see cref="Fingerprint"/>); elsewhere the logit hashes are skipped and
/// everything else (counters, residency, launches, simulated times) is still compared exactly.
/// </remarks>
sealed class Goldens
{
    static readonly string Dir = Path.Combine(TestPaths.Root, "tests", "Daop.Tests", "Schedule", "Characterization", "Goldens");

    /// <summary>The stats counters recorded (timings excluded: they are measured, not decided).</summary>
    public static readonly string[] Counters =
    [
        "Tokens", "Activations", "Hits", "Misses", "GpuExpertRuns", "CpuExpertRuns", "Waves", "SplitWaves", "Transfers",
        "MissTransfers", "PrefetchTransfers", "RebalanceTransfers", "TransferBytes", "PrecalculatedRuns", "Substitutions",
        "PredictedActivations", "PredictionHits",
    ];

    public static bool Capturing => Environment.GetEnvironmentVariable("DAOP_CAPTURE_GOLDENS") == "1";

    /// <summary>What decides fp32 rounding in the SIMD kernels.</summary>
    public static string Fingerprint => string.Join(' ',
        System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture.ToString(),
        Vector512.IsHardwareAccelerated ? "v512" : "-", Vector256.IsHardwareAccelerated ? "v256" : "-",
        Vector128.IsHardwareAccelerated ? "v128" : "-", Fma.IsSupported ? "fma" : "-", Avx512F.IsSupported ? "avx512f" : "-");

    readonly string _path;
    readonly Dictionary<string, string[]> _want = new(StringComparer.Ordinal);
    readonly Dictionary<string, string[]> _got = new(StringComparer.Ordinal);
    readonly bool _sameMachine;

    public Goldens(string model, string executor)
    {
        _path = Path.Combine(Dir, $"{model}.{executor}.json");
        if (Capturing) return;
        Assert.True(File.Exists(_path), $"no goldens at {_path}: capture them with DAOP_CAPTURE_GOLDENS=1 on the pre-refactor code");
        var root = JsonNode.Parse(File.ReadAllText(_path))!.AsObject();
        _sameMachine = (string?)root["fingerprint"] == Fingerprint;
        foreach (var (k, v) in root["scenarios"]!.AsObject())
            _want[k] = v!.AsArray().Select(x => (string)x!).ToArray();
    }

    /// <summary>Records one scenario's values (a "logits:" prefix marks hashes of logits).</summary>
    public void Add(string scenario, IEnumerable<string> values) => _got.Add(scenario, values.ToArray());

    /// <summary>Writes the file (capturing) or fails listing every scenario that differs from it.</summary>
    public void Check(Xunit.Abstractions.ITestOutputHelper output)
    {
        if (Capturing)
        {
            Directory.CreateDirectory(Dir);
            var sb = new StringBuilder();
            sb.Append("{\n  \"fingerprint\": ").Append(JsonSerializer.Serialize(Fingerprint)).Append(",\n  \"counters\": ")
                .Append(JsonSerializer.Serialize(Counters)).Append(",\n  \"scenarios\": {\n");
            int i = 0;
            foreach (var (k, v) in _got.OrderBy(p => p.Key, StringComparer.Ordinal))
                sb.Append("    ").Append(JsonSerializer.Serialize(k)).Append(": ").Append(JsonSerializer.Serialize(v))
                    .Append(++i < _got.Count ? ",\n" : "\n");
            sb.Append("  }\n}\n");
            File.WriteAllText(_path, sb.ToString());
            output.WriteLine($"captured {_got.Count} scenarios into {_path}");
            return;
        }
        var bad = new List<string>();
        foreach (var k in _want.Keys.Except(_got.Keys)) bad.Add($"{k}: not run");
        foreach (var (k, got) in _got)
        {
            if (!_want.TryGetValue(k, out var want)) { bad.Add($"{k}: no golden"); continue; }
            if (want.Length != got.Length) { bad.Add($"{k}: {got.Length} values, golden {want.Length}"); continue; }
            for (int i = 0; i < want.Length; i++)
            {
                if (!_sameMachine && want[i].StartsWith("logits:", StringComparison.Ordinal)) continue;
                if (want[i] != got[i]) { bad.Add($"{k}[{i}]: got {got[i]}, golden {want[i]}"); break; }
            }
        }
        if (!_sameMachine) output.WriteLine($"goldens captured on another instruction set ({Fingerprint}): logit hashes not compared");
        output.WriteLine($"{_got.Count} scenarios compared against {_path}");
        Assert.True(bad.Count == 0, $"{bad.Count} scenarios differ from the goldens:\n" + string.Join('\n', bad.Take(40)));
    }

    /// <summary>FNV-1a over the floats' bits.</summary>
    public static string Hash(ReadOnlySpan<float> values)
    {
        ulong h = 14695981039346656037;
        foreach (float f in values)
        {
            h ^= (uint)BitConverter.SingleToInt32Bits(f);
            h *= 1099511628211;
        }
        return "logits:" + h.ToString("x16", CultureInfo.InvariantCulture);
    }

    /// <summary>The recorded counters of <paramref name="s"/>, comma-separated.</summary>
    public static string Of(OffloadStats s) => string.Join(',', new[]
    {
        s.Tokens, s.Activations, s.Hits, s.Misses, s.GpuExpertRuns, s.CpuExpertRuns, s.Waves, s.SplitWaves, s.Transfers,
        s.MissTransfers, s.PrefetchTransfers, s.RebalanceTransfers, s.TransferBytes, s.PrecalculatedRuns, s.Substitutions,
        s.PredictedActivations, s.PredictionHits,
    }.Select(x => x.ToString(CultureInfo.InvariantCulture)));

    /// <summary>Each layer's resident experts, "l:e e e" joined by '|'.</summary>
    public static string Of(Residency r) =>
        "resident:" + string.Join('|', Enumerable.Range(0, r.Layers).Select(l => string.Join(' ', r.Resident(l))));

    /// <summary>A double exactly (round-trip).</summary>
    public static string Of(double d) => d.ToString("R", CultureInfo.InvariantCulture);
}
