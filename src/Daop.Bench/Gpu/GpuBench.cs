using System.Diagnostics;
using System.Runtime.InteropServices;
using Daop.Engine.Model;
using Daop.Engine.Schedule;
using Daop.Kernels;
using Daop.Kernels.Cpu;
using Daop.Kernels.Gpu;
using ILGPU;
using ILGPU.Runtime;
using Daop.Engine.Device.Gpu;

namespace Daop.Bench.Gpu;

/// <summary>
/// Micro-benchmarks of the GPU kernels on random device-resident weights, timed around accelerator
/// synchronisation: the fastest of five batches after a warm-up (which also pays the kernel compile).
/// </summary>
public static unsafe class GpuBench
{
    /// <summary>
    /// Single-token GEMV over a random [rows, cols] matrix of <paramref name="type"/>: weight bytes streamed per
    /// second in GB/s (10⁹ B/s), with the kernel set of <paramref name="options"/> (the defaults when null).
    /// </summary>
    public static double GemvGBps(GpuContext accelerator, DType type, int rows, int cols, int iters, GpuKernelOptions? options = null)
    {
        var k = GpuKernels.For(accelerator, options ?? GpuKernelOptions.Default);
        using var w = Upload(accelerator, type, rows, cols, 1);
        var m = new GpuMatrix(w.View, type, rows, cols);
        using var x = RandomFloats(accelerator, cols, 2);
        using var y = accelerator.Allocate1D<float>(Math.Max(4, (rows + 3) / 4 * 4));
        var s = accelerator.DefaultStream;
        double sec = BestSecondsPerCall(accelerator, iters, () => k.Gemv(s, m, x.View, y.View, 1));
        return (double)rows * m.RowChunks * 16 / sec / 1e9;
    }

    /// <summary>
    /// One token through one random SwiGLU expert ([inter, hidden] gate and up, [hidden, inter] down) with the
    /// fused gate/up + SiLU kernel and the down kernel: microseconds per call (two launches). The default kernel set
    /// runs the shape's generated kernels when it has them; pass <c>GeneratedExperts = []</c> for the generic ones.
    /// </summary>
    public static double ExpertFfnMicroseconds(GpuContext accelerator, DType type, int hidden, int inter, int iters,
        GpuKernelOptions? options = null)
    {
        var k = GpuKernels.For(accelerator, options ?? GpuKernelOptions.Default);
        using var e = new ExpertBuffers(accelerator, type, hidden, inter);
        var s = accelerator.DefaultStream;
        double sec = BestSecondsPerCall(accelerator, iters, () =>
        {
            k.GateUp(s, e.Gate, e.Up, e.X.View, e.H.View, 1);
            k.Down(s, e.Down, e.H.View, e.Y.View, 1);
        });
        return sec * 1e6;
    }

    /// <summary>
    /// The source-generated single-token ILGPU expert kernel for this shape (if a config named it): microseconds
    /// per call, or null when no kernel was generated for the shape.
    /// </summary>
    public static double? GeneratedExpertFfnMicroseconds(GpuContext accelerator, DType type, int hidden, int inter, int iters)
    {
        var gen = Daop.Kernels.Generated.GeneratedIlgpuKernels.Find(hidden, inter, type);
        if (gen == null) return null;
        using var e = new ExpertBuffers(accelerator, type, hidden, inter);
        var s = accelerator.DefaultStream;
        return BestSecondsPerCall(accelerator, iters, () => gen.Forward(s, e.Gate, e.Up, e.Down, e.X.View, e.H.View, e.Y.View)) * 1e6;
    }

    /// <summary>
    /// One expert FFN's random weights (gate, up [inter, hidden], down [hidden, inter]), a random input x [hidden] and the
    /// h [inter] and y [hidden] buffers (rounded up to whole float4s), for the single-token expert timings.
    /// </summary>
    sealed class ExpertBuffers : IDisposable
    {
        readonly GpuArray<Chunk16> _gate, _up, _down;

        public ExpertBuffers(GpuContext acc, DType type, int hidden, int inter)
        {
            _gate = Upload(acc, type, inter, hidden, 3);
            _up = Upload(acc, type, inter, hidden, 4);
            _down = Upload(acc, type, hidden, inter, 5);
            Gate = new GpuMatrix(_gate.View, type, inter, hidden);
            Up = new GpuMatrix(_up.View, type, inter, hidden);
            Down = new GpuMatrix(_down.View, type, hidden, inter);
            X = RandomFloats(acc, hidden, 6);
            H = acc.Allocate1D<float>(Math.Max(4, (inter + 3) / 4 * 4));
            Y = acc.Allocate1D<float>(Math.Max(4, (hidden + 3) / 4 * 4));
        }

        public GpuMatrix Gate { get; }
        public GpuMatrix Up { get; }
        public GpuMatrix Down { get; }
        public GpuArray<float> X { get; }
        public GpuArray<float> H { get; }
        public GpuArray<float> Y { get; }

        public void Dispose()
        {
            _gate.Dispose(); _up.Dispose(); _down.Dispose();
            X.Dispose(); H.Dispose(); Y.Dispose();
        }
    }

    /// <summary>
    /// Batched (prefill) dense Linear: <paramref name="tokens"/> rows of x through a random [rows, cols] matrix. Returns
    /// microseconds per call on the default path (tensor cores for bf16 when <see cref="GpuKernels.TensorCores"/>) and,
    /// for bf16, the largest difference to the fp32 FMA tile kernel relative to its largest output.
    /// </summary>
    public static (double Microseconds, double VsFma) BatchedLinear(GpuContext accelerator, DType type, int rows, int cols, int tokens, int iters)
    {
        var k = GpuKernels.For(accelerator);
        using var w = Upload(accelerator, type, rows, cols, 7);
        var m = new GpuMatrix(w.View, type, rows, cols);
        using var x = RandomFloats(accelerator, tokens * cols, 8);
        using var y = accelerator.Allocate1D<float>(Math.Max(4, ((long)tokens * rows + 3) / 4 * 4));
        var s = accelerator.DefaultStream;
        double sec = BestSecondsPerCall(accelerator, iters, () => k.Gemv(s, m, x.View, y.View, tokens));
        double diff = type == DType.BF16 && tokens > GpuKernels.RowTokens
            ? Compare(k, y, (long)tokens * rows, kk => () => kk.Gemv(s, m, x.View, y.View, tokens), null) : double.NaN;
        return (sec * 1e6, diff);
    }

    /// <summary>
    /// Batched routed experts as in prefill: <paramref name="tokens"/> tokens routed to <paramref name="topK"/> of
    /// <paramref name="experts"/> random SwiGLU experts (uniformly at random; the experts share one random weight set,
    /// uploaded per expert), through grouped gate/up, grouped down and combine with the scheduler's tiling. Returns
    /// microseconds per call, the weight bytes the call must read at least once (every expert with a position), and for
    /// bf16 the largest difference to the fp32 FMA tile kernels relative to their largest output.
    /// </summary>
    public static (double Microseconds, long WeightBytes, double VsFma) BatchedExperts(GpuContext accelerator, DType type, int hidden, int inter,
        int experts, int tokens, int topK, int iters)
    {
        var k = GpuKernels.For(accelerator);
        long per = GpuMatrix.ChunksPerRow(type, hidden) * (long)inter, perDown = GpuMatrix.ChunksPerRow(type, inter) * (long)hidden;
        using var gw = accelerator.Allocate1D<Chunk16>(per * experts);
        using var uw = accelerator.Allocate1D<Chunk16>(per * experts);
        using var dw = accelerator.Allocate1D<Chunk16>(perDown * experts);
        using (var g1 = Upload(accelerator, type, inter, hidden, 3))
        using (var u1 = Upload(accelerator, type, inter, hidden, 4))
        using (var d1 = Upload(accelerator, type, hidden, inter, 5))
            for (int e = 0; e < experts; e++)
            {
                g1.View.CopyTo(accelerator.DefaultStream, gw.View.SubView(e * per, per));
                u1.View.CopyTo(accelerator.DefaultStream, uw.View.SubView(e * per, per));
                d1.View.CopyTo(accelerator.DefaultStream, dw.View.SubView(e * perDown, perDown));
            }
        var gate = new GpuMatrix(gw.View, type, inter, hidden, experts);
        var up = new GpuMatrix(uw.View, type, inter, hidden, experts);
        var down = new GpuMatrix(dw.View, type, hidden, inter, experts);
        int p = tokens * topK;
        var rng = new Random(11);
        var route = new int[p];
        var weights = new float[p];
        for (int t = 0; t < tokens; t++)
        {
            var pick = Enumerable.Range(0, experts).OrderBy(_ => rng.Next()).Take(topK).ToArray();
            for (int j = 0; j < topK; j++) { route[t * topK + j] = pick[j]; weights[t * topK + j] = (float)(0.1 + rng.NextDouble()); }
        }
        var count = new int[experts];
        foreach (int e in route) count[e]++;
        using var x = RandomFloats(accelerator, tokens * hidden, 6);
        using var h = accelerator.Allocate1D<float>((long)p * inter + 4);
        using var yk = accelerator.Allocate1D<float>((long)p * hidden + 4);
        using var y = accelerator.Allocate1D<float>((long)tokens * hidden + 4);
        var st = accelerator.DefaultStream;
        bool batched = count.Max() > GpuKernels.RowTokens;
        // The schedulers' work list: tiles of ≤ tileSize positions of one expert.
        Action Call(GpuKernels k, int tileSize)
        {
            var tiles = new ExpertTiles(experts);
            tiles.Group(route);
            tiles.Layout(route, weights, tileSize);
            var index = accelerator.Allocate1D(tiles.Host.ToArray()); // freed with the accelerator (a benchmark)
            return () =>
            {
                tiles.Launch(k, st, gate, up, down, x.View, h.View, index.View, topK, batched, yk.View, fusedCombine: false, tokens);
                k.Combine(st, yk.View, y.View, tokens, topK, hidden);
            };
        }
        var call = Call(k, batched ? k.BatchTileTokens(type) : GpuKernels.RowTokens);
        double sec = BestSecondsPerCall(accelerator, iters, call);
        double diff = batched && k.TensorCores && type == DType.BF16
            ? Compare(k, y, (long)tokens * hidden, kk => call, kk => Call(kk, TileKernels.TileTokens)) : double.NaN;
        long bytes = count.Count(c => c > 0) * (2 * per + perDown) * 16;
        return (sec * 1e6, bytes, diff);
    }

    // Runs `call` on the tensor-core kernel set k, then `fma` (or `call`) on the same options with the tensor cores off,
    // and compares the outputs in y.
    static double Compare(GpuKernels k, GpuArray<float> y, long n, Func<GpuKernels, Action> call,
        Func<GpuKernels, Action>? fma)
    {
        if (!k.TensorCores) return double.NaN;
        var acc = k.Gpu;
        call(k)();
        acc.Synchronize();
        var a = new float[n];
        y.View.SubView(0, n).CopyToCPU(acc.DefaultStream, a);
        var off = GpuKernels.For(acc, k.Options with { TensorCores = false });
        y.MemSetToZero();
        (fma ?? call)(off)();
        acc.Synchronize();
        var b = new float[n];
        y.View.SubView(0, n).CopyToCPU(acc.DefaultStream, b);
        return MaxRelativeError(b, a, 1e-30);
    }

    /// <summary>
    /// max |reference − actual| / max(<paramref name="floor"/>, max |reference|); +∞ when either side has a NaN (Math.Max
    /// carries it).
    /// </summary>
    internal static double MaxRelativeError(ReadOnlySpan<float> reference, ReadOnlySpan<float> actual, double floor)
    {
        double maxRef = 0, maxErr = 0;
        for (int i = 0; i < reference.Length; i++)
        {
            maxRef = Math.Max(maxRef, Math.Abs(reference[i]));
            maxErr = Math.Max(maxErr, Math.Abs(reference[i] - actual[i]));
        }
        return double.IsNaN(maxErr) ? double.PositiveInfinity : maxErr / Math.Max(floor, maxRef);
    }

    /// <summary>
    /// Runs the model in <paramref name="modelDir"/> on <paramref name="accelerator"/> (GPU device and experts) and on
    /// the CPU path: prefills <paramref name="prefix"/> tokens, then decodes <paramref name="decode"/> more one at a time,
    /// and reports the largest logit difference (relative to max(1, max |cpu|), per forward call), kernel launches per
    /// decoded token and the mean GPU decode time. Token ids are a fixed pseudo-random sequence over the vocabulary.
    /// The GPU model runs the kernel set of <paramref name="options"/> (the defaults when null).
    /// </summary>
    public static GpuModelCheck CheckModel(string modelDir, GpuContext accelerator, int prefix = 12, int decode = 8,
        GpuKernelOptions? options = null)
    {
        using var cpu = MoeModel.Load(modelDir, new ModelOptions { ContextLength = prefix + decode });
        using var gpu = MoeModel.Load(modelDir, new ModelOptions
        {
            ContextLength = prefix + decode,
            Device = _ => new GpuDevice(accelerator, options ?? GpuKernelOptions.Default),
            Experts = (m, d) => new GpuExpertScheduler(m, d),
        });
        return Compare(cpu, gpu, prefix, decode);
    }

    /// <summary>
    /// <see cref="CheckModel"/> with the routed experts quantized to <paramref name="type"/> in memory
    /// (<see cref="QuantizingSource"/>): the GPU runs the blocks, all resident or (<paramref name="offloadRatio"/> &lt; 1)
    /// offloaded with that fraction in slots and misses transferred (LRU) from staged images; the CPU runs their
    /// dequantized values in fp32.
    /// </summary>
    public static GpuModelCheck CheckQuantizedModel(string modelDir, GpuContext accelerator, DType type, double offloadRatio = 1,
        int prefix = 12, int decode = 8)
    {
        using var cpu = QuantizingSource.Load(modelDir, type, dequantize: true, new ModelOptions { ContextLength = prefix + decode });
        using var gpu = QuantizingSource.Load(modelDir, type, dequantize: false, new ModelOptions
        {
            ContextLength = prefix + decode,
            Device = _ => new GpuDevice(accelerator),
            Experts = offloadRatio >= 1 ? (m, d) => new GpuExpertScheduler(m, d)
                : (m, d) => OffloadedExpertScheduler.FromRatio(m, d, new Daop.Engine.Placement.LruPolicy(prefetch: false), offloadRatio,
                    options: new OffloadOptions { CopyMode = HostCopyMode.Staged }),
        });
        return Compare(cpu, gpu, prefix, decode);
    }

    static GpuModelCheck Compare(MoeModel cpu, MoeModel gpu, int prefix, int decode)
    {
        var dev = (GpuDevice)gpu.Device;
        int v = cpu.Config.VocabSize;
        uint state = 12345;
        var tokens = new int[prefix + decode];
        for (int i = 0; i < tokens.Length; i++) tokens[i] = (int)((RandomWeights.Next(ref state) + 1) / 2 * v) % v;
        var cc = cpu.NewCache();
        var gc = gpu.NewCache();
        var a = new float[v];
        var b = new float[v];
        double worst = 0;
        void Step(int start, int n)
        {
            cpu.Forward(tokens.AsSpan(start, n), start, cc, a);
            gpu.Forward(tokens.AsSpan(start, n), start, gc, b);
            worst = Math.Max(worst, MaxRelativeError(a, b, 1));
        }
        Step(0, prefix);
        // Warm-up: the first decode step compiles the single-token kernels; time a second cache's steps instead.
        var warm = gpu.NewCache();
        gpu.Forward(tokens.AsSpan(0, prefix + 1), 0, warm, b);
        gpu.Forward(tokens.AsSpan(prefix + 1, 1), prefix + 1, warm, b);
        long launches = dev.Launches;
        double seconds = 0;
        for (int i = 0; i < decode; i++)
        {
            long t0 = Stopwatch.GetTimestamp();
            gpu.Forward(tokens.AsSpan(prefix + i, 1), prefix + i, gc, b);
            seconds += Stopwatch.GetElapsedTime(t0).TotalSeconds;
        }
        long perToken = decode > 0 ? (dev.Launches - launches) / decode : 0;
        // Replay the decode steps on a fresh GPU cache alongside the CPU to compare them.
        gc = gpu.NewCache();
        gpu.Forward(tokens.AsSpan(0, prefix), 0, gc, b);
        for (int i = 0; i < decode; i++) Step(prefix + i, 1);
        return new GpuModelCheck(worst, perToken, decode > 0 ? seconds / decode * 1e3 : 0, dev.AllocatedBytes);
    }

    internal static double BestSecondsPerCall(GpuContext acc, int iters, Action call)
    {
        iters = Math.Max(1, iters);
        call();
        acc.Synchronize();
        int batches = Math.Min(5, iters), per = Math.Max(1, iters / batches);
        double best = double.MaxValue;
        for (int b = 0; b < batches; b++)
        {
            long t0 = Stopwatch.GetTimestamp();
            for (int i = 0; i < per; i++) call();
            acc.Synchronize();
            best = Math.Min(best, Stopwatch.GetElapsedTime(t0).TotalSeconds / per);
        }
        return best;
    }

    /// <summary>Random weights of any dtype (<see cref="BenchMatrix"/>, values within ±1/√cols) in the device layout.</summary>
    static GpuArray<Chunk16> Upload(GpuContext acc, DType type, int rows, int cols, uint seed)
    {
        using var w = BenchMatrix.Random(type, rows, cols, seed, 1f / MathF.Sqrt(cols));
        var buf = acc.Allocate1D<Chunk16>(Math.Max(1, GpuMatrix.ChunksFor(w.W)));
        GpuMatrix.Upload(acc.DefaultStream, w.W, buf.View, 0);
        return buf;
    }

    static GpuArray<float> RandomFloats(GpuContext acc, int n, uint seed)
    {
        var a = new float[Math.Max(4, (n + 3) / 4 * 4)]; // whole Float4 loads
        RandomWeights.Floats(n, seed).CopyTo(a, 0);
        var b = acc.Allocate1D<float>(a.Length);
        b.View.CopyFromCPU(acc.DefaultStream, a);
        return b;
    }
}

/// <summary>What <see cref="GpuBench.CheckModel"/> measured.</summary>
/// <param name="MaxRelativeError">Largest max|gpu − cpu| / max(1, max|cpu|) over the compared forward calls.</param>
/// <param name="LaunchesPerToken">Kernel launches per decoded token.</param>
/// <param name="DecodeMilliseconds">Mean wall time of one GPU decode step (logits copied back included).</param>
/// <param name="DeviceBytes">Device memory the GPU model held at the end.</param>
public readonly record struct GpuModelCheck(double MaxRelativeError, long LaunchesPerToken, double DecodeMilliseconds, long DeviceBytes);
