using Daop.Engine.Model;
using Daop.Kernels;
using Daop.Kernels.Cpu;

namespace Daop.Engine.Device;

/// <summary>
/// A buffer of fp32 activations owned by a device (host memory for the CPU, GPU memory for CUDA).
/// The forward pass only ever hands these back to the device that made them.
/// </summary>
public abstract class DeviceBuffer
{
    /// <summary>Capacity in floats.</summary>
    public abstract int Length { get; }
}

/// <summary>Per-sequence key/value cache on a device: per layer [capacity, NKV·D] for K and for V.</summary>
public abstract class KvCache
{
    /// <summary>Positions the cache can hold.</summary>
    public abstract int Capacity { get; }
}

/// <summary>
/// The operations the forward pass is written in. Weights are passed as their host descriptors; a device
/// that keeps its own copies (CUDA) resolves them. Shapes: T tokens, H hidden, D head dim.
/// </summary>
public interface IDevice : IDisposable
{
    /// <summary>Whether <see cref="RunStep"/> replays steps as graphs (CUDA with <c>DAOP_CUDA_GRAPHS=1</c>); false elsewhere.</summary>
    bool StepGraphs => false;

    /// <summary>
    /// Queues the work of <paramref name="step"/>, which only queues device work (no reads back to the host). A device
    /// with <see cref="StepGraphs"/> records it as a graph and launches that; others just run it.
    /// </summary>
    void RunStep(Action step) => step();

    /// <summary>
    /// Throws <see cref="NotSupportedException"/> when this device has no kernels for a stored format of
    /// <paramref name="weights"/> (the GPU and the K-quants): called once at load, so such a model stops there with that
    /// message rather than at its first forward pass. The CPU computes with every format.
    /// </summary>
    void CheckFormats(Daop.Engine.Model.ModelWeights weights) { }

    /// <summary>Short name for logs ("cpu", "cuda:0").</summary>
    string Name { get; }

    /// <summary>A zeroed buffer of <paramref name="floats"/>.</summary>
    DeviceBuffer Allocate(int floats);

    /// <summary>A KV cache of <paramref name="capacity"/> positions.</summary>
    KvCache CreateKvCache(int layers, int capacity, int kvDim);

    /// <summary>
    /// <paramref name="count"/> KV caches of <paramref name="capacity"/> positions for sequences that run in one batched
    /// step (the server's parallel slots): the GPU keeps them in one pool, so that one attention launch serves them all.
    /// </summary>
    KvCache[] CreateKvCaches(int layers, int capacity, int kvDim, int count)
    {
        var caches = new KvCache[count];
        for (int i = 0; i < count; i++) caches[i] = CreateKvCache(layers, capacity, kvDim);
        return caches;
    }

    /// <summary>
    /// Sets the step's sequences for the <see cref="Rope"/> and <see cref="Attention"/> calls that follow (every layer of
    /// one forward chunk): the segments in row order, each a sequence's consecutive tokens at its positions and cache.
    /// Checks that they fit their caches; the GPU uploads each token's slot and position once here.
    /// </summary>
    void BeginStep(ReadOnlySpan<BatchSegment> segments);

    /// <summary>x[t] = table[tokens[t]] widened to fp32. x: [T, H].</summary>
    void Embed(ReadOnlySpan<int> tokens, in WeightMatrix table, DeviceBuffer x);

    /// <summary>y = norm(x) over <paramref name="rows"/> rows of norm.Weight.Length (y may be x).</summary>
    void Norm(NormWeights norm, DeviceBuffer x, DeviceBuffer y, int rows);

    /// <summary>y [T, out] = x [T, in] · Wᵀ (+ bias).</summary>
    void Linear(LinearWeights w, DeviceBuffer x, DeviceBuffer y, int tokens);

    /// <summary>y0, y1, y2 = x · W0ᵀ, W1ᵀ, W2ᵀ (+ biases): q, k and v of one input (one launch where the device can).</summary>
    void Linear3(LinearWeights w0, LinearWeights w1, LinearWeights w2, DeviceBuffer x, DeviceBuffer y0, DeviceBuffer y1, DeviceBuffer y2, int tokens)
    {
        Linear(w0, x, y0, tokens);
        Linear(w1, x, y1, tokens);
        Linear(w2, x, y2, tokens);
    }

    /// <summary>Clamps the first <paramref name="count"/> values to ±<paramref name="limit"/>.</summary>
    void Clamp(DeviceBuffer x, int count, float limit);

    /// <summary>Multiplies the first <paramref name="count"/> values by <paramref name="factor"/> (Granite's multipliers).</summary>
    void Scale(DeviceBuffer x, int count, float factor);

    /// <summary>
    /// x[row + t, :] *= scales[t] for t &lt; scales.Length, rows of <paramref name="width"/> (Llama-4: a router weight that
    /// scales the expert's input, the attention temperature of a position). The scales are host values; the device copies them.
    /// </summary>
    void ScaleRows(DeviceBuffer x, ReadOnlySpan<float> scales, int width, int row = 0);

    /// <summary>
    /// Rotates q [T, qHeads, D] and k [T, kHeads, D] in place, each token at its position of the step
    /// (<see cref="BeginStep"/>); one launch where the device can.
    /// </summary>
    void Rope(RopeTable rope, DeviceBuffer q, int qHeads, DeviceBuffer k, int kHeads, int tokens, int headDim);

    /// <summary>
    /// For the step's T tokens (<see cref="BeginStep"/>), each at its position of its sequence's cache: appends k, v
    /// [T, NKV·D] to layer <paramref name="layer"/> of the caches and writes causal attention of q [T, NH·D] over the
    /// sequence's positions 0..pos (or the last <paramref name="window"/>, or those of the query's aligned chunk of
    /// <paramref name="chunk"/> positions) into o [T, NH·D]. With <paramref name="sinks"/> [NH] (GPT-OSS), head h's softmax
    /// denominator also holds exp(sinks[h]) (a logit that attends to nothing). The GPU launches once per cache pool.
    /// </summary>
    void Attention(int layer, DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, DeviceBuffer o,
        int tokens, int heads, int kvHeads, int headDim, int? window, float[]? sinks = null, int chunk = 0);

    /// <summary>acc[i] += x[i] for i &lt; count.</summary>
    void Add(DeviceBuffer acc, DeviceBuffer x, int count);

    /// <summary>
    /// x += r, then y = norm(x), over <paramref name="rows"/> rows of norm.Weight.Length: a sublayer's residual add and
    /// the next norm (one launch where the device can).
    /// </summary>
    void AddNorm(NormWeights norm, DeviceBuffer x, DeviceBuffer r, DeviceBuffer y, int rows)
    {
        Add(x, r, rows * norm.Weight.Length);
        Norm(norm, x, y, rows);
    }

    /// <summary>y [T, H] = SwiGLU FFN of x [T, H].</summary>
    void Ffn(in ExpertWeights w, DeviceBuffer x, DeviceBuffer y, int tokens);

    /// <summary>acc[t, :] += sigmoid(gate[t]) · x[t, :] for each token (Qwen2-MoE's shared expert).</summary>
    void AddSigmoidScaled(DeviceBuffer acc, DeviceBuffer x, DeviceBuffer gate, int tokens, int width);

    /// <summary>dst[dstOffset ..] = src[srcOffset .. srcOffset+count).</summary>
    void Copy(DeviceBuffer src, int srcOffset, DeviceBuffer dst, int dstOffset, int count);

    /// <summary>Copies x[offset .. offset+dst.Length) to host memory.</summary>
    void CopyToHost(DeviceBuffer x, int offset, Span<float> dst);

    // Multi-head latent attention (DeepSeek MLA): a compressed cache and the ops that attend from it.

    /// <summary>A KV cache of one stream per layer, [capacity, width]: MLA's latent c and roped k_pe (r + dr floats).</summary>
    KvCache CreateLatentCache(int layers, int capacity, int width);

    /// <summary>
    /// y[t, h·yStride + yOffset + i] = Σ_j w[h, i, j] · x[t, h·xStride + xOffset + j] for every token t and head h, i &lt;
    /// rows, j &lt; cols: a [rows, cols] fp32 matrix per head (MLA's W_uk absorbed into q, W_uv after attention).
    /// </summary>
    void HeadMatMul(float[] w, DeviceBuffer x, int xStride, int xOffset, DeviceBuffer y, int yStride, int yOffset, int tokens, int heads, int rows, int cols);

    /// <summary>
    /// For positions startPos..: writes RoPE of each head's roped part of q [T, NH·QStride] into the last dr floats of
    /// that head of qc [T, NH·(r+dr)], and appends [c [T, r], RoPE(kpe [T, dr])] to the latent cache; rows
    /// <paramref name="row"/>.. of q, qc, c and kpe (a batched step's segment).
    /// </summary>
    void LatentAppend(KvCache cache, int layer, RopeTable rope, DeviceBuffer q, DeviceBuffer qc, DeviceBuffer c, DeviceBuffer kpe,
        in LatentShape a, int tokens, int startPos, int row = 0);

    /// <summary>
    /// o [T, NH·r] = per head softmax(scale · qc·cacheᵀ) · cache[:, :r] over positions 0..startPos+t of the latent cache
    /// (filled by <see cref="LatentAppend"/>); rows <paramref name="row"/>.. of qc and o, which must not overlap.
    /// </summary>
    void LatentAttention(KvCache cache, int layer, DeviceBuffer qc, DeviceBuffer o, in LatentShape a, int tokens, int startPos, int row = 0);
}
