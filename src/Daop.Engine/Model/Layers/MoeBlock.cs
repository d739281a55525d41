using Daop.Engine.Load;
using Daop.Engine.Load.Config;
using Daop.Engine.Model.Families;
using Daop.Engine.Schedule;

namespace Daop.Engine.Model.Layers;

/// <summary>
/// The one MoE block (<see cref="FfnSpec.Moe"/>): logits = xn·Wrᵀ; each token routed by the spec's
/// <see cref="RouterSpec"/>; out = Σ_k w_k·Expert_k(xn) on the expert scheduler, plus the shared expert if any
/// (sigmoid(xn·g)·Shared(xn), or Shared(xn) ungated). Shapes: T tokens, H hidden, E experts, K top-k.
/// </summary>
public sealed class MoeBlock(FfnSpec.Moe spec) : FfnLayer
{
    /// <inheritdoc />
    public override FfnSpec.Moe Spec { get; } = spec;
    /// <inheritdoc />
    public override string Stage => "moe";
    /// <summary>Router [E, H]; null for <see cref="RouterSpec.Single"/> (every token takes expert 0 with weight 1).</summary>
    public required LinearWeights? Router { get; init; }
    /// <summary>The router's per-expert selection bias [E], if its spec reads one (<see cref="RouterSpec.HasScoreBias"/>).</summary>
    public float[]? ScoreBias { get; init; }
    /// <summary>Routed experts, E of them.</summary>
    public required ExpertWeights[] Experts { get; init; }
    /// <summary>Shared expert, if the spec has one.</summary>
    public ExpertWeights? Shared { get; init; }
    /// <summary>Sigmoid gate of the shared expert [1, H], if it is gated.</summary>
    public LinearWeights? SharedGate { get; init; }

    internal static MoeBlock Load(FfnSpec.Moe spec, ITensorSource st, TensorNames n, int layer, int hidden)
    {
        static string Named(string? pattern, string what) => pattern ?? throw new InvalidOperationException($"the family's tensor names have no {what}");
        string F(string? pattern, string what) => TensorNames.Format(Named(pattern, what), layer);
        string FE(string? pattern, int e, string what) => TensorNames.Format(Named(pattern, what), layer, e);
        bool biased = spec.Act is Activation.ClampedSwiGlu;                    // GPT-OSS: biased gate, up and down
        ExpertWeights Expert(int e)
        {
            if (n.ExpertGateUp != null)
                return ExpertWeights.LoadGateUp(st, FE(n.ExpertGateUp, e, "expert gate/up"), FE(n.ExpertDown, e, "expert down"), spec.ExpertIntermediate, hidden);
            string gate = FE(n.ExpertGate, e, "expert gate"), up = FE(n.ExpertUp, e, "expert up"), down = FE(n.ExpertDown, e, "expert down");
            var w = ExpertWeights.Load(st, gate, up, down, spec.ExpertIntermediate, hidden);
            return biased ? w with { Bias = ExpertWeights.LoadBias(st, gate, up, down, spec.ExpertIntermediate, hidden) } : w;
        }
        return new MoeBlock(spec)
        {
            Router = spec.Router is RouterSpec.Single ? null : LinearWeights.Load(st, F(n.Router, "router"), spec.Experts, hidden, n.RouterBias),
            ScoreBias = spec.Router.HasScoreBias ? st.Vector(F(n.RouterScoreBias, "router score bias"), spec.Experts) : null,
            Experts = Enumerable.Range(0, spec.Experts).Select(Expert).ToArray(),
            Shared = spec.Shared is not { } s ? null
                : n.SharedGateUp != null ? ExpertWeights.LoadGateUp(st, F(n.SharedGateUp, "shared expert gate/up"), F(n.SharedDown, "shared expert down"), s.Intermediate, hidden)
                : ExpertWeights.Load(st, F(n.SharedGate, "shared expert"), F(n.SharedUp, "shared expert"), F(n.SharedDown, "shared expert"), s.Intermediate, hidden),
            SharedGate = spec.Shared is SharedExpertSpec.SigmoidGated
                ? LinearWeights.Load(st, F(n.SharedExpertGate, "shared expert gate"), 1, hidden, bias: false) : null,
        };
    }

    /// <inheritdoc />
    public override void Visit(DenseMatrixVisitor matrix, Action<float[]> vector)
    {
        Router?.Visit(matrix, vector);
        if (ScoreBias != null) vector(ScoreBias);
        SharedGate?.Visit(matrix, vector);
        Shared?.Visit(matrix);
    }

    internal override void Forward(in LayerStep step, IExpertScheduler experts, IRoutingObserver? observer)
    {
        var (d, s, t, l) = (step.Device, step.S, step.Tokens, step.Layer);
        int e = Spec.Experts, k = Spec.TopK, h = Experts[0].Down.Rows;      // down [H, I]
        bool scalesInput = Spec.Router is RouterSpec.SigmoidScalesInput;       // Llama-4: Expert(w·xn), so xn is scaled below
        if (scalesInput && Shared is { } first) d.Ffn(first, s.Xn, s.Shared, t); // the shared expert reads xn unscaled
        if (Router != null) d.Linear(Router, s.Xn, s.GateLogits, t);            // logits [T, E]
        // out [T, H] = Σ_k w_k·Expert_k(xn): routed where the logits are when nobody on the host needs them (GPU decode).
        if (Router != null && observer == null && experts.TryRunExpertsRoutedOnDevice(l, s.Xn, s.GateLogits, Spec.Router, k, s.Out, t))
            s.ExpertReads += Math.Min(e, t * k);                                // routed on the device: at most this many
        else
        {
            if (Router == null) s.HostLogits.AsSpan(0, t).Clear();              // no router: one zero logit, no device round trip
            else d.CopyToHost(s.GateLogits, 0, s.HostLogits.AsSpan(0, t * e));
            // Always checked (T·E floats already on the host): NaN logits would route to no expert at all.
            NonFiniteException.ThrowIfAny(s.HostLogits.AsSpan(0, t * e), e, step.StartPos, l, "router logits");
            var r = s.Routing;                                                  // ids, weights [T, K]
            r.Tokens = t;
            for (int i = 0; i < t; i++)
                Layers.Router.Route(Spec.Router, s.HostLogits.AsSpan(i * e, e), ScoreBias, r.Experts.AsSpan(i * k, k), r.Weights.AsSpan(i * k, k), s.Probs);
            s.ExpertReads += DistinctExperts(r.Experts.AsSpan(0, t * k), e);
            if (observer != null)
            {
                d.CopyToHost(s.Xn, 0, s.HostGate.AsSpan(0, t * h));
                observer.OnRouted(l, step.StartPos, s.HostGate.AsSpan(0, t * h), s.HostLogits.AsSpan(0, t * e), r);
            }
            if (scalesInput)
            {
                // K = 1 (the family checks it): one weight per token scales that token's row; the experts then weigh 1.
                d.ScaleRows(s.Xn, r.Weights.AsSpan(0, t), h);
                r.Weights.AsSpan(0, t).Fill(1);
            }
            experts.RunExperts(l, s.Xn, r, s.Out, t);
        }
        switch (Spec.Shared)
        {
            case SharedExpertSpec.SigmoidGated:                                 // Qwen2-MoE
                d.Ffn(Shared!.Value, s.Xn, s.Shared, t);                        // [T, H]
                d.Linear(SharedGate!, s.Xn, s.GateLogits, t);                   // [T, 1]
                d.AddSigmoidScaled(s.Out, s.Shared, s.GateLogits, t, h);
                break;
            case SharedExpertSpec.Ungated:                                      // DeepSeek, Llama-4
                if (!scalesInput) d.Ffn(Shared!.Value, s.Xn, s.Shared, t);      // [T, H]
                d.Add(s.Out, s.Shared, t * h);
                break;
        }
    }

    // How many of the experts [0, e) occur in ids.
    static int DistinctExperts(ReadOnlySpan<int> ids, int e)
    {
        Span<bool> seen = e <= 512 ? stackalloc bool[e] : new bool[e];
        int n = 0;
        foreach (int id in ids)
            if (!seen[id]) { seen[id] = true; n++; }
        return n;
    }
}
