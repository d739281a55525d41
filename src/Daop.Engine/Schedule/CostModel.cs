namespace Daop.Engine.Schedule;

/// <summary>
/// Per-token costs of one decode step's pieces, in microseconds, for the trace-driven simulator. Build it
/// from measured bandwidths with <see cref="FromBandwidths"/> so policies can be compared on any machine.
/// </summary>
/// <param name="DenseLayerUs">GPU time of one layer's dense part (norms, attention, router).</param>
/// <param name="GpuExpertUs">GPU time of one expert for one token (its weights read once).</param>
/// <param name="CpuExpertUs">CPU time of one expert for one token.</param>
/// <param name="TransferUs">Host→device copy of one expert.</param>
/// <param name="CpuRoundTripUs">Fixed latency of handing a token to the CPU and its result back (D2H, wake-up, H2D).</param>
/// <param name="HeadUs">GPU time of embedding, final norm and LM head per token.</param>
/// <param name="CpuSlowdownWhileCopying">
/// How much longer CPU expert work takes while a host→device copy runs (both read host memory; `daop bench gpu`
/// measures it: 1.29 on the H100's host, where the CPU alone reads 137 GB/s and 106 GB/s beside the copies).
/// </param>
public sealed record CostModel(double DenseLayerUs, double GpuExpertUs, double CpuExpertUs, double TransferUs,
    double CpuRoundTripUs, double HeadUs, double CpuSlowdownWhileCopying = 1)
{
    /// <summary>
    /// When CPU expert work of <see cref="CpuExpertUs"/> started at <paramref name="start"/> ends, given that the copy
    /// engine is busy until <paramref name="copyBusyUntil"/>: the overlapping part runs <see cref="CpuSlowdownWhileCopying"/>
    /// times slower.
    /// </summary>
    public double CpuExpertEnd(double start, double copyBusyUntil) => CpuExpertEnd(start, copyBusyUntil, false);

    /// <summary>
    /// <see cref="CpuExpertEnd(double, double)"/> for an expert read from its low-precision copy when
    /// <paramref name="lowPrecision"/>: <see cref="LowPrecisionBytesRatio"/> of the work (a CPU expert is bound by the bytes it reads).
    /// </summary>
    public double CpuExpertEnd(double start, double copyBusyUntil, bool lowPrecision)
    {
        double f = CpuSlowdownWhileCopying, work = lowPrecision ? CpuExpertUs * LowPrecisionBytesRatio : CpuExpertUs;
        double slowWork = Math.Clamp((copyBusyUntil - start) / f, 0, work); // work done while the copy runs
        return start + slowWork * f + (work - slowWork);
    }

    /// <summary>
    /// Bytes of an expert's low-precision copy over its primary bytes (<see cref="MissPrecision"/>; e.g. q4_0 of bf16:
    /// 18 / 64 = 0.28), in (0, 1]; 1 (default): no copy.
    /// </summary>
    public double LowPrecisionBytesRatio
    {
        get;
        init
        {
            if (!(value > 0 && value <= 1)) throw new ArgumentOutOfRangeException(nameof(LowPrecisionBytesRatio), value, "the low-precision bytes ratio must be in (0, 1]");
            field = value;
        }
    } = 1;

    /// <summary>
    /// Costs from bytes and bandwidths (GB/s = 10⁹ B/s): dense and expert weights stream at the GPU's
    /// bandwidth, CPU experts at the host's, transfers over PCIe.
    /// </summary>
    public static CostModel FromBandwidths(long expertBytes, long denseLayerBytes, long headBytes,
        double gpuGBps, double cpuGBps, double pcieGBps, double cpuRoundTripUs = 30, double launchUs = 5, int launchesPerLayer = 8,
        double cpuSlowdownWhileCopying = 1) =>
        new(denseLayerBytes / gpuGBps / 1e3 + launchUs * launchesPerLayer,
            expertBytes / gpuGBps / 1e3 + launchUs * 2,
            expertBytes / cpuGBps / 1e3,
            expertBytes / pcieGBps / 1e3,
            cpuRoundTripUs,
            headBytes / gpuGBps / 1e3 + launchUs * 3,
            cpuSlowdownWhileCopying);
}
