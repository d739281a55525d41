using Daop.Kernels.Gpu;
using System.Diagnostics;
using System.Runtime.InteropServices;
using Daop.Engine.Model;
using Daop.Engine.Placement;
using Daop.Engine.Schedule;
using Daop.Kernels;
using Daop.Kernels.Cpu;
using ILGPU;
using ILGPU.Runtime;
using Daop.Engine.Device.Gpu;

namespace Daop.Bench.Gpu;

/// <summary>What <see cref="OffloadBench.Transfers"/> measured.</summary>
/// <param name="GBps">Host→device bytes per second over all copies (10⁹ B/s), from the first enqueue to the last copy landing.</param>
/// <param name="EnqueueMicroseconds">Mean host time inside one <see cref="ExpertTransferQueue.Enqueue(int, int, int, int)"/> (small when copies are asynchronous).</param>
/// <param name="IsAsync">Whether the queue overlapped (CUDA events) or copied synchronously.</param>
public readonly record struct TransferBenchResult(double GBps, double EnqueueMicroseconds, bool IsAsync);

/// <summary>What <see cref="OffloadBench.Overlap"/> measured, in milliseconds.</summary>
/// <param name="CopyMs">The copies alone.</param>
/// <param name="ComputeMs">The expert kernels alone.</param>
/// <param name="BothMs">Both queued together (copies on the copy stream, kernels on the compute stream): near max(copy, compute) when they overlap, near the sum when they do not.</param>
public readonly record struct OverlapBenchResult(double CopyMs, double ComputeMs, double BothMs);

/// <summary>What <see cref="OffloadBench.HostContention"/> measured: host-memory read rates of CPU experts and of DMA copies, alone and at once (10⁹ B/s).</summary>
/// <param name="CpuAloneGBps">One-token CPU expert FFNs over experts larger than the caches, alone.</param>
/// <param name="CopyAloneGBps">Page-locked host→device expert copies, alone.</param>
/// <param name="CpuBothGBps">The CPU experts while the copies run.</param>
/// <param name="CopyBothGBps">The copies while the CPU experts run.</param>
public readonly record struct ContentionBenchResult(double CpuAloneGBps, double CopyAloneGBps, double CpuBothGBps, double CopyBothGBps)
{
    /// <summary>Bytes per second of both together over the CPU alone: above 1 when DMA adds host bandwidth instead of taking it.</summary>
    public double Gain => (CpuBothGBps + CopyBothGBps) / CpuAloneGBps;
}

/// <summary>What <see cref="OffloadBench.CheckModel"/> measured.</summary>
/// <param name="MaxRelativeError">Largest max|offloaded − cpu| / max(1, max|cpu|) over the compared forward calls.</param>
/// <param name="DecodeMilliseconds">Mean wall time of one decode step.</param>
/// <param name="Decode">Scheduler counters over the timed decode steps (divide by Tokens for per-token figures).</param>
/// <param name="DenseBytes">Device bytes besides the expert slots.</param>
/// <param name="PoolBytes">Device bytes of the expert slots.</param>
public readonly record struct OffloadModelCheck(double MaxRelativeError, double DecodeMilliseconds, OffloadStats Decode, long DenseBytes, long PoolBytes);

/// <summary>
/// Measurements of the offloading machinery for a GPU machine: host→device expert copies through
/// <see cref="ExpertTransferQueue"/> (staged page-locked vs direct from pageable memory), whether copies overlap the
/// expert kernels, and a whole model under a placement policy against the CPU path. Synthetic experts are random bf16.
/// </summary>
public static unsafe class OffloadBench
{
    // `count` random experts of one type (block formats too), freed together.
    sealed class Experts : IDisposable
    {
        readonly List<BenchMatrix> _mem = [];
        public readonly ExpertWeights[] W;

        public Experts(int count, DType type, int hidden, int inter)
        {
            W = new ExpertWeights[count];
            for (int i = 0; i < count; i++)
                W[i] = new(Matrix(type, inter, hidden, (uint)(3 * i + 1)), Matrix(type, inter, hidden, (uint)(3 * i + 2)),
                    Matrix(type, hidden, inter, (uint)(3 * i + 3)));
        }

        WeightMatrix Matrix(DType type, int rows, int cols, uint seed)
        {
            var m = BenchMatrix.Random(type, rows, cols, seed, 1f / MathF.Sqrt(cols));
            _mem.Add(m);
            return m.W;
        }

        public void Dispose()
        {
            foreach (var m in _mem) m.Dispose();
            _mem.Clear();
        }
    }

    // A device with `count` random experts in pinned host images, a pool of `count` slots for one layer and a copy queue.
    sealed class Rig : IDisposable
    {
        public readonly GpuDevice Dev;
        public readonly Experts Ex;
        public readonly ExpertLayout Layout;
        public readonly ExpertSlotPool Pool;
        public readonly HostExpertStore Store;
        public readonly ExpertTransferQueue Queue;

        public Rig(GpuContext accelerator, DType type, int hidden, int inter, int count, HostCopyMode mode)
        {
            Dev = new GpuDevice(accelerator);
            Ex = new Experts(count, type, hidden, inter);
            Layout = ExpertLayout.Of(Ex.W[0]);
            Pool = new ExpertSlotPool(Dev, Layout, count, [count]);
            Store = new HostExpertStore([Ex.W], Layout, accelerator, mode);
            Queue = new ExpertTransferQueue(Dev, Pool, Store);
            for (int e = 0; e < count; e++) Store.Pin(0, e);
        }

        // Copies expert e again into a slot (its own, released first, when it has one).
        public void Recopy(int e)
        {
            if (Pool.SlotOf(0, e) >= 0) Pool.Release(0, e);
            Queue.Enqueue(0, e, Pool.Assign(0, e));
        }

        public void Dispose()
        {
            Queue.Dispose();
            Store.Dispose();
            Pool.Dispose();
            Ex.Dispose();
            Dev.Dispose();
        }
    }

    /// <summary>
    /// <paramref name="copies"/> transfers of distinct random experts ([inter, hidden] gate/up, [hidden, inter] down of
    /// <paramref name="type"/>) into <paramref name="copies"/> slots, after one warm-up copy; staged images are made
    /// before timing. Mixtral-8x7B: <c>Transfers(acc, DType.BF16, 4096, 14336, HostCopyMode.Staged, 8)</c>.
    /// </summary>
    public static TransferBenchResult Transfers(GpuContext accelerator, DType type, int hidden, int inter, HostCopyMode mode, int copies)
    {
        copies = Math.Max(1, copies);
        using var rig = new Rig(accelerator, type, hidden, inter, copies + 1, mode);
        var (layout, pool, queue) = (rig.Layout, rig.Pool, rig.Queue);
        queue.Enqueue(0, copies, pool.Assign(0, copies));
        queue.Synchronize();
        double enqueue = 0;
        long t0 = Stopwatch.GetTimestamp();
        for (int e = 0; e < copies; e++)
        {
            long t1 = Stopwatch.GetTimestamp();
            queue.Enqueue(0, e, pool.Assign(0, e));
            enqueue += Stopwatch.GetElapsedTime(t1).TotalSeconds;
        }
        queue.Synchronize();
        double sec = Stopwatch.GetElapsedTime(t0).TotalSeconds;
        return new TransferBenchResult(copies * layout.ExpertBytes / sec / 1e9, enqueue / copies * 1e6, queue.IsAsync);
    }

    /// <summary>
    /// Copies <paramref name="copies"/> experts into free slots while the expert kernels run <paramref name="steps"/>
    /// single-token passes over another resident expert; each part is also timed alone.
    /// </summary>
    public static OverlapBenchResult Overlap(GpuContext accelerator, DType type, int hidden, int inter, int copies, int steps)
    {
        copies = Math.Max(1, copies);
        using var rig = new Rig(accelerator, type, hidden, inter, copies + 1, HostCopyMode.Auto);
        var (dev, ex, pool, queue) = (rig.Dev, rig.Ex, rig.Pool, rig.Queue);
        int resident = pool.Assign(0, copies);
        pool.Upload(dev.Stream, 0, resident, ex.W[copies]);
        var (gate, up, down) = pool.Matrices(0);
        var k = dev.Kernels;
        var x = dev.AllocateFloats(hidden);
        var h = dev.AllocateFloats(inter);
        var y = dev.AllocateFloats(hidden);
        using var index = accelerator.Allocate1D<int>(new[] { 0, resident, 0, 1, 0, resident, BitConverter.SingleToInt32Bits(1f) });
        GpuView<int> iv = index.View;
        void Compute()
        {
            for (int i = 0; i < steps; i++)
            {
                k.GateUp(dev.Stream, gate, up, x.View, h.View, 1, iv, 1, 1, 1);
                k.DownCombine(dev.Stream, down, h.View, y.View, 1, 1, iv, iv.SubView(6, 1).Cast<float>(), 4, 5);
            }
        }
        void CopyAll()
        {
            for (int e = 0; e < copies; e++) rig.Recopy(e);
        }
        double Time(Action a)
        {
            dev.Synchronize();
            queue.Synchronize();
            long t0 = Stopwatch.GetTimestamp();
            a();
            dev.Synchronize();
            queue.Synchronize();
            return Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
        }
        Time(() => { CopyAll(); Compute(); });   // warm-up (kernel compile, first copies)
        double copy = Time(CopyAll), compute = Time(Compute), both = Time(() => { CopyAll(); Compute(); });
        return new OverlapBenchResult(copy, compute, both);
    }

    /// <summary>
    /// Whether host→device DMA and CPU expert work share host memory bandwidth or add to it: one-token CPU expert FFNs
    /// (round-robin over <paramref name="experts"/> random experts, together larger than the caches) and staged copies
    /// of <paramref name="experts"/> other experts, each alone for about <paramref name="seconds"/>, then both at once
    /// (copies enqueued from another thread). Decides whether a CPU-resident expert is better split between the CPU
    /// and a concurrent transfer.
    /// </summary>
    public static ContentionBenchResult HostContention(GpuContext accelerator, DType type, int hidden, int inter, int experts = 4, double seconds = 1)
    {
        using var cpuSet = new Experts(experts, type, hidden, inter);
        using var rig = new Rig(accelerator, type, hidden, inter, experts, HostCopyMode.Auto);
        var (x, y, scratch) = CpuBuffers(hidden, inter);
        long bytes = rig.Layout.ExpertBytes;
        double CpuRuns(int runs) => TimeCpuExperts(cpuSet.W, runs, x, y, scratch);
        double Copies(int copies)
        {
            long t0 = Stopwatch.GetTimestamp();
            for (int i = 0; i < copies; i++) rig.Recopy(i % experts);
            rig.Queue.Synchronize();
            return Stopwatch.GetElapsedTime(t0).TotalSeconds;
        }
        CpuRuns(experts);
        Copies(experts);
        int cpuN = Math.Max(experts, (int)(seconds / (CpuRuns(2 * experts) / (2 * experts))));
        int copyN = Math.Max(experts, (int)(seconds / (Copies(2 * experts) / (2 * experts))));
        double cpuAlone = CpuRuns(cpuN), copyAlone = Copies(copyN);
        double copyBoth = 0;
        var copier = new Thread(() => copyBoth = Copies(copyN));
        copier.Start();
        double cpuBoth = CpuRuns(cpuN);
        copier.Join();
        return new ContentionBenchResult(cpuN * bytes / cpuAlone / 1e9, copyN * bytes / copyAlone / 1e9,
            cpuN * bytes / cpuBoth / 1e9, copyN * bytes / copyBoth / 1e9);
    }

    /// <summary>
    /// Bytes per second (10⁹ B/s) of one-token CPU expert FFNs, round-robin over <paramref name="experts"/> (their weights
    /// together should exceed the caches): the best of three passes of about <paramref name="seconds"/> / 3 each, after
    /// a warm-up pass (a shared host varies by ±20 % from one second to the next; the best pass is what the machine can do).
    /// </summary>
    public static double CpuExpertGBps(IReadOnlyList<ExpertWeights> experts, double seconds = 1.5)
    {
        ArgumentNullException.ThrowIfNull(experts);
        if (experts.Count == 0) throw new ArgumentException("no experts to time", nameof(experts));
        var (x, y, scratch) = CpuBuffers(experts[0].Gate.Cols, experts[0].Gate.Rows);
        TimeCpuExperts(experts, experts.Count, x, y, scratch);
        int runs = Math.Max(experts.Count, (int)(seconds / 3 / (TimeCpuExperts(experts, experts.Count, x, y, scratch) / experts.Count)));
        long bytes = 0;
        for (int i = 0; i < runs; i++) bytes += experts[i % experts.Count].ByteLength;
        double best = double.MaxValue;
        for (int pass = 0; pass < 3; pass++) best = Math.Min(best, TimeCpuExperts(experts, runs, x, y, scratch));
        return bytes / best / 1e9;
    }

    /// <summary>Up to <paramref name="max"/> routed experts of <paramref name="weights"/> with distinct memory (synthetic models reuse a few matrices).</summary>
    public static List<ExpertWeights> DistinctExperts(ModelWeights weights, int max)
    {
        ArgumentNullException.ThrowIfNull(weights);
        return weights.Layers.SelectMany(l => l.Experts).DistinctBy(e => ((nint)e.Gate.Data, (nint)e.Up.Data, (nint)e.Down.Data)).Take(max).ToList();
    }

    static (float[] X, float[] Y, float[] Scratch) CpuBuffers(int hidden, int inter)
    {
        var x = new float[hidden];
        for (int i = 0; i < hidden; i++) x[i] = (i % 17 - 8) * 0.01f;
        return (x, new float[hidden], new float[2 * inter]);
    }

    // Seconds for `runs` one-token expert FFNs, round-robin over w.
    static double TimeCpuExperts(IReadOnlyList<ExpertWeights> w, int runs, float[] x, float[] y, float[] scratch)
    {
        long t0 = Stopwatch.GetTimestamp();
        for (int i = 0; i < runs; i++)
        {
            var e = w[i % w.Count];
            ExpertFfn.Forward(e.Gate, e.Up, e.Down, x, y, 1, scratch);
        }
        return Stopwatch.GetElapsedTime(t0).TotalSeconds;
    }

    /// <summary>
    /// Runs the model in <paramref name="modelDir"/> on <paramref name="accelerator"/> with experts placed by
    /// <paramref name="policy"/> at expert cache <paramref name="ratio"/>, against the CPU path: prefills
    /// <paramref name="prefix"/> pseudo-random tokens, decodes <paramref name="decode"/> more (timed), then replays the
    /// decode steps beside the CPU to compare logits.
    /// </summary>
    public static OffloadModelCheck CheckModel(string modelDir, GpuContext accelerator, Func<IPlacementPolicy> policy, double ratio,
        int prefix = 12, int decode = 8, OffloadOptions? options = null)
    {
        using var cpu = MoeModel.Load(modelDir, new ModelOptions { ContextLength = prefix + decode });
        using var gpu = MoeModel.Load(modelDir, new ModelOptions
        {
            ContextLength = prefix + decode,
            Device = _ => new GpuDevice(accelerator),
            Experts = (m, d) => OffloadedExpertScheduler.FromRatio(m, d, policy(), ratio, options: options),
        });
        var s = (OffloadedExpertScheduler)gpu.Experts;
        int v = cpu.Config.VocabSize;
        uint state = 12345;
        var tokens = new int[prefix + decode];
        for (int i = 0; i < tokens.Length; i++)
        {
            state ^= state << 13; state ^= state >> 17; state ^= state << 5;
            tokens[i] = (int)(state % (uint)v);
        }
        var gc = gpu.NewCache();
        var b = new float[v];
        gpu.Forward(tokens.AsSpan(0, prefix), 0, gc, b);
        s.Synchronize();
        var before = s.Stats;
        double seconds = 0;
        for (int i = 0; i < decode; i++)
        {
            long t0 = Stopwatch.GetTimestamp();
            gpu.Forward(tokens.AsSpan(prefix + i, 1), prefix + i, gc, b);
            seconds += Stopwatch.GetElapsedTime(t0).TotalSeconds;
        }
        s.Synchronize();
        var stats = s.Stats.Since(before);

        // Replay beside the CPU path on a fresh sequence (a fresh scheduler state is not needed: placement never changes results).
        var cc = cpu.NewCache();
        gc = gpu.NewCache();
        var a = new float[v];
        double worst = 0;
        void Step(int start, int n)
        {
            cpu.Forward(tokens.AsSpan(start, n), start, cc, a);
            gpu.Forward(tokens.AsSpan(start, n), start, gc, b);
            worst = Math.Max(worst, GpuBench.MaxRelativeError(a, b, 1));
        }
        Step(0, prefix);
        for (int i = 0; i < decode; i++) Step(prefix + i, 1);
        return new OffloadModelCheck(worst, decode > 0 ? seconds / decode * 1e3 : 0, stats, s.DenseBytes, s.PoolBytes);
    }
}
