using Daop.Engine.Load;
using Daop.Engine.Load.Config;
using Daop.Engine.Load.Safetensors;
using Daop.Engine.Model.Families;
using Daop.Kernels;

namespace Daop.Engine.Model;

/// <summary>A weight matrix for <see cref="ModelWeights.VisitDense"/>; <paramref name="perToken"/>: one decoded token reads all of it.</summary>
public delegate void DenseMatrixVisitor(in WeightMatrix matrix, bool perToken);

/// <summary>One SwiGLU FFN: gate/up [I, H], down [H, I], as views into the checkpoint.</summary>
public readonly record struct ExpertWeights(WeightMatrix Gate, WeightMatrix Up, WeightMatrix Down)
{
    /// <summary>Bytes of all three matrices.</summary>
    public long ByteLength => Gate.ByteLength + Up.ByteLength + Down.ByteLength;
}

/// <summary>A norm's fp32 weight (and bias for LayerNorm) over rows of Weight.Length.</summary>
public sealed record NormWeights(NormKind Kind, float[] Weight, float[]? Bias, float Eps);

/// <summary>A linear layer: weight [out, in] and optional fp32 bias [out].</summary>
public sealed record LinearWeights(WeightMatrix W, float[]? Bias);

/// <summary>One decoder layer's weights.</summary>
public sealed class LayerWeights
{
    /// <summary>Pre-attention norm [H].</summary>
    public required NormWeights AttnNorm { get; init; }
    /// <summary>Pre-FFN norm [H].</summary>
    public required NormWeights FfnNorm { get; init; }
    /// <summary>q [NH·D, H], k/v [NKV·D, H], o [H, NH·D].</summary>
    public required LinearWeights Q { get; init; }
    /// <summary>Key projection.</summary>
    public required LinearWeights K { get; init; }
    /// <summary>Value projection.</summary>
    public required LinearWeights V { get; init; }
    /// <summary>Output projection.</summary>
    public required LinearWeights O { get; init; }
    /// <summary>q norm ([D] per head or [NH·D] whole), if the family has one.</summary>
    public NormWeights? QNorm { get; init; }
    /// <summary>k norm, if the family has one.</summary>
    public NormWeights? KNorm { get; init; }
    /// <summary>Router [E, H] (MoE layers).</summary>
    public LinearWeights? Router { get; init; }
    /// <summary>Routed experts (empty for dense layers).</summary>
    public ExpertWeights[] Experts { get; init; } = [];
    /// <summary>Shared expert, if any.</summary>
    public ExpertWeights? Shared { get; init; }
    /// <summary>Sigmoid gate of the shared expert [1, H], if any.</summary>
    public LinearWeights? SharedGate { get; init; }
    /// <summary>Dense MLP of a non-MoE layer.</summary>
    public ExpertWeights? Dense { get; init; }
}

/// <summary>All weights of a model, mapped from its checkpoint. Matrices stay in their stored dtype; small vectors are widened to fp32.</summary>
public sealed class ModelWeights
{
    /// <summary>Token embedding [V, H].</summary>
    public required WeightMatrix Embed { get; init; }
    /// <summary>Final norm.</summary>
    public required NormWeights FinalNorm { get; init; }
    /// <summary>LM head [V, H] (the embedding when tied).</summary>
    public required LinearWeights LmHead { get; init; }
    /// <summary>Decoder layers.</summary>
    public required LayerWeights[] Layers { get; init; }

    /// <summary>
    /// Visits every weight of the dense part (everything but routed experts) in a fixed order: each matrix, with whether
    /// one decoded token reads all of it (false only for the embedding, of which it reads a row), and each fp32 vector
    /// (norm weights, LayerNorm biases, linear biases). Weights that appear twice (tied embeddings) are visited twice;
    /// callers that count bytes dedupe as they need.
    /// </summary>
    public void VisitDense(DenseMatrixVisitor matrix, Action<float[]> vector)
    {
        ArgumentNullException.ThrowIfNull(matrix);
        ArgumentNullException.ThrowIfNull(vector);
        void N(NormWeights? n)
        {
            if (n == null) return;
            vector(n.Weight);
            if (n.Bias != null) vector(n.Bias);
        }
        void L(LinearWeights? l)
        {
            if (l == null) return;
            matrix(l.W, true);
            if (l.Bias != null) vector(l.Bias);
        }
        void F(ExpertWeights? e)
        {
            if (e is not { } x) return;
            matrix(x.Gate, true); matrix(x.Up, true); matrix(x.Down, true);
        }
        matrix(Embed, false);
        N(FinalNorm);
        L(LmHead);
        foreach (var l in Layers)
        {
            N(l.AttnNorm); N(l.FfnNorm); N(l.QNorm); N(l.KNorm);
            L(l.Q); L(l.K); L(l.V); L(l.O); L(l.Router); L(l.SharedGate);
            F(l.Shared); F(l.Dense);
        }
    }

    /// <summary>
    /// Bytes of the weight matrices one decoded token reads besides routed experts: per layer q/k/v/o, the router, a
    /// shared expert and its gate, a dense FFN; then the LM head (the embedding gives one row, norms are negligible).
    /// </summary>
    public long DenseBytesPerToken()
    {
        long b = 0;
        VisitDense((in WeightMatrix m, bool perToken) => { if (perToken) b += m.ByteLength; }, _ => { });
        return b;
    }

    /// <summary>Maps every tensor the config calls for, checking each shape.</summary>
    public static ModelWeights Load(ITensorSource st, ModelConfig c, TensorNames n)
    {
        int h = c.HiddenSize, qDim = c.NumHeads * c.HeadDim, kvDim = c.NumKvHeads * c.HeadDim;
        NormWeights Norm(string name, int len) => new(c.Norm, st.Vector(name, len),
            c.Norm == NormKind.LayerNorm ? st.Vector(TensorNames.Bias(name), len) : null, c.NormEps);
        LinearWeights Linear(string name, int rows, int cols, bool bias) =>
            new(st.Matrix(name, rows, cols), bias ? st.Vector(TensorNames.Bias(name), rows) : null);
        ExpertWeights Ffn(string gate, string up, string down, int inter) =>
            new(st.Matrix(gate, inter, h), st.Matrix(up, inter, h), st.Matrix(down, h, inter));

        var layers = new LayerWeights[c.NumLayers];
        for (int l = 0; l < c.NumLayers; l++)
        {
            string F(string p) => TensorNames.Format(p, l);
            bool moe = c.MoeLayers[l];
            layers[l] = new LayerWeights
            {
                AttnNorm = Norm(F(n.AttnNorm), h),
                FfnNorm = Norm(F(n.FfnNorm), h),
                Q = Linear(F(n.Q), qDim, h, c.QkvBias),
                K = Linear(F(n.K), kvDim, h, c.QkvBias),
                V = Linear(F(n.V), kvDim, h, c.QkvBias),
                O = Linear(F(n.O), h, qDim, c.OBias),
                QNorm = c.QkNorm switch
                {
                    QkNormKind.PerHead => new(NormKind.RmsNorm, st.Vector(F(n.QNorm), c.HeadDim), null, c.NormEps),
                    QkNormKind.Full => new(NormKind.RmsNorm, st.Vector(F(n.QNorm), qDim), null, c.NormEps),
                    _ => null,
                },
                KNorm = c.QkNorm switch
                {
                    QkNormKind.PerHead => new(NormKind.RmsNorm, st.Vector(F(n.KNorm), c.HeadDim), null, c.NormEps),
                    QkNormKind.Full => new(NormKind.RmsNorm, st.Vector(F(n.KNorm), kvDim), null, c.NormEps),
                    _ => null,
                },
                Router = moe ? Linear(F(n.Router), c.NumExperts, h, bias: false) : null,
                Experts = moe
                    ? Enumerable.Range(0, c.NumExperts).Select(e => Ffn(
                        TensorNames.Format(n.ExpertGate, l, e), TensorNames.Format(n.ExpertUp, l, e),
                        TensorNames.Format(n.ExpertDown, l, e), c.ExpertIntermediate)).ToArray()
                    : [],
                Shared = moe && c.SharedIntermediate > 0 && n.SharedGate != null
                    ? Ffn(F(n.SharedGate), F(n.SharedUp!), F(n.SharedDown!), c.SharedIntermediate) : null,
                SharedGate = moe && c.SharedIntermediate > 0 && n.SharedExpertGate != null
                    ? Linear(F(n.SharedExpertGate), 1, h, bias: false) : null,
                Dense = moe ? null : Ffn(F(n.DenseGate), F(n.DenseUp), F(n.DenseDown), c.DenseIntermediate),
            };
        }

        bool tied = c.TieWordEmbeddings && !st.Contains(n.LmHead);
        return new ModelWeights
        {
            Embed = st.Matrix(n.Embed, c.VocabSize, h),
            FinalNorm = Norm(n.FinalNorm, h),
            LmHead = new LinearWeights(st.Matrix(tied ? n.Embed : n.LmHead, c.VocabSize, h),
                c.LmHeadBias ? st.Vector(TensorNames.Bias(n.LmHead), c.VocabSize) : null),
            Layers = layers,
        };
    }
}
