using Daop.Engine.Load;
using Daop.Engine.Load.Config;
using Daop.Engine.Load.Safetensors;
using Daop.Engine.Model.Families;
using Daop.Engine.Model.Layers;
using Daop.Kernels;
using Daop.Kernels.Cpu;

namespace Daop.Engine.Model;

/// <summary>A weight matrix for <see cref="ModelWeights.VisitDense"/>; <paramref name="perToken"/>: one decoded token reads all of it.</summary>
public delegate void DenseMatrixVisitor(in WeightMatrix matrix, bool perToken);

/// <summary>One SwiGLU FFN: gate/up [I, H], down [H, I], as views into the checkpoint.</summary>
public readonly record struct ExpertWeights(WeightMatrix Gate, WeightMatrix Up, WeightMatrix Down)
{
    /// <summary>The projections' biases (gate, up [I], down [H]), for experts whose activation has them (<see cref="Activation.ClampedSwiGlu"/>); else null.</summary>
    public ExpertBiases? Bias { get; init; }

    /// <summary>Loads the biases that go with the gate, up and down weight names (<see cref="TensorNames.Bias"/>).</summary>
    public static ExpertBiases LoadBias(ITensorSource st, string gate, string up, string down, int inter, int hidden) => new(
        st.Vector(TensorNames.Bias(gate), inter), st.Vector(TensorNames.Bias(up), inter), st.Vector(TensorNames.Bias(down), hidden));

    /// <summary>Bytes of all three matrices.</summary>
    public long ByteLength => Gate.ByteLength + Up.ByteLength + Down.ByteLength;

    /// <summary>Maps gate/up [<paramref name="inter"/>, <paramref name="hidden"/>] and down [hidden, inter].</summary>
    public static ExpertWeights Load(ITensorSource st, string gate, string up, string down, int inter, int hidden) =>
        new(st.Matrix(gate, inter, hidden), st.Matrix(up, inter, hidden), st.Matrix(down, hidden, inter));

    /// <summary>Maps gate and up as the two row halves of one [2·<paramref name="inter"/>, <paramref name="hidden"/>] matrix (gate first), and down.</summary>
    public static ExpertWeights LoadGateUp(ITensorSource st, string gateUp, string down, int inter, int hidden)
    {
        var both = st.Matrix(gateUp, 2 * inter, hidden);
        return new(both.SliceRows(0, inter), both.SliceRows(inter, inter), st.Matrix(down, hidden, inter));
    }

    /// <summary>Visits the three matrices (each read whole by a token that runs the FFN).</summary>
    public void Visit(DenseMatrixVisitor matrix)
    {
        matrix(Gate, true); matrix(Up, true); matrix(Down, true);
    }
}

/// <summary>A norm's fp32 weight (and bias for LayerNorm) over rows of Weight.Length.</summary>
public sealed record NormWeights(NormKind Kind, float[] Weight, float[]? Bias, float Eps)
{
    /// <summary>Maps the norm <paramref name="name"/> [<paramref name="length"/>] (and its bias, for LayerNorm).</summary>
    public static NormWeights Load(ITensorSource st, NormSpec spec, string name, int length) => new(spec.Kind, st.Vector(name, length),
        spec.Kind == NormKind.LayerNorm ? st.Vector(TensorNames.Bias(name), length) : null, spec.Eps);

    /// <summary>Visits the weight and bias.</summary>
    public void Visit(Action<float[]> vector)
    {
        vector(Weight);
        if (Bias != null) vector(Bias);
    }
}

/// <summary>A linear layer: weight [out, in] and optional fp32 bias [out].</summary>
public sealed record LinearWeights(WeightMatrix W, float[]? Bias)
{
    /// <summary>Maps <paramref name="name"/> [<paramref name="rows"/>, <paramref name="cols"/>] and, if <paramref name="bias"/>, its bias.</summary>
    public static LinearWeights Load(ITensorSource st, string name, int rows, int cols, bool bias) =>
        new(st.Matrix(name, rows, cols), bias ? st.Vector(TensorNames.Bias(name), rows) : null);

    /// <summary>Visits the matrix (read whole per token) and the bias.</summary>
    public void Visit(DenseMatrixVisitor matrix, Action<float[]> vector)
    {
        matrix(W, true);
        if (Bias != null) vector(Bias);
    }
}

/// <summary>One decoder layer's weights: the two norms and the layers its <see cref="LayerSpec"/> picked.</summary>
public sealed class LayerWeights
{
    /// <summary>Pre-attention norm [H].</summary>
    public required NormWeights AttnNorm { get; init; }
    /// <summary>Pre-FFN norm [H].</summary>
    public required NormWeights FfnNorm { get; init; }
    /// <summary>The attention, with its weights.</summary>
    public required AttentionLayer Attention { get; init; }
    /// <summary>The FFN (MoE block or dense MLP), with its weights.</summary>
    public required FfnLayer Ffn { get; init; }

    // What schedulers, reports and tools read without caring which FFN layer this is.

    /// <summary>Routed experts (empty for dense layers): what expert schedulers run.</summary>
    public ExpertWeights[] Experts => (Ffn as MoeBlock)?.Experts ?? [];
    /// <summary>Router [E, H] (MoE layers).</summary>
    public LinearWeights? Router => (Ffn as MoeBlock)?.Router;
    /// <summary>The router's selection bias [E], for routers that read one (DeepSeek-V3).</summary>
    public float[]? RouterScoreBias => (Ffn as MoeBlock)?.ScoreBias;
    /// <summary>Shared expert, if any.</summary>
    public ExpertWeights? Shared => (Ffn as MoeBlock)?.Shared;
    /// <summary>Sigmoid gate of the shared expert [1, H], if any.</summary>
    public LinearWeights? SharedGate => (Ffn as MoeBlock)?.SharedGate;
    /// <summary>Dense MLP of a non-MoE layer.</summary>
    public ExpertWeights? Dense => (Ffn as DenseMlp)?.Mlp;
}

/// <summary>
/// All weights of a model, mapped from its checkpoint. Matrices stay in their stored dtype (block formats included) unless the
/// source converts them at load (<see cref="ModelOptions.ExpertDType"/>); small vectors are widened to fp32.
/// </summary>
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
        matrix(Embed, false);
        FinalNorm.Visit(vector);
        LmHead.Visit(matrix, vector);
        foreach (var l in Layers)
        {
            l.AttnNorm.Visit(vector);
            l.FfnNorm.Visit(vector);
            l.Attention.Visit(matrix, vector);
            l.Ffn.Visit(matrix, vector);
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

    /// <summary>Maps every tensor the config calls for, checking each shape: per layer the norms, then the attention and FFN its specs pick.</summary>
    public static ModelWeights Load(ITensorSource st, ModelConfig c, TensorNames n)
    {
        int h = c.HiddenSize;
        var layers = new LayerWeights[c.NumLayers];
        for (int l = 0; l < c.NumLayers; l++)
            layers[l] = new LayerWeights
            {
                AttnNorm = NormWeights.Load(st, c.Norm, TensorNames.Format(n.AttnNorm, l), h),
                FfnNorm = NormWeights.Load(st, c.Norm, TensorNames.Format(n.FfnNorm, l), h),
                Attention = AttentionLayer.Load(c.Layers[l].Attention, st, n, l, h),
                Ffn = FfnLayer.Load(c.Layers[l].Ffn, st, n, l, h),
            };

        bool tied = c.LmHead.TiedToEmbedding && !st.Contains(n.LmHead);
        return new ModelWeights
        {
            Embed = st.Matrix(n.Embed, c.VocabSize, h),
            FinalNorm = NormWeights.Load(st, c.Norm, n.FinalNorm, h),
            LmHead = new LinearWeights(st.Matrix(tied ? n.Embed : n.LmHead, c.VocabSize, h),
                c.LmHead.Bias ? st.Vector(TensorNames.Bias(n.LmHead), c.VocabSize) : null),
            Layers = layers,
        };
    }
}
