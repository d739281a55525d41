using Daop.Engine.Device.Gpu;
using Daop.Kernels;
using Daop.Kernels.Gpu;
using ILGPU;
using ILGPU.Runtime;

namespace Daop.Bench.Gpu;

/// <summary>A timed kernel call and the weight bytes it must read from device memory.</summary>
/// <param name="Microseconds">Best mean time per call (five batches).</param>
/// <param name="Bytes">Weight bytes read per call (device layout: the quantized bytes for the block formats).</param>
public readonly record struct BandwidthTiming(double Microseconds, long Bytes)
{
    /// <summary>Weight bytes per second, in GB/s (10⁹ B/s).</summary>
    public double GBps => Bytes / (Microseconds * 1e-6) / 1e9;
}

/// <summary>
/// Decode-path timings of the weight formats on one accelerator: the single-token GEMV and one routed expert (fused
/// gate/up + SiLU, then down fused with the combine) over random device-resident weights, in GB/s of weight bytes
/// actually read. Every call reads weights that are not in L2: the timings rotate over enough copies (matrices, or
/// experts of one stack) to span <see cref="RotateBytes"/>, as decode steps read different experts and layers.
/// </summary>
public static class GpuQuantBench
{
    /// <summary>Weight bytes the timings rotate over at least (several times a 50 MB L2).</summary>
    public const long RotateBytes = 256L << 20;

    /// <summary>
    /// y = W·x for one token through a random [rows, cols] matrix of <paramref name="type"/> (the decode GEMV of the kernel
    /// set of <paramref name="options"/>), rotating over copies of the matrix.
    /// </summary>
    public static BandwidthTiming Gemv(GpuContext accelerator, DType type, int rows, int cols, int iters, GpuKernelOptions? options = null)
    {
        var k = GpuKernels.For(accelerator, options ?? GpuKernelOptions.Default);
        using var w = BenchMatrix.Random(type, rows, cols, 1, 1f / MathF.Sqrt(cols));
        long chunks = GpuMatrix.ChunksFor(w.W);
        int copies = Copies(chunks * 16);
        using var buf = accelerator.Allocate1D<Chunk16>(chunks * copies);
        GpuMatrix.Upload(accelerator.DefaultStream, w.W, buf.View, 0);
        for (int c = 1; c < copies; c++) buf.View.SubView(0, chunks).CopyTo(accelerator.DefaultStream, buf.View.SubView(c * chunks, chunks));
        var m = Enumerable.Range(0, copies).Select(c => new GpuMatrix(buf.View.SubView(c * chunks, chunks), type, rows, cols)).ToArray();
        using var x = Floats(accelerator, cols, 2);
        using var y = accelerator.Allocate1D<float>(Math.Max(4, (rows + 3) / 4 * 4));
        var s = accelerator.DefaultStream;
        int i = 0;
        double sec = GpuBench.BestSecondsPerCall(accelerator, iters, () => k.Gemv(s, m[i++ % copies], x.View, y.View, 1));
        return new BandwidthTiming(sec * 1e6, chunks * 16);
    }

    /// <summary>One routed expert at decode: its gate/up launch, its down-and-combine launch, and both.</summary>
    /// <param name="GateUp">Fused gate/up + SiLU ([inter, hidden] each).</param>
    /// <param name="Down">Down fused with the combine ([hidden, inter]).</param>
    /// <param name="Both">The two launches of one call.</param>
    public readonly record struct ExpertTiming(BandwidthTiming GateUp, BandwidthTiming Down, BandwidthTiming Both);

    /// <summary>
    /// One token routed to one random SwiGLU expert of <paramref name="type"/> (hidden × inter), as the engine launches it
    /// (<see cref="ExpertTiles"/>' index, <see cref="GpuKernels.GateUp"/> then <see cref="GpuKernels.DownCombine"/>), each
    /// call to the next expert of a stack spanning <see cref="RotateBytes"/> (copies of one random expert).
    /// </summary>
    public static ExpertTiming Expert(GpuContext accelerator, DType type, int hidden, int inter, int iters, GpuKernelOptions? options = null)
    {
        var k = GpuKernels.For(accelerator, options ?? GpuKernelOptions.Default);
        var layout = new ExpertLayout(type, type, type, hidden, inter);
        int experts = Math.Max(2, Copies(layout.ExpertBytes));
        using var gw = Stack(accelerator, type, inter, hidden, experts, 3);
        using var uw = Stack(accelerator, type, inter, hidden, experts, 4);
        using var dw = Stack(accelerator, type, hidden, inter, experts, 5);
        var gate = new GpuMatrix(gw.View, type, inter, hidden, experts);
        var up = new GpuMatrix(uw.View, type, inter, hidden, experts);
        var down = new GpuMatrix(dw.View, type, hidden, inter, experts);

        // One index per expert: [order | tile (e, 0, 1) | pos | key | weight 1].
        var tiles = new ExpertTiles(experts);
        tiles.Group([0]);
        tiles.Layout([0], [1f], GpuKernels.RowTokens);
        int len = tiles.Length;
        var host = new int[len * experts];
        for (int e = 0; e < experts; e++)
        {
            tiles.Group([e]);
            tiles.Layout([e], [1f], GpuKernels.RowTokens);
            tiles.Host.CopyTo(host.AsSpan(e * len));
        }
        using var index = accelerator.Allocate1D(host);
        var views = Enumerable.Range(0, experts).Select(e => index.View.SubView(e * len, len)).ToArray();
        using var x = Floats(accelerator, hidden, 6);
        using var h = accelerator.Allocate1D<float>(Math.Max(4, (inter + 3) / 4 * 4));
        using var y = accelerator.Allocate1D<float>(Math.Max(4, (hidden + 3) / 4 * 4));
        var s = accelerator.DefaultStream;
        int gi = 0, di = 0, bi = 0;
        void GateUp(GpuView<int> iv) => k.GateUp(s, gate, up, x.View, h.View, tiles.Positions, iv, 1, tiles.Tiles, tiles.TileOffset);
        void DownCombine(GpuView<int> iv) =>
            k.DownCombine(s, down, h.View, y.View, 1, 1, iv, iv.SubView(tiles.WeightOffset, 1).Cast<float>(), tiles.PosOffset, tiles.KeyOffset);
        double g = GpuBench.BestSecondsPerCall(accelerator, iters, () => GateUp(views[gi++ % experts]));
        double d = GpuBench.BestSecondsPerCall(accelerator, iters, () => DownCombine(views[di++ % experts]));
        double b = GpuBench.BestSecondsPerCall(accelerator, iters, () =>
        {
            var iv = views[bi++ % experts];
            GateUp(iv);
            DownCombine(iv);
        });
        long gu = layout.GateChunks * 32, dn = layout.DownChunks * 16;
        return new ExpertTiming(new(g * 1e6, gu), new(d * 1e6, dn), new(b * 1e6, gu + dn));
    }

    // Copies of `bytes` spanning RotateBytes (1..64).
    static int Copies(long bytes) => (int)Math.Clamp((RotateBytes + bytes - 1) / bytes, 1, 64);

    // `count` copies of one random [rows, cols] matrix as one stack.
    static GpuArray<Chunk16> Stack(GpuContext acc, DType type, int rows, int cols, int count, uint seed)
    {
        using var w = BenchMatrix.Random(type, rows, cols, seed, 1f / MathF.Sqrt(cols));
        long per = GpuMatrix.ChunksFor(w.W);
        var buf = acc.Allocate1D<Chunk16>(per * count);
        GpuMatrix.Upload(acc.DefaultStream, w.W, buf.View, 0);
        for (int e = 1; e < count; e++) buf.View.SubView(0, per).CopyTo(acc.DefaultStream, buf.View.SubView(e * per, per));
        return buf;
    }

    static GpuArray<float> Floats(GpuContext acc, int n, uint seed)
    {
        var a = new float[Math.Max(4, (n + 3) / 4 * 4)];
        RandomWeights.Floats(n, seed).CopyTo(a, 0);
        var b = acc.Allocate1D<float>(a.Length);
        b.View.CopyFromCPU(acc.DefaultStream, a);
        return b;
    }
}
