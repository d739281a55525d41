using Daop.Engine.Device;
using Daop.Engine.Load;
using Daop.Engine.Load.Config;
using Daop.Engine.Model.Families;
using Daop.Kernels;
using Daop.Kernels.Cpu;

namespace Daop.Engine.Model.Layers;

/// <summary>
/// Multi-head latent attention (<see cref="AttentionSpec.Mla"/>; transformers' DeepseekV2Attention / DeepseekV3Attention)
/// over a compressed cache of c [r] and the roped k_pe [dr] per position. Instead of expanding every cached position to
/// per-head keys and values, W_uk is absorbed into the query (q·k_nope = (W_ukᵀ·q_nope)·c) and W_uv applied once after
/// the weighted sum (Σ p·W_uv·c = W_uv·Σ p·c). Shapes: T tokens, H hidden, NH heads, r latent, dn/dr/dv head parts.
/// </summary>
public sealed class MlaAttention(AttentionSpec.Mla spec) : AttentionLayer
{
    /// <inheritdoc />
    public override AttentionSpec.Mla Spec { get; } = spec;
    /// <summary>q_proj [NH·(dn+dr), H] (no q LoRA).</summary>
    public LinearWeights? Q { get; init; }
    /// <summary>q_a_proj [rq, H] (q LoRA).</summary>
    public LinearWeights? QA { get; init; }
    /// <summary>q_a_layernorm [rq].</summary>
    public NormWeights? QANorm { get; init; }
    /// <summary>q_b_proj [NH·(dn+dr), rq].</summary>
    public LinearWeights? QB { get; init; }
    /// <summary>kv_a_proj_with_mqa's first r rows [r, H]: the latent c.</summary>
    public required LinearWeights KvC { get; init; }
    /// <summary>kv_a_proj_with_mqa's last dr rows [dr, H]: the shared key k_pe.</summary>
    public required LinearWeights KPe { get; init; }
    /// <summary>kv_a_layernorm [r].</summary>
    public required NormWeights KvNorm { get; init; }
    /// <summary>W_uk per head, transposed, fp32 [NH, r, dn]: absorbs the key up-projection into q.</summary>
    public required float[] UkT { get; init; }
    /// <summary>W_uv per head, fp32 [NH, dv, r]: the value up-projection, after the weighted sum.</summary>
    public required float[] Uv { get; init; }
    /// <summary>o_proj [H, NH·dv].</summary>
    public required LinearWeights O { get; init; }

    LatentShape Shape => new(Spec.Heads, Spec.KvRank, Spec.RopeHeadDim, Spec.NopeDim + Spec.RopeHeadDim, Spec.NopeDim, Spec.Scale, Spec.RopeInterleaved);

    internal static MlaAttention Load(AttentionSpec.Mla spec, ITensorSource st, MlaNames n, int layer, int hidden)
    {
        string F(string pattern) => TensorNames.Format(pattern, layer);
        int nh = spec.Heads, r = spec.KvRank, dn = spec.NopeDim, dr = spec.RopeHeadDim, dv = spec.ValueDim, qw = nh * (dn + dr);
        var kva = LinearWeights.Load(st, F(n.KvA), r + dr, hidden, spec.Bias);
        // kv_b when the file has it (the checkpoint's own tensor), else its split halves; neither: kv_b is named missing.
        var (ukT, uv) = n.KB is { } kb && n.VB is { } vb && !st.Contains(F(n.KvB)) && st.Contains(F(kb))
            ? (PerHead(st, F(kb), nh, r, dn), PerHead(st, F(vb), nh, dv, r))
            : SplitKvB(st.Matrix(F(n.KvB), nh * (dn + dv), r), F(n.KvB), nh, dn, dv);
        var norm = NormSpec.Rms(1e-6f); // DeepseekV2RMSNorm's default: q_a_layernorm and kv_a_layernorm are made without the config's eps
        int rq = spec.QRank ?? 0;
        bool lora = spec.QRank != null;
        return new MlaAttention(spec)
        {
            Q = lora ? null : LinearWeights.Load(st, F(n.Q), qw, hidden, bias: false),
            QA = lora ? LinearWeights.Load(st, F(n.QA), rq, hidden, spec.Bias) : null,
            QANorm = lora ? NormWeights.Load(st, norm, F(n.QANorm), rq) : null,
            QB = lora ? LinearWeights.Load(st, F(n.QB), qw, rq, bias: false) : null,
            KvC = new LinearWeights(kva.W.SliceRows(0, r), kva.Bias?[..r]),
            KPe = new LinearWeights(kva.W.SliceRows(r, dr), kva.Bias?[r..]),
            KvNorm = NormWeights.Load(st, norm, F(n.KvANorm), r),
            UkT = ukT,
            Uv = uv,
            O = LinearWeights.Load(st, F(n.O), hidden, nh * dv, spec.Bias),
        };
    }

    // kv_b_proj [NH·(dn+dv), r], per head dn key rows then dv value rows → W_ukᵀ [NH, r, dn] and W_uv [NH, dv, r] in fp32.
    static unsafe (float[] UkT, float[] Uv) SplitKvB(WeightMatrix w, string name, int nh, int dn, int dv)
    {
        int r = w.Cols;
        var ukT = new float[nh * r * dn];
        var uv = new float[nh * dv * r];
        var row = new float[r];
        for (int h = 0; h < nh; h++)
            for (int i = 0; i < dn + dv; i++)
            {
                Widen(w, h * (dn + dv) + i, row, name);
                if (i < dn)
                    for (int j = 0; j < r; j++) ukT[(h * r + j) * dn + i] = row[j];
                else
                    row.CopyTo(uv.AsSpan((h * dv + i - dn) * r, r));
            }
        return (ukT, uv);
    }

    // A per-head matrix [NH][rows, cols] in fp32: one [NH·rows, cols] matrix (ik_llama.cpp's converter), else a stack of NH
    // (llama.cpp's attn_k_b [NH, r, dn] and attn_v_b [NH, dv, r]); a tensor of neither shape fails naming the stack's.
    static float[] PerHead(ITensorSource st, string name, int nh, int rows, int cols)
    {
        Func<int, WeightMatrix> head;
        try
        {
            var whole = st.Matrix(name, nh * rows, cols);
            head = h => whole.SliceRows(h * rows, rows);
        }
        catch (ModelLoadException e) when (e.MissingTensor == null)
        {
            head = h => st.Matrix($"{name}[{h}]", rows, cols);
        }
        var all = new float[nh * rows * cols];
        for (int h = 0; h < nh; h++)
        {
            var w = head(h);
            for (int i = 0; i < rows; i++) Widen(w, i, all.AsSpan((h * rows + i) * cols, cols), name);
        }
        return all;
    }

    static unsafe void Widen(WeightMatrix w, int r, Span<float> dst, string name)
    {
        var bytes = w.RowBytesSpan(r);
        switch (w.Type)
        {
            case DType.F32: System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(bytes).CopyTo(dst); break;
            case DType.BF16:
                var b = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ushort>(bytes);
                for (int i = 0; i < dst.Length; i++) dst[i] = Bf16.ToFloat(b[i]);
                break;
            case DType.F16:
                var f = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, Half>(bytes);
                for (int i = 0; i < dst.Length; i++) dst[i] = (float)f[i];
                break;
            default:
                throw new ModelLoadException($"{name}: multi-head latent attention reads kv_b_proj as F32, F16 or BF16, not {w.Type}");
        }
    }

    /// <inheritdoc />
    public override void Visit(DenseMatrixVisitor matrix, Action<float[]> vector)
    {
        Q?.Visit(matrix, vector); QA?.Visit(matrix, vector); QANorm?.Visit(vector); QB?.Visit(matrix, vector);
        KvC.Visit(matrix, vector); KPe.Visit(matrix, vector); KvNorm.Visit(vector);
        vector(UkT); vector(Uv);
        O.Visit(matrix, vector);
    }

    internal override void Forward(in LayerStep step, RopeTable rope, KvCache cache)
    {
        var (d, s, t) = (step.Device, step.S, step.Tokens);
        var a = Shape;
        int nh = a.Heads, r = a.Rank, dn = Spec.NopeDim, dv = Spec.ValueDim;
        if (QA != null)
        {
            d.Linear3(QA, KvC, KPe, s.Xn, s.Ctx, s.K, s.V, t);                 // q_a [T, rq], c [T, r], k_pe [T, dr]
            d.Norm(QANorm!, s.Ctx, s.Ctx, t);
            d.Linear(QB!, s.Ctx, s.Q, t);                                       // q [T, NH·(dn+dr)]
        }
        else d.Linear3(Q!, KvC, KPe, s.Xn, s.Q, s.K, s.V, t);                  // q [T, NH·(dn+dr)], c, k_pe
        d.Norm(KvNorm, s.K, s.K, t);                                            // c = kv_a_layernorm(c)
        d.HeadMatMul(UkT, s.Q, dn + a.RopeDim, 0, s.Ctx, a.Width, 0, t, nh, r, dn); // qc[:, h, :r] = W_uk,hᵀ·q_nope,h
        if (step.Batch is { } b)
        {
            // Every segment's RoPE and append first: attention then writes o over s.Q, which the appends read.
            int row = 0;
            foreach (var g in b.Segments) { d.LatentAppend(g.Cache, step.Layer, rope, s.Q, s.Ctx, s.K, s.V, a, g.Tokens, g.StartPos, row); row += g.Tokens; }
            row = 0;
            foreach (var g in b.Segments) { d.LatentAttention(g.Cache, step.Layer, s.Ctx, s.Q, a, g.Tokens, g.StartPos, row); row += g.Tokens; }
        }
        else
        {
            d.LatentAppend(cache, step.Layer, rope, s.Q, s.Ctx, s.K, s.V, a, t, step.StartPos);  // qc[:, h, r:] = RoPE(q_pe); cache ← [c, RoPE(k_pe)]
            d.LatentAttention(cache, step.Layer, s.Ctx, s.Q, a, t, step.StartPos);            // o [T, NH·r] = Σ p·c
        }
        d.HeadMatMul(Uv, s.Q, r, 0, s.Ctx, dv, 0, t, nh, dv, r);               // ctx [T, NH·dv] = W_uv,h·o_h
        d.Linear(O, s.Ctx, s.Out, t);                                           // out [T, H]
    }
}
