using System.Runtime.CompilerServices;

namespace Daop.Kernels.Cpu;

/// <summary>
/// The process-wide pool of CPU worker threads behind every parallel kernel. A parallel-for hands out
/// chunks of [0, n) dynamically; the calling thread takes part, so a pool of <see cref="Threads"/> has
/// <c>Threads − 1</c> dedicated workers. Idle workers spin briefly (kernels usually arrive back to back) and then block.
/// </summary>
/// <remarks>
/// Calls allocate nothing. The pool runs one parallel-for at a time: a call made while it is busy (another
/// thread's call, or a nested call from inside a job) runs inline on its own thread instead of waiting, so
/// concurrent and nested use can never deadlock. <c>DAOP_SPIN_US</c> sets how long idle workers spin before
/// blocking (default 50 µs; 0 blocks at once, for machines shared with other busy processes).
/// </remarks>
public static unsafe class CpuWorkers
{
    [ThreadStatic] static int t_limit;
    static readonly object s_init = new();
    static int s_requested;
    static WorkerPool? s_pool;

    /// <summary>Threads that take part in a parallel-for (workers plus the caller).</summary>
    public static int Threads => Pool.Threads;

    /// <summary>
    /// Most threads a parallel-for started from the current thread may use (0: no limit). A background job that runs
    /// while another thread drives the GPU can leave that thread a core: a worker preempted mid-chunk delays the whole call.
    /// </summary>
    public static int ThreadLimit
    {
        get => t_limit;
        set
        {
            ArgumentOutOfRangeException.ThrowIfNegative(value);
            t_limit = value;
        }
    }

    /// <summary>
    /// Sets the thread count before the pool starts (default: <c>DAOP_THREADS</c> if set, else
    /// <see cref="Environment.ProcessorCount"/>). Calling it again with the same value is harmless.
    /// </summary>
    /// <exception cref="InvalidOperationException">The pool already runs with a different count.</exception>
    public static void Configure(int threads)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        lock (s_init)
        {
            if (s_pool != null && s_pool.Threads != threads)
                throw new InvalidOperationException($"CpuWorkers already started with {s_pool.Threads} threads");
            s_requested = threads;
        }
    }

    /// <summary>
    /// Runs <paramref name="job"/> over [0, <paramref name="n"/>) in chunks of <paramref name="chunk"/>
    /// indices and returns when every chunk is done. The job is copied to the caller's stack first.
    /// An exception thrown by a chunk is rethrown here after all other chunks finish.
    /// </summary>
    public static void For<TJob>(int n, int chunk, in TJob job) where TJob : struct, IParallelJob =>
        For(n, chunk, job, int.MaxValue);

    /// <summary>Like <see cref="For{TJob}(int, int, in TJob)"/>, using at most <paramref name="maxThreads"/> threads.</summary>
    public static void For<TJob>(int n, int chunk, in TJob job, int maxThreads) where TJob : struct, IParallelJob
    {
        if (n <= 0) return;
        ArgumentOutOfRangeException.ThrowIfLessThan(chunk, 1);
        int chunks = (int)(((long)n + chunk - 1) / chunk);
        if (t_limit > 0) maxThreads = Math.Min(maxThreads, t_limit);
        var pool = Pool;
        if (chunks == 1 || maxThreads <= 1 || pool.Threads == 1 || !pool.TryAcquire())
        {
            RunInline(n, chunk, in job);
            return;
        }
        // The stack copy cannot move under the GC while workers hold a pointer to it.
        TJob local = job;
        // Workers beyond the chunk count would only contend for the claim word.
        pool.Run(&Trampoline<TJob>.Run, Unsafe.AsPointer(ref local), n, chunk, chunks, Math.Min(maxThreads, chunks));
    }

    /// <summary>Runs <paramref name="job"/> with chunks sized so that each thread gets about four.</summary>
    public static void For<TJob>(int n, in TJob job) where TJob : struct, IParallelJob =>
        For(n, Math.Max(1, (int)(((long)n + 4L * Threads - 1) / (4L * Threads))), job);

    static void RunInline<TJob>(int n, int chunk, in TJob job) where TJob : struct, IParallelJob
    {
        for (int s = 0; s < n; s += chunk)
            job.Execute(s, (int)Math.Min(n, (long)s + chunk));
    }

    static WorkerPool Pool
    {
        get
        {
            var p = Volatile.Read(ref s_pool);
            return p ?? Start();
        }
    }

    static WorkerPool Start()
    {
        lock (s_init)
        {
            if (s_pool != null) return s_pool;
            int threads = s_requested;
            if (threads <= 0 && int.TryParse(Environment.GetEnvironmentVariable("DAOP_THREADS"), out int env) && env > 0)
                threads = env;
            if (threads <= 0) threads = Environment.ProcessorCount;
            int spinUs = 50;
            if (int.TryParse(Environment.GetEnvironmentVariable("DAOP_SPIN_US"), out int s) && s >= 0) spinUs = s;
            var pool = new WorkerPool(threads, spinUs);
            Volatile.Write(ref s_pool, pool);
            return pool;
        }
    }

    static class Trampoline<TJob> where TJob : struct, IParallelJob
    {
        public static void Run(void* job, int start, int end) => Unsafe.AsRef<TJob>(job).Execute(start, end);
    }
}
