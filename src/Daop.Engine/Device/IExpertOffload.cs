using Daop.Engine.Model.Layers;

namespace Daop.Engine.Device;

/// <summary>
/// The device half of offloaded experts: fixed expert slots per layer in device memory, host→device copies into them, a
/// layer call's GPU experts launched in waves, and CPU experts on host threads whose weighted sum is added to y. The
/// placement executor (<c>Schedule.OffloadedExpertScheduler</c>) decides every step; <c>Gpu.GpuExpertOffload</c>
/// carries the steps out on a GPU.
/// </summary>
public interface IExpertOffload : IDisposable
{
    /// <summary>Device bytes of all slots (the pool and any staging slots).</summary>
    long PoolBytes { get; }
    /// <summary>Device bytes the device holds in all (dense part and slots).</summary>
    long TotalBytes { get; }
    /// <summary>Seconds the compute stream waited for copies, resolved up to now.</summary>
    double CopyWaitSeconds { get; }
    /// <summary>Seconds spent in CPU experts.</summary>
    double CpuExpertSeconds { get; }

    /// <summary>The slot holding <paramref name="expert"/> of <paramref name="layer"/>, or -1.</summary>
    int SlotOf(int layer, int expert);

    /// <summary>
    /// Frees the expert's slot. With <paramref name="splitWave"/>, first launches the GPU work gathered so far in this
    /// layer call (it reads that slot, which the next load overwrites).
    /// </summary>
    void Evict(int layer, int expert, bool splitWave);

    /// <summary>Gives the expert a free slot of its layer and queues its copy; kernels that read the slot wait for it.</summary>
    void Load(int layer, int expert);

    /// <summary>Starts a layer call: <paramref name="tokens"/> rows of <paramref name="x"/> routed by <paramref name="r"/>, output into <paramref name="y"/>.</summary>
    void Begin(int layer, DeviceBuffer x, DeviceBuffer y, RoutingBatch r, int tokens);

    /// <summary>This call's input rows [T, H] on the host, copied down on first use.</summary>
    ReadOnlySpan<float> Input();

    /// <summary>Activation <paramref name="position"/> (token·K + k) runs its expert in the expert's slot, in the current wave.</summary>
    void RunOnGpu(int position);

    /// <summary>
    /// Activation <paramref name="position"/> runs its expert on host threads (in <see cref="RunCpu"/>), from the expert's
    /// low-precision host copy when <paramref name="lowPrecision"/> (<see cref="Schedule.PlacementDriver.MissPrecision"/>).
    /// </summary>
    void RunOnCpu(int position, bool lowPrecision);

    /// <summary>
    /// Activation <paramref name="position"/> runs its (non-resident) expert on the GPU from a staging slot: the expert is
    /// copied there once per call (in <see cref="LaunchGpu"/>) and the residency does not change.
    /// </summary>
    void RunStreamed(int position);

    /// <summary>Activation <paramref name="position"/>'s output comes pre-calculated (<see cref="AddPrecalculated"/>).</summary>
    void TakePrecalculated(int position);

    /// <summary>
    /// Launches the call's GPU experts (asynchronous on CUDA): the resident ones in one wave, then each streamed expert's
    /// copy and its own wave; returns the launch waves it made.
    /// </summary>
    int LaunchGpu();

    /// <summary>Adds the pre-calculated sum [H] to the token's CPU sum, if any activation takes it.</summary>
    void AddPrecalculated(ReadOnlySpan<float> sum);

    /// <summary>Runs the call's CPU activations, grouped by expert.</summary>
    void RunCpu();

    /// <summary>Ends the call: the CPU sum goes up into y (overwriting it when no GPU expert wrote it).</summary>
    void Finish();

    /// <summary>Sizes the scratch for chunks of up to <paramref name="tokens"/>.</summary>
    void Reserve(int tokens);

    /// <summary>Waits for every queued kernel and copy.</summary>
    void Synchronize();

    /// <summary>Throws if the slots' own bookkeeping is inconsistent (slot ↔ expert, counts, bytes).</summary>
    void CheckSlots();
}
