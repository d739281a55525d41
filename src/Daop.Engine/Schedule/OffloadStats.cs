using System.Globalization;

namespace Daop.Engine.Schedule;

/// <summary>
/// What <see cref="OffloadedExpertScheduler"/> did: counts over activations (one routed (token, expert) pair each)
/// and transfers, and the time spent waiting on copies and in CPU experts. <see cref="OffloadedExpertScheduler.Stats"/>
/// is cumulative; take <see cref="Since"/> around a forward call, or read
/// <see cref="OffloadedExpertScheduler.LastStep"/>, and divide by <see cref="Tokens"/> for per-token figures.
/// </summary>
public sealed class OffloadStats
{
    /// <summary>Tokens that went through the model (counted at the first MoE layer).</summary>
    public long Tokens { get; internal set; }
    /// <summary>Routed (token, expert) pairs.</summary>
    public long Activations { get; internal set; }
    /// <summary>Activations whose expert held a GPU slot when it was routed (including a prefetch still in flight).</summary>
    public long Hits { get; internal set; }
    /// <summary>Activations whose expert did not (each asked the policy's OnMiss).</summary>
    public long Misses { get; internal set; }
    /// <summary>Activations served by a GPU slot (hits and transfers on miss).</summary>
    public long GpuExpertRuns { get; internal set; }
    /// <summary>Activations served by a CPU expert.</summary>
    public long CpuExpertRuns { get; internal set; }
    /// <summary>GPU expert launch groups (fused gate/up + down): one per layer call with GPU work, more when split.</summary>
    public long Waves { get; internal set; }
    /// <summary>Groups launched early because a transfer on miss evicted an expert still to run in the same call.</summary>
    public long SplitWaves { get; internal set; }
    /// <summary>Experts copied host→device after the initial placement (on miss, prefetch and post-prefill swaps).</summary>
    public long Transfers { get; internal set; }
    /// <summary>Of <see cref="Transfers"/>, those made on a miss.</summary>
    public long MissTransfers { get; internal set; }
    /// <summary>Of <see cref="Transfers"/>, those made for a prediction (prefetch).</summary>
    public long PrefetchTransfers { get; internal set; }
    /// <summary>Of <see cref="Transfers"/>, those made by a decode-time re-placement (DAOP's drift mode).</summary>
    public long RebalanceTransfers { get; internal set; }
    /// <summary>
    /// Of <see cref="Transfers"/>, those made to run a prefill chunk's CPU-resident expert on the GPU from a staging slot
    /// (<see cref="PlacementAction.RunStreamed"/>; the residency did not change).
    /// </summary>
    public long StreamTransfers { get; internal set; }
    /// <summary>Of <see cref="GpuExpertRuns"/>, activations run from a staging slot.</summary>
    public long StreamedRuns { get; internal set; }
    /// <summary>Bytes copied by <see cref="Transfers"/>.</summary>
    public long TransferBytes { get; internal set; }
    /// <summary>Seconds the compute stream waited for copies (CUDA: measured with events; CPU accelerator: the synchronous copies).</summary>
    public double CopyWaitSeconds { get; internal set; }
    /// <summary>Seconds spent in CPU experts (host time, overlapping the GPU experts of the same layer).</summary>
    public double CpuExpertSeconds { get; internal set; }

    /// <summary>Of <see cref="CpuExpertRuns"/>, those DAOP's approximate mode pre-calculated from the previous layer's input.</summary>
    public long PrecalculatedRuns { get; internal set; }
    /// <summary>
    /// Checked approximate mode: pre-calculated experts the true gate did not choose (their outputs are dropped; the
    /// true experts they stood for ran from their true input).
    /// </summary>
    public long PrecalculatedUnused { get; internal set; }
    /// <summary>
    /// Pre-calculated experts dropped because the layer's true input had drifted past the policy's bound from the one they
    /// were computed from (<see cref="Placement.IPlacementPolicy.PrecalcMaxDrift"/>): they ran exactly on the CPU.
    /// </summary>
    public long PrecalculatedRejected { get; internal set; }
    /// <summary>Approximate-mode predictions that graceful degradation changed (every predicted expert was off the GPU).</summary>
    public long Substitutions { get; internal set; }
    /// <summary>Decode activations of layers that had a next-layer prediction (the predictor's denominator).</summary>
    public long PredictedActivations { get; internal set; }
    /// <summary>Of <see cref="PredictedActivations"/>, those whose expert was among the predicted top-k.</summary>
    public long PredictionHits { get; internal set; }
    /// <summary>CPU expert runs that read the expert's low-precision copy (<see cref="PlacementDriver.MissPrecision"/>).</summary>
    public long LowPrecisionRuns { get; internal set; }
    /// <summary>Host bytes those runs did not read: per run, the primary expert's bytes less its low-precision copy's.</summary>
    public long LowPrecisionBytesSaved { get; internal set; }
    /// <summary>Seconds the approximate mode's pre-calculations ran (host time, overlapping other work).</summary>
    public double PrecalcSeconds { get; internal set; }
    /// <summary>Seconds the scheduler waited for a pre-calculation still running when its layer came.</summary>
    public double PrecalcWaitSeconds { get; internal set; }

    /// <summary>Share of routed experts the next-layer predictor had in its top-k (0 when nothing was predicted).</summary>
    public double PredictorRecall => PredictedActivations == 0 ? 0 : (double)PredictionHits / PredictedActivations;

    /// <summary>A copy of the counters now.</summary>
    public OffloadStats Snapshot() => (OffloadStats)MemberwiseClone();

    /// <summary>The counters minus an earlier <paramref name="snapshot"/>.</summary>
    public OffloadStats Since(OffloadStats snapshot)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        var d = Snapshot();
        d.Accumulate(snapshot, -1);
        return d;
    }

    /// <summary>Adds <paramref name="other"/>'s counters to these (summing runs of several prompts).</summary>
    public void Add(OffloadStats other)
    {
        ArgumentNullException.ThrowIfNull(other);
        Accumulate(other, 1);
    }

    // Every counter += sign · other's: the one list of the fields that Since and Add combine.
    void Accumulate(OffloadStats o, int sign)
    {
        Tokens += sign * o.Tokens; Activations += sign * o.Activations; Hits += sign * o.Hits; Misses += sign * o.Misses;
        GpuExpertRuns += sign * o.GpuExpertRuns; CpuExpertRuns += sign * o.CpuExpertRuns; Waves += sign * o.Waves; SplitWaves += sign * o.SplitWaves;
        Transfers += sign * o.Transfers; MissTransfers += sign * o.MissTransfers; PrefetchTransfers += sign * o.PrefetchTransfers;
        RebalanceTransfers += sign * o.RebalanceTransfers; TransferBytes += sign * o.TransferBytes;
        StreamTransfers += sign * o.StreamTransfers; StreamedRuns += sign * o.StreamedRuns;
        CopyWaitSeconds += sign * o.CopyWaitSeconds; CpuExpertSeconds += sign * o.CpuExpertSeconds;
        PrecalculatedRuns += sign * o.PrecalculatedRuns; PrecalculatedUnused += sign * o.PrecalculatedUnused;
        PrecalculatedRejected += sign * o.PrecalculatedRejected; Substitutions += sign * o.Substitutions;
        PredictedActivations += sign * o.PredictedActivations; PredictionHits += sign * o.PredictionHits;
        PrecalcSeconds += sign * o.PrecalcSeconds; PrecalcWaitSeconds += sign * o.PrecalcWaitSeconds;
        LowPrecisionRuns += sign * o.LowPrecisionRuns; LowPrecisionBytesSaved += sign * o.LowPrecisionBytesSaved;
    }

    /// <summary>Hits / activations (1 when nothing ran).</summary>
    public double HitRate => Activations == 0 ? 1 : (double)Hits / Activations;

    /// <summary><paramref name="count"/> per token (0 when no token ran).</summary>
    public double PerToken(double count) => Tokens == 0 ? 0 : count / Tokens;

    /// <inheritdoc />
    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"{Tokens} tokens, {Activations} activations: hit rate {HitRate:P1}, GPU {GpuExpertRuns} ({Waves} waves, {SplitWaves} split), CPU {CpuExpertRuns}, " +
        $"{Transfers} transfers ({MissTransfers} on miss, {PrefetchTransfers} prefetch, {RebalanceTransfers} re-placing, {StreamTransfers} streamed for prefill, " +
        $"{TransferBytes / 1048576.0:F1} MiB), " +
        $"copy wait {CopyWaitSeconds * 1e3:F2} ms, CPU experts {CpuExpertSeconds * 1e3:F2} ms") +
        (PrecalculatedRuns + PrecalculatedRejected + Substitutions > 0 ? string.Create(CultureInfo.InvariantCulture,
            $"; pre-calculated {PrecalculatedRuns} ({PrecalculatedUnused} unused, {PrecalculatedRejected} rejected as drifted, {Substitutions} substitutions, {PrecalcSeconds * 1e3:F2} ms, waited {PrecalcWaitSeconds * 1e3:F2} ms)") : "") +
        (PredictedActivations > 0 ? string.Create(CultureInfo.InvariantCulture, $"; predictor recall {PredictorRecall:P1}") : "") +
        (LowPrecisionRuns > 0 ? string.Create(CultureInfo.InvariantCulture,
            $"; {LowPrecisionRuns} CPU misses from the low-precision copy ({LowPrecisionBytesSaved / 1048576.0:F1} MiB not read)") : "");
}
