using Daop.Engine.Device;
using Daop.Engine.Load.Config;
using Daop.Engine.Model.Layers;

namespace Daop.Engine.Model;

/// <summary>Every per-forward buffer, sized once from the config for chunks of up to MaxTokens (T below).</summary>
sealed class RunState
{
    public readonly int MaxTokens;
    public readonly DeviceBuffer X;        // [T, H] residual stream
    public readonly DeviceBuffer Xn;       // [T, H] normalised input of attention / FFN
    public readonly DeviceBuffer Q;        // [T, NH·D] (the widest layer's AttentionSpec.QueryWidth)
    public readonly DeviceBuffer K;        // [T, NKV·D] (AttentionSpec.KvWidth)
    public readonly DeviceBuffer V;        // [T, NKV·D]
    public readonly DeviceBuffer Ctx;      // [T, NH·D] attention output before o_proj
    public readonly DeviceBuffer Out;      // [T, H] attention or FFN output
    public readonly DeviceBuffer Shared;   // [T, H] shared-expert output
    public readonly DeviceBuffer GateLogits; // [T, max(E, 1)] router (or shared-gate) logits
    public readonly DeviceBuffer Logits;   // [LogitRows, V]
    public readonly float[] HostGate;      // [T, H] router input copied to host (observers)
    public readonly float[] HostLogits;    // [T, E] router logits on host
    public readonly float[] Probs;         // [E] routing scratch
    public readonly RoutingBatch Routing;
    public long ExpertReads;               // Σ over MoE layer calls of the distinct experts routed to (MoeModel.ExpertReads)
    public const int LogitRows = 8;

    public RunState(IDevice d, ModelConfig c, int maxTokens)
    {
        MaxTokens = maxTokens;
        int h = c.HiddenSize, q = c.QueryWidth, kv = c.KvWidth;
        X = d.Allocate(maxTokens * h);
        Xn = d.Allocate(maxTokens * h);
        Q = d.Allocate(maxTokens * q);
        K = d.Allocate(maxTokens * kv);
        V = d.Allocate(maxTokens * kv);
        Ctx = d.Allocate(maxTokens * q);
        Out = d.Allocate(maxTokens * h);
        Shared = d.Allocate(maxTokens * h);
        GateLogits = d.Allocate(maxTokens * Math.Max(c.NumExperts, 1));
        Logits = d.Allocate(LogitRows * c.VocabSize);
        HostGate = new float[maxTokens * h];
        HostLogits = new float[maxTokens * c.NumExperts];
        Probs = new float[c.NumExperts];
        Routing = new RoutingBatch(maxTokens, c.TopK);
    }
}
