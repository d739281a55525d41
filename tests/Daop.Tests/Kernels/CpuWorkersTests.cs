using Daop.Kernels;
using Daop.Kernels.Cpu;

namespace Daop.Tests.Kernels;

// Serial: its allocation test must not find the worker pool busy with another test (see SerialAllocationCollection).
[Collection("serial-allocation")]
public unsafe class CpuWorkersTests
{
    struct CountJob : IParallelJob
    {
        public int* Counts;
        public int MaxChunk;
        public int* Oversized;

        public readonly void Execute(int start, int end)
        {
            if (end - start > MaxChunk || end <= start) Interlocked.Increment(ref *Oversized);
            for (int i = start; i < end; i++) Interlocked.Increment(ref Counts[i]);
        }
    }

    static void RunAndCheck(int n, int chunk)
    {
        var counts = new int[n];
        int bad = 0;
        fixed (int* c = counts)
        {
            var job = new CountJob { Counts = c, MaxChunk = chunk, Oversized = &bad };
            CpuWorkers.For(n, chunk, job);
        }
        Assert.Equal(0, bad);
        for (int i = 0; i < n; i++)
            if (counts[i] != 1) Assert.Fail($"n={n} chunk={chunk}: index {i} visited {counts[i]} times");
    }

    [Fact]
    public void EveryIndexExactlyOnce()
    {
        foreach (int n in new[] { 0, 1, 2, 3, 7, 64, 1000, 100_003 })
            foreach (int chunk in new[] { 1, 3, 64, 1000, Math.Max(1, n), int.MaxValue })
                for (int rep = 0; rep < 3; rep++) RunAndCheck(n, chunk);
    }

    struct ThreadJob : IParallelJob
    {
        public int* Ids;   // [n] managed thread id that ran each index

        public readonly void Execute(int start, int end)
        {
            for (int i = start; i < end; i++)
            {
                Ids[i] = Environment.CurrentManagedThreadId;
                Thread.SpinWait(2000); // long enough that idle workers join in when they may
            }
        }
    }

    [Fact]
    public void ThreadLimitCapsTheThreadsOfCallsFromThisThreadOnly()
    {
        const int n = 256;
        var ids = new int[n];
        int Distinct(int limit)
        {
            CpuWorkers.ThreadLimit = limit;
            try
            {
                fixed (int* p = ids) CpuWorkers.For(n, 1, new ThreadJob { Ids = p });
            }
            finally { CpuWorkers.ThreadLimit = 0; }
            Assert.DoesNotContain(0, ids);
            return ids.Distinct().Count();
        }
        Assert.Equal(1, Distinct(1));                 // inline on the caller
        Assert.Equal(Environment.CurrentManagedThreadId, ids[0]);
        if (CpuWorkers.Threads >= 2) Assert.InRange(Distinct(2), 1, 2);
        Assert.InRange(Distinct(0), 1, CpuWorkers.Threads);
        Assert.Throws<ArgumentOutOfRangeException>(() => CpuWorkers.ThreadLimit = -1);
        // Another thread's calls are not limited by this thread's setting.
        CpuWorkers.ThreadLimit = 1;
        try
        {
            int other = 0;
            var t = new Thread(() => other = CpuWorkers.ThreadLimit);
            t.Start();
            t.Join();
            Assert.Equal(0, other);
        }
        finally { CpuWorkers.ThreadLimit = 0; }
    }

    [Fact]
    public void ManySmallCallsBackToBack()
    {
        for (int i = 0; i < 2000; i++) RunAndCheck(1 + i % 37, 1 + i % 5);
    }

    [Fact]
    public void ConcurrentCallersAllComplete()
    {
        var threads = new Thread[4];
        var errors = new List<Exception>();
        for (int t = 0; t < threads.Length; t++)
        {
            int id = t;
            threads[t] = new Thread(() =>
            {
                try { for (int i = 0; i < 300; i++) RunAndCheck(50 + (i * 7 + id) % 500, 1 + (i + id) % 9); }
                catch (Exception e) { lock (errors) errors.Add(e); }
            });
        }
        foreach (var t in threads) t.Start();
        foreach (var t in threads) Assert.True(t.Join(TimeSpan.FromMinutes(2)), "a caller hung");
        Assert.Empty(errors);
    }

    struct NestedJob : IParallelJob
    {
        public int* Counts;
        public int Inner;

        public readonly void Execute(int start, int end)
        {
            for (int i = start; i < end; i++)
            {
                var inner = new CountJob { Counts = Counts + (long)i * Inner, MaxChunk = 3, Oversized = null };
                int bad = 0;
                inner.Oversized = &bad;
                CpuWorkers.For(Inner, 3, inner);
            }
        }
    }

    [Fact]
    public void NestedCallsRunInline()
    {
        const int Outer = 20, Inner = 50;
        var counts = new int[Outer * Inner];
        fixed (int* c = counts) CpuWorkers.For(Outer, 1, new NestedJob { Counts = c, Inner = Inner });
        Assert.All(counts, v => Assert.Equal(1, v));
    }

    struct ThrowJob : IParallelJob
    {
        public readonly void Execute(int start, int end)
        {
            if (start <= 13 && 13 < end) throw new InvalidOperationException("boom");
        }
    }

    [Fact]
    public void ExceptionsReachTheCaller()
    {
        Assert.Throws<InvalidOperationException>(() => CpuWorkers.For(100, 1, new ThrowJob()));
        RunAndCheck(1000, 7); // the pool still works afterwards
    }

    [Fact]
    public void ConfigureAfterStartOnlyAcceptsTheSameCount()
    {
        int n = CpuWorkers.Threads;
        CpuWorkers.Configure(n);
        Assert.Throws<InvalidOperationException>(() => CpuWorkers.Configure(n + 1));
    }

    [Fact]
    public void MatMulAndExpertAllocateNothingOnceWarm()
    {
        using var w = new NativeWeights(DType.BF16, 512, 384, 1);
        using var f = new NativeWeights(DType.F16, 384, 512, 2);
        using var gate = new NativeWeights(DType.BF16, 256, 384, 3);
        using var up = new NativeWeights(DType.BF16, 256, 384, 4);
        using var down = new NativeWeights(DType.BF16, 384, 256, 5);
        var x = NativeWeights.Floats(40 * 512, 1);
        var y = new float[40 * 512];
        var scratch = new float[2 * 40 * 256];
        void Calls()
        {
            MatMul.Forward(w.W, x, y, 1);
            MatMul.Forward(w.W, x, y, 4);
            MatMul.Forward(w.W, x, y, 40);
            MatMul.Forward(f.W, x, y, 1);
            MatMul.Forward(f.W, x, y, 4);
            ExpertFfn.Forward(gate.W, up.W, down.W, x, y, 1, scratch);
            ExpertFfn.Forward(gate.W, up.W, down.W, x, y, 4, scratch);
            ExpertFfn.Forward(gate.W, up.W, down.W, x, y, 40, scratch);
            SwiGlu.Forward(scratch, x);
        }
        for (int i = 0; i < 5; i++) Calls();
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 100; i++) Calls();
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }
}
