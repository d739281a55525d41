using Daop.Engine.Load.Config;
using Daop.Engine.Model;
using Daop.Engine.Model.Layers;
using Daop.Kernels;
using Daop.Kernels.Gpu;
using ILGPU;
using ILGPU.Runtime;

namespace Daop.Engine.Device.Gpu;

/// <summary>
/// Routed experts on a <see cref="GpuDevice"/> with every expert resident (the device half of
/// <c>Schedule.GpuExpertScheduler</c>): each layer's gate, up and down matrices are uploaded on first use as three
/// stacks. Per call the positions are grouped by expert into tiles (<see cref="ExpertTiles"/>), the index goes up in one
/// copy, and two or three launches run: fused gate/up + SiLU over all routed tiles, then either the down projection with
/// the weighted combine fused (few tokens: decode) or a grouped down projection plus a combine pass (prefill). Tiles hold
/// up to 4 positions of one expert for the row kernels; once some expert has more than 4 positions they hold up to
/// <see cref="GpuKernels.BatchTileTokens(Daop.Kernels.DType, Daop.Kernels.DType)"/> (32, or 64 on the tensor-core path) for the batched kernels, which read
/// each weight row once per tile. GPT-OSS's biased clamped-SwiGLU experts take the same launches on the kernels' biased
/// variants (<see cref="ClampedSwiGluEpilogue"/>), reading the layer's bias stack.
/// </summary>
public sealed class GpuResidentExperts
{
    /// <summary>Up to this many tokens use the fused down-and-combine kernel.</summary>
    public const int FusedCombineMaxTokens = 2;

    readonly ModelWeights _w;
    readonly GpuDevice _d;
    readonly int _hidden, _inter;
    readonly (GpuMatrix Gate, GpuMatrix Up, GpuMatrix Down)?[] _stacks;
    readonly GpuArray<float>?[] _biases; // [layer] biased experts' biases, [E, ExpertLayout.BiasStride]
    readonly ExpertTiles _tiles;
    GpuArray<int>? _index;
    GpuArray<float>? _h, _yk;

    /// <summary>Experts of <paramref name="weights"/> on <paramref name="device"/>.</summary>
    public GpuResidentExperts(ModelWeights weights, int hidden, int numExperts, int expertInter, GpuDevice device)
    {
        _w = weights;
        _d = device;
        _hidden = hidden;
        _inter = expertInter;
        _stacks = new (GpuMatrix, GpuMatrix, GpuMatrix)?[weights.Layers.Length];
        _biases = new GpuArray<float>?[weights.Layers.Length];
        _tiles = new ExpertTiles(numExperts);
    }

    /// <summary>Experts per layer.</summary>
    public int Experts => _tiles.Keys;

    /// <summary>Calls of <see cref="Run"/> launched on the batched (prefill) kernels rather than the row kernels.</summary>
    public long BatchedRuns { get; private set; }

    (GpuMatrix Gate, GpuMatrix Up, GpuMatrix Down) Stacks(int layer)
    {
        if (_stacks[layer] is { } s) return s;
        var ex = _w.Layers[layer].Experts;
        var gate = new WeightMatrix[ex.Length];
        var up = new WeightMatrix[ex.Length];
        var down = new WeightMatrix[ex.Length];
        for (int e = 0; e < ex.Length; e++) { gate[e] = ex[e].Gate; up[e] = ex[e].Up; down[e] = ex[e].Down; }
        var st = (_d.Stack(gate), _d.Stack(up), _d.Stack(down));
        _stacks[layer] = st;
        return st;
    }

    // Layer's biases as one stack in the slots' layout (ExpertLayout.PackBias), uploaded on first use.
    (GpuView<float> Biases, ExpertLayout Layout) Biases(int layer)
    {
        var ex = _w.Layers[layer].Experts;
        var layout = ExpertLayout.Of(ex[0]);
        if (_biases[layer] is not { } b)
        {
            var packed = new Chunk16[ex.Length * layout.BiasChunks];
            for (int e = 0; e < ex.Length; e++)
                layout.PackBias(ex[e].Bias ?? throw new InvalidOperationException($"layer {layer} expert {e} has no biases for {_w.Layers[layer].Ffn.Spec.Act}"),
                    packed.AsSpan((int)(e * layout.BiasChunks), (int)layout.BiasChunks));
            b = _d.AllocateFloats((long)ex.Length * layout.BiasStride);
            b.View.SubView(0, packed.Length * 4L).Cast<Chunk16>().CopyFromCPU(_d.Stream, packed);
            _d.CountCopy();
            _biases[layer] = b;
        }
        return (b.View, layout);
    }

    // GPT-OSS's biased experts: the layer's bias stack and the kernels' arguments; SwiGLU experts: none.
    (GpuView<float>? Biases, ExpertBiasArgs Args) BiasesOf(int layer)
    {
        if (_w.Layers[layer].Ffn.Spec.Act is not Activation.ClampedSwiGlu clamped) return (null, default);
        var (stack, layout) = Biases(layer);
        return (stack, layout.BiasArgs(clamped));
    }

    /// <summary>Uploads every layer's experts now rather than on first use.</summary>
    public void Preload()
    {
        for (int l = 0; l < _stacks.Length; l++)
            if (_w.Layers[l].Experts.Length > 0)
            {
                Stacks(l);
                if (_w.Layers[l].Ffn.Spec.Act is Activation.ClampedSwiGlu) Biases(l);
            }
    }

    /// <summary>y [T, H] = Σ_k w[t,k] · Expert_{e[t,k]}(x[t]) for <paramref name="layer"/>; the routing's ids must be valid.</summary>
    public void Run(int layer, DeviceBuffer x, RoutingBatch r, DeviceBuffer y, int tokens)
    {
        if (tokens <= 0) return;
        var (gate, up, down) = Stacks(layer);
        int k = r.TopK, p = tokens * k;
        var keys = r.Experts.AsSpan(0, p);
        _tiles.Group(keys);
        bool batched = _tiles.Layout(keys, r.Weights.AsSpan(0, p), _d.Kernels, gate, down, mayBatch: tokens > FusedCombineMaxTokens);
        if (batched) BatchedRuns++;
        var index = Index(_tiles.Length);
        _tiles.Upload(_d, index);
        var (biases, args) = BiasesOf(layer);
        Launch(gate, up, down, x, index, k, batched, y, tokens, biases, args);
    }

    /// <summary>
    /// As <see cref="Run"/> with the routing done on the device: softmax top-<paramref name="topK"/> of
    /// <paramref name="logits"/> [T, E] (<see cref="RoutingKernels.SoftmaxTopK"/>) writes the work list, one tile per
    /// position, so nothing waits for the host. For decode (up to <see cref="FusedCombineMaxTokens"/> tokens, where
    /// the host's grouping would share few weight reads).
    /// </summary>
    public void RunRouted(int layer, DeviceBuffer x, DeviceBuffer logits, int topK, bool renormalize, DeviceBuffer y, int tokens)
    {
        if (tokens <= 0) return;
        if (_w.Layers[layer].Ffn.Spec.Act is not (Activation.SwiGlu or Activation.ClampedSwiGlu))
            throw new NotSupportedException($"device routing runs SwiGLU and clamped SwiGLU experts, not {_w.Layers[layer].Ffn.Spec.Act}");
        if (tokens > FusedCombineMaxTokens)
            throw new ArgumentOutOfRangeException(nameof(tokens), tokens, $"device routing takes up to {FusedCombineMaxTokens} tokens");
        var (gate, up, down) = Stacks(layer);
        _tiles.OnePerPosition(tokens * topK);
        var index = Index(_tiles.Length);
        _d.Kernels.SoftmaxTopK(_d.Stream, ((GpuBuffer)logits).View, index, tokens, Experts, topK, renormalize);
        var (biases, args) = BiasesOf(layer);
        Launch(gate, up, down, x, index, topK, batched: false, y, tokens, biases, args);
    }

    // The device index of at least n ints (grows, then stays).
    GpuView<int> Index(int n)
    {
        if (_index == null || _index.Length < n)
        {
            if (_index != null) _d.Free(_index);
            _index = _d.Gpu.Allocate1D<int>(Math.Max(n, 256));
            _d.Track(_index);
        }
        return _index.View;
    }

    // Gate/up, then down fused with the combine (decode) or down into per-position rows and a combine pass.
    void Launch(in GpuMatrix gate, in GpuMatrix up, in GpuMatrix down, DeviceBuffer x, GpuView<int> index, int k, bool batched,
        DeviceBuffer y, int tokens, GpuView<float>? biases = null, ExpertBiasArgs biasArgs = default)
    {
        var h = _d.Scratch(ref _h, (long)_tiles.AllPositions * _inter);
        var ys = ((GpuBuffer)y).View;
        if (tokens <= FusedCombineMaxTokens)
            _tiles.Launch(_d.Kernels, _d.Stream, gate, up, down, ((GpuBuffer)x).View, h, index, k, batched, ys, fusedCombine: true, tokens, biases, biasArgs);
        else
        {
            var yk = _d.Scratch(ref _yk, (long)tokens * k * _hidden);
            _tiles.Launch(_d.Kernels, _d.Stream, gate, up, down, ((GpuBuffer)x).View, h, index, k, batched, yk, fusedCombine: false, tokens, biases, biasArgs);
            _d.Kernels.Combine(_d.Stream, yk, ys, tokens, k, _hidden);
        }
    }
}
