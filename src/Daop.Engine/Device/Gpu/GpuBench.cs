using System.Diagnostics;
using System.Runtime.InteropServices;
using Daop.Engine.Model;
using Daop.Kernels;
using Daop.Kernels.Cpu;
using Daop.Kernels.Gpu;
using ILGPU;
using ILGPU.Runtime;

namespace Daop.Engine.Device.Gpu;

/// <summary>
/// Micro-benchmarks of the GPU kernels on random device-resident weights, timed around accelerator
/// synchronisation: the fastest of five batches after a warm-up (which also pays the kernel compile).
/// </summary>
public static unsafe class GpuBench
{
    /// <summary>
    /// Single-token GEMV over a random [rows, cols] matrix of <paramref name="type"/>: weight bytes streamed per
    /// second in GB/s (10⁹ B/s).
    /// </summary>
    public static double GemvGBps(Accelerator accelerator, DType type, int rows, int cols, int iters)
    {
        var k = GpuKernels.For(accelerator);
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
    /// fused gate/up + SiLU kernel and the down kernel: microseconds per call (two launches).
    /// </summary>
    public static double ExpertFfnMicroseconds(Accelerator accelerator, DType type, int hidden, int inter, int iters)
    {
        var k = GpuKernels.For(accelerator);
        using var gw = Upload(accelerator, type, inter, hidden, 3);
        using var uw = Upload(accelerator, type, inter, hidden, 4);
        using var dw = Upload(accelerator, type, hidden, inter, 5);
        var gate = new GpuMatrix(gw.View, type, inter, hidden);
        var up = new GpuMatrix(uw.View, type, inter, hidden);
        var down = new GpuMatrix(dw.View, type, hidden, inter);
        using var x = RandomFloats(accelerator, hidden, 6);
        using var h = accelerator.Allocate1D<float>(Math.Max(4, (inter + 3) / 4 * 4));
        using var y = accelerator.Allocate1D<float>(Math.Max(4, (hidden + 3) / 4 * 4));
        var s = accelerator.DefaultStream;
        double sec = BestSecondsPerCall(accelerator, iters, () =>
        {
            k.GateUp(s, gate, up, x.View, h.View, 1);
            k.Down(s, down, h.View, y.View, 1);
        });
        return sec * 1e6;
    }

    /// <summary>
    /// The source-generated single-token ILGPU expert kernel for this shape (if a config named it): microseconds
    /// per call, or null when no kernel was generated for the shape.
    /// </summary>
    public static double? GeneratedExpertFfnMicroseconds(Accelerator accelerator, DType type, int hidden, int inter, int iters)
    {
        var gen = Daop.Kernels.Generated.GeneratedIlgpuKernels.Find(hidden, inter, type);
        if (gen == null) return null;
        using var gw = Upload(accelerator, type, inter, hidden, 3);
        using var uw = Upload(accelerator, type, inter, hidden, 4);
        using var dw = Upload(accelerator, type, hidden, inter, 5);
        var gate = new GpuMatrix(gw.View, type, inter, hidden);
        var up = new GpuMatrix(uw.View, type, inter, hidden);
        var down = new GpuMatrix(dw.View, type, hidden, inter);
        using var x = RandomFloats(accelerator, hidden, 6);
        using var h = accelerator.Allocate1D<float>(Math.Max(4, (inter + 3) / 4 * 4));
        using var y = accelerator.Allocate1D<float>(Math.Max(4, (hidden + 3) / 4 * 4));
        var s = accelerator.DefaultStream;
        return BestSecondsPerCall(accelerator, iters, () => gen.Forward(s, gate, up, down, x.View, h.View, y.View)) * 1e6;
    }

    /// <summary>
    /// Runs the model in <paramref name="modelDir"/> on <paramref name="accelerator"/> (GPU device and experts) and on
    /// the CPU path: prefills <paramref name="prefix"/> tokens, then decodes <paramref name="decode"/> more one at a time,
    /// and reports the largest logit difference (relative to max(1, max |cpu|), per forward call), kernel launches per
    /// decoded token and the mean GPU decode time. Token ids are a fixed pseudo-random sequence over the vocabulary.
    /// </summary>
    public static GpuModelCheck CheckModel(string modelDir, Accelerator accelerator, int prefix = 12, int decode = 8)
    {
        using var cpu = MoeModel.Load(modelDir, new ModelOptions { ContextLength = prefix + decode });
        using var gpu = MoeModel.Load(modelDir, new ModelOptions
        {
            ContextLength = prefix + decode,
            Device = _ => new GpuDevice(accelerator),
            Experts = (m, d) => new GpuExpertScheduler(m, d),
        });
        var dev = (GpuDevice)gpu.Device;
        int v = cpu.Config.VocabSize;
        uint state = 12345;
        var tokens = new int[prefix + decode];
        for (int i = 0; i < tokens.Length; i++) tokens[i] = (int)((Next(ref state) + 1) / 2 * v) % v;
        var cc = cpu.NewCache();
        var gc = gpu.NewCache();
        var a = new float[v];
        var b = new float[v];
        double worst = 0;
        void Step(int start, int n)
        {
            cpu.Forward(tokens.AsSpan(start, n), start, cc, a);
            gpu.Forward(tokens.AsSpan(start, n), start, gc, b);
            double maxRef = 1, maxErr = 0;
            for (int i = 0; i < v; i++) { maxRef = Math.Max(maxRef, Math.Abs(a[i])); maxErr = Math.Max(maxErr, Math.Abs(a[i] - b[i])); }
            worst = Math.Max(worst, double.IsNaN(maxErr) ? double.PositiveInfinity : maxErr / maxRef);
        }
        Step(0, prefix);
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

    static double BestSecondsPerCall(Accelerator acc, int iters, Action call)
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

    /// <summary>Random weights in roughly [-1/√cols, 1/√cols], padded to 16-byte rows on the device.</summary>
    static MemoryBuffer1D<Chunk16, Stride1D.Dense> Upload(Accelerator acc, DType type, int rows, int cols, uint seed)
    {
        long n = (long)rows * cols;
        byte* p = (byte*)NativeMemory.AlignedAlloc((nuint)Math.Max(16, n * type.SizeOf()), 64);
        try
        {
            float scale = 1f / MathF.Sqrt(cols);
            uint state = seed * 2654435761u + 1;
            for (long i = 0; i < n; i++)
            {
                float v = Next(ref state) * scale;
                switch (type)
                {
                    case DType.F32: ((float*)p)[i] = v; break;
                    case DType.F16: ((System.Half*)p)[i] = (System.Half)v; break;
                    default: ((ushort*)p)[i] = Bf16.FromFloat(v); break;
                }
            }
            var w = new WeightMatrix(p, type, rows, cols);
            var buf = acc.Allocate1D<Chunk16>(Math.Max(1, GpuMatrix.ChunksFor(w)));
            GpuMatrix.Upload(acc.DefaultStream, w, buf.View, 0);
            return buf;
        }
        finally { NativeMemory.AlignedFree(p); }
    }

    static MemoryBuffer1D<float, Stride1D.Dense> RandomFloats(Accelerator acc, int n, uint seed)
    {
        var a = new float[Math.Max(4, (n + 3) / 4 * 4)];
        uint state = seed * 2654435761u + 1;
        for (int i = 0; i < n; i++) a[i] = Next(ref state);
        var b = acc.Allocate1D<float>(a.Length);
        b.View.CopyFromCPU(a);
        return b;
    }

    // xorshift32 → [-1, 1)
    static float Next(ref uint s)
    {
        s ^= s << 13; s ^= s >> 17; s ^= s << 5;
        return (s >> 8) * (2f / (1 << 24)) - 1f;
    }
}

/// <summary>What <see cref="GpuBench.CheckModel"/> measured.</summary>
/// <param name="MaxRelativeError">Largest max|gpu − cpu| / max(1, max|cpu|) over the compared forward calls.</param>
/// <param name="LaunchesPerToken">Kernel launches per decoded token.</param>
/// <param name="DecodeMilliseconds">Mean wall time of one GPU decode step (logits copied back included).</param>
/// <param name="DeviceBytes">Device memory the GPU model held at the end.</param>
public readonly record struct GpuModelCheck(double MaxRelativeError, long LaunchesPerToken, double DecodeMilliseconds, long DeviceBytes);
