using Daop.Engine.Device.Gpu;
using Daop.Engine.Model;
using Daop.Engine.Placement;
using Daop.Engine.Schedule;
using Daop.Tests.Gpu;
using Xunit.Abstractions;

namespace Daop.Tests.Schedule.Characterization;

/// <summary>
/// Characterization of the two executors of placement decisions against goldens captured before issue 12's refactor:
/// for every scenario of <see cref="PlacementScenarios"/>, the bit patterns of every forward call's logits, the stats
/// counters after every call, the last step's counters, the final residency and (GPU) the kernel launches and copies.
/// </summary>
static class ExecutorRuns
{
    public static void Check(string model, string executor, Func<IPlacementPolicy, double, IRoutingOverride?, ModelOptions> options,
        ITestOutputHelper output, Func<MoeModel, IEnumerable<string>>? extra = null)
    {
        var goldens = new Goldens(model, executor);
        var tokens = PlacementScenarios.Tokens(model);
        var replay = PlacementScenarios.Replay(model);
        foreach (var routing in replay == null ? new[] { "router" } : ["router", "replay"])
            foreach (var policy in PlacementScenarios.Policies)
                foreach (double ratio in PlacementScenarios.Ratios)
                {
                    using var m = PlacementScenarios.Load(model, options(PlacementScenarios.Policy(policy), ratio, routing == "replay" ? replay : null));
                    var values = new List<string>();
                    PlacementScenarios.Run(m, tokens, logits =>
                    {
                        values.Add(Goldens.Hash(logits));
                        values.Add(Goldens.Of(Stats(m.Experts)));
                    });
                    values.Add(Goldens.Of(LastStep(m.Experts)));
                    values.Add(Goldens.Of(Residency(m.Experts)));
                    if (extra != null) values.AddRange(extra(m));
                    goldens.Add($"{policy}/{Goldens.Of(ratio)}/{routing}", values);
                }
        goldens.Check(output);
    }

    // The executors' API, in one place.
    static OffloadStats Stats(IExpertScheduler s) => s switch
    {
        OffloadedExpertScheduler o => o.Stats,
        CpuStandInScheduler c => c.Stats,
        _ => throw new ArgumentException(s.GetType().Name),
    };

    static OffloadStats LastStep(IExpertScheduler s) => s switch
    {
        OffloadedExpertScheduler o => o.LastStep,
        CpuStandInScheduler c => c.LastStep,
        _ => throw new ArgumentException(s.GetType().Name),
    };

    static Residency Residency(IExpertScheduler s) => s switch
    {
        OffloadedExpertScheduler o => o.Residency,
        CpuStandInScheduler c => c.Residency,
        _ => throw new ArgumentException(s.GetType().Name),
    };
}

/// <summary>The GPU executor on the ILGPU CPU accelerator.</summary>
[Collection(GpuCollection.Name)]
public class GpuExecutorGoldenTests(GpuFixture gpu, ITestOutputHelper output)
{
    [Theory]
    [MemberData(nameof(PlacementScenarios.ModelData), MemberType = typeof(PlacementScenarios))]
    public void GpuExecutorMatchesTheGoldens(string model) =>
        ExecutorRuns.Check(model, "gpu", (policy, ratio, replay) => new ModelOptions
        {
            // The goldens were captured with the generic expert kernels; the generated ones sum in another order.
            Device = _ => new GpuDevice(gpu.Accelerator, new Daop.Kernels.Gpu.GpuKernelOptions { GeneratedExperts = [] }),
            Experts = (m, d) => OffloadedExpertScheduler.FromRatio(m, d, policy, ratio, options: new OffloadOptions { RoutingOverride = replay }),
        }, output, m =>
        {
            var s = (OffloadedExpertScheduler)m.Experts;
            s.Synchronize();
            s.CheckInvariants();
            var d = (GpuDevice)m.Device;
            return [$"launches:{d.Launches}", $"copies:{d.Copies}", $"pool:{((GpuExpertOffload)s.Offload).Pool.SlotsInUse}/{((GpuExpertOffload)s.Offload).Pool.Slots}"];
        });
}

/// <summary>The CPU stand-in (every policy's numerics on the CPU device).</summary>
public class CpuStandInGoldenTests(ITestOutputHelper output)
{
    [Theory]
    [MemberData(nameof(PlacementScenarios.ModelData), MemberType = typeof(PlacementScenarios))]
    public void CpuStandInMatchesTheGoldens(string model) =>
        ExecutorRuns.Check(model, "cpu", (policy, ratio, replay) => new ModelOptions
        {
            Experts = (m, _) => CpuStandInScheduler.FromRatio(m, policy, ratio, routingOverride: replay),
        }, output);
}

/// <summary>
/// The trace simulator over each model's recorded routing (and the same shifted by a token, as a second sequence), for
/// every policy and ratio, without and with a popularity profile: every field of its result, exactly.
/// </summary>
public class SimulatorGoldenTests(ITestOutputHelper output)
{
    static readonly CostModel Cost = new(DenseLayerUs: 37, GpuExpertUs: 11, CpuExpertUs: 53, TransferUs: 97, CpuRoundTripUs: 13, HeadUs: 5,
        CpuSlowdownWhileCopying: 1.3);

    [Theory]
    [MemberData(nameof(PlacementScenarios.TracedModelData), MemberType = typeof(PlacementScenarios))]
    public void SimulatorMatchesTheGoldens(string model)
    {
        var goldens = new Goldens(model, "sim");
        var trace = PlacementScenarios.Trace(model);
        RoutingTrace[] traces = [trace, PlacementScenarios.Shifted(trace)];
        var counts = new long[trace.Layers, trace.Experts];
        for (int t = 0; t < PlacementScenarios.Prefix; t++)
            for (int l = 0; l < trace.Layers; l++)
                foreach (int e in trace.True(t, l)) counts[l, e]++;
        foreach (var profile in new[] { "none", "prompt" })
            foreach (var policy in PlacementScenarios.Policies)
                foreach (double ratio in PlacementScenarios.Ratios)
                {
                    var popularity = profile == "prompt" ? counts : null;
                    var slots = SlotBudget.FromRatio(ratio, trace.Layers, trace.Experts, popularity);
                    var r = TraceSimulator.Run(traces, PlacementScenarios.Policy(policy), slots, Cost, PlacementScenarios.Prefix, popularity);
                    goldens.Add($"{policy}/{Goldens.Of(ratio)}/{profile}",
                    [
                        r.Policy, r.DecodeTokens.ToString(System.Globalization.CultureInfo.InvariantCulture), Goldens.Of(r.DecodeSeconds),
                        Goldens.Of(r.HitRate), Goldens.Of(r.CpuExpertsPerToken), Goldens.Of(r.TransfersPerToken), Goldens.Of(r.GpuWaitUsPerToken),
                        Goldens.Of(r.PredictorRecall),
                    ]);
                }
        goldens.Check(output);
    }
}
