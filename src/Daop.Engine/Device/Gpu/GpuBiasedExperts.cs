using Daop.Kernels.Gpu;
using Daop.Engine.Load.Config;
using ILGPU;
using ILGPU.Runtime;

namespace Daop.Engine.Device.Gpu;

/// <summary>
/// GPT-OSS's routed experts (<see cref="Activation.ClampedSwiGlu"/>, biased projections) for the all-resident experts
/// (<see cref="GpuResidentExperts"/>: keys are experts, biases one stack per layer) and the offloaded slots
/// (<see cref="GpuExpertOffload"/>: keys are slots, biases in the slot) alike. In row tiles (decode, and calls where
/// batched tiles would not pay) they run the grouped row kernels' biased variants through <see cref="ExpertTiles.Launch"/>
/// (<see cref="Args"/>), as SwiGLU experts do. Where batched tiles pay (prefill), <see cref="Launch"/> runs each key of a
/// one-tile-per-key layout (<see cref="TileSize"/>): its rows gathered, gate and up (each a biased Linear on the key's
/// matrices of the stacks, whose batched kernels read each weight row once per tile), the clamped SwiGLU, down (biased)
/// and a weighted scatter-add into y [T, H] or the per-position outputs yk [P, H] — six launches per expert, reading the
/// index the tiles uploaded (order and weights). The fused batched tile and tensor-core kernels have no biased variant.
/// </summary>
internal sealed class GpuBiasedExperts(GpuDevice device, int hidden, int inter)
{
    GpuArray<float>? _xs, _g, _u, _o;
    int _reserved;

    /// <summary>The row kernels' arguments for experts of <paramref name="layout"/> with activation <paramref name="act"/>.</summary>
    public static ExpertBiasArgs Args(ExpertLayout layout, Activation.ClampedSwiGlu act) =>
        new() { Stride = layout.BiasStride, Inter = layout.Inter, Alpha = act.Alpha, Limit = act.Limit };

    /// <summary>Device bytes of the scratch for chunks of <paramref name="tokens"/> (<see cref="Reserve"/>).</summary>
    public static long ScratchBytes(int tokens, int hidden, int inter) =>
        2 * GpuMemory.Floats((long)tokens * hidden) + 2 * GpuMemory.Floats((long)tokens * inter);

    /// <summary>Tile size for <see cref="ExpertTiles.Layout(ReadOnlySpan{int}, ReadOnlySpan{float}, int)"/>: one tile per key of <paramref name="positions"/>.</summary>
    public static int TileSize(int positions) => Math.Max(1, positions);

    /// <summary>
    /// Sizes the scratch for chunks of up to <paramref name="tokens"/>: an expert takes a token at most once, so at most
    /// <paramref name="tokens"/> rows per tile. Exactly <see cref="ScratchBytes"/>.
    /// </summary>
    public void Reserve(int tokens)
    {
        if (tokens <= _reserved) return;
        foreach (var b in new[] { _xs, _g, _u, _o })
            if (b != null) device.Free(b);
        _xs = device.AllocateFloats((long)tokens * hidden);
        _g = device.AllocateFloats((long)tokens * inter);
        _u = device.AllocateFloats((long)tokens * inter);
        _o = device.AllocateFloats((long)tokens * hidden);
        _reserved = tokens;
    }

    /// <summary>
    /// Adds Σ w · Expert_key(x[row]) of every position of <paramref name="tiles"/> into <paramref name="output"/>: into its
    /// token's row of y [T, H] (<paramref name="perPosition"/> false) or its own row of yk [P, H]; the caller zeroes it.
    /// Key e's matrices are matrix e of <paramref name="stacks"/>, its biases gate [I], up [I], down [H] at
    /// e · <paramref name="biasStride"/> of <paramref name="biases"/>. <paramref name="index"/> holds the tiles' index.
    /// </summary>
    public void Launch(ExpertTiles tiles, (GpuMatrix Gate, GpuMatrix Up, GpuMatrix Down) stacks, GpuView<float> biases, int biasStride,
        Activation.ClampedSwiGlu act, GpuView<float> x, GpuView<int> index, int topK, GpuView<float> output, bool perPosition)
    {
        var d = device;
        var k = d.Kernels;
        var s = d.Stream;
        var host = tiles.Host;
        var weights = index.SubView(tiles.WeightOffset, tiles.AllPositions).Cast<float>(); // [P] by routing slot
        for (int t = 0; t < tiles.Tiles; t++)
        {
            int o = tiles.TileOffset + 3 * t, e = host[o], start = host[o + 1], n = host[o + 2];
            if (n > _reserved)
                throw new InvalidOperationException($"an expert takes {n} positions, more than the {_reserved} tokens its scratch holds (a token routed to it twice?)");
            var xs = _xs!.View.SubView(0, (long)n * hidden);   // [n, H] the expert's rows
            var g = _g!.View.SubView(0, (long)n * inter);      // [n, I] gate, then the activation
            var u = _u!.View.SubView(0, (long)n * inter);      // [n, I] up
            var y = _o!.View.SubView(0, (long)n * hidden);     // [n, H] the expert's outputs
            long b = (long)e * biasStride;
            k.GatherRows(s, x, xs, index, start, n, hidden, topK);
            k.Gemv(s, Expert(stacks.Gate, e), xs, g, n, biases.SubView(b, inter));
            k.Gemv(s, Expert(stacks.Up, e), xs, u, n, biases.SubView(b + inter, inter));
            k.ClampedSwiGlu(s, g, u, n * inter, act.Alpha, act.Limit);
            k.Gemv(s, Expert(stacks.Down, e), g, y, n, biases.SubView(b + 2 * inter, hidden));
            // yk's rows are the routing slots themselves: the scatter with one "expert per token" writes row slot
            k.ScatterAddRows(s, output, y, index, weights, start, n, hidden, perPosition ? 1 : topK);
        }
    }

    // Matrix e of a stack.
    static GpuMatrix Expert(in GpuMatrix stack, int e)
    {
        long per = (long)stack.Rows * stack.RowChunks;
        return new GpuMatrix(stack.Data.SubView(e * per, per), stack.Type, stack.Rows, stack.Cols);
    }
}
