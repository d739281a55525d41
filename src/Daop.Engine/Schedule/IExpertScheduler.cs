using Daop.Engine.Load.Config;
using Daop.Engine.Device;
using Daop.Engine.Model.Layers;

namespace Daop.Engine.Schedule;

/// <summary>
/// The seam between the forward pass and expert placement: the MoE block hands over the routed tokens and
/// gets back Σ_k w_k · Expert_k(x). Where each expert runs (GPU slot, CPU thread, after a transfer) is the
/// scheduler's business.
/// </summary>
public interface IExpertScheduler
{
    /// <summary>y [T, H] = Σ_k weights[t,k] · Expert_{experts[t,k]}(x[t]) for layer <paramref name="layer"/>.</summary>
    void RunExperts(int layer, DeviceBuffer x, RoutingBatch routing, DeviceBuffer y, int tokens);

    /// <summary>
    /// <see cref="RunExperts"/> with the routing left to the scheduler's device: <paramref name="logits"/> [T, E] are the
    /// router's output, still on the device, routed as <paramref name="router"/> says to <paramref name="topK"/> experts.
    /// Returns false, having done nothing, where the scheduler needs the routing on the host (placement decisions,
    /// counts, CPU experts, a router its device does not run); the caller then routes on the host and calls
    /// <see cref="RunExperts"/>. The default always returns false.
    /// </summary>
    bool TryRunExpertsRoutedOnDevice(int layer, DeviceBuffer x, DeviceBuffer logits, RouterSpec router, int topK, DeviceBuffer y, int tokens) => false;

    /// <summary>
    /// Called by the forward pass before each chunk: its tokens sit at positions <paramref name="startPos"/>.. of the
    /// sequence (position 0 starts a new one). Schedulers that track positions (routing overrides, DAOP's approximate
    /// mode) use it; the default ignores it.
    /// </summary>
    void BeginChunk(int startPos, int tokens) { }

    /// <summary>
    /// Called by the forward pass instead of <see cref="BeginChunk"/> before a batched step of several sequences
    /// (<see cref="BatchesSequences"/>) holding <paramref name="tokens"/> tokens in all. Without <paramref name="prompt"/>
    /// each is one new token of its sequence, so placement counts them as decode; with it some sequence brings a prompt
    /// chunk, and the step is placed as a prompt over the batch's counts. Nothing is predicted per token either way.
    /// </summary>
    void BeginBatch(int tokens, bool prompt) { }

    /// <summary>
    /// True if the forward pass may run the last layer's FFN on only the rows whose logits are asked for (the last
    /// token of a prefill, as llama.cpp does): the other rows' outputs are never read. Schedulers whose decisions count
    /// every token's routing (placement, replayed traces) keep the default, false.
    /// </summary>
    bool AllowsLastLayerPruning => false;

    /// <summary>
    /// True if a decode step of softmax-routed SwiGLU experts only queues device work (routing on the device, no host
    /// round trip), so the step can be captured as a graph (<see cref="IDevice.RunStep"/>).
    /// </summary>
    bool DecodeStepQueuesOnly => false;

    /// <summary>
    /// True if a chunk may hold the tokens of several sequences (<see cref="Model.MoeModel.ForwardBatch(ReadOnlySpan{int}, ReadOnlySpan{Model.BatchSegment}, Span{float})"/>): the
    /// scheduler groups tokens by expert across them and keeps no per-sequence state that a batch would mix up (a
    /// replayed trace routes by position: schedulers with one refuse batches).
    /// </summary>
    bool BatchesSequences => false;

    /// <summary>For logs: where experts run and with which kernel.</summary>
    string Description => GetType().Name;
}
