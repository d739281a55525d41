using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;

namespace Daop.Kernels.Cpu;

/// <summary>
/// The machinery behind <see cref="CpuWorkers"/>. One parallel-for at a time (guarded by <see cref="TryAcquire"/>).
/// </summary>
/// <remarks>
/// Chunks are claimed by CAS on a 64-bit state word: generation in the high half, next chunk in the low half.
/// The caller first "closes" the word (new generation, chunk index all ones), then writes the job parameters,
/// then opens it (chunk 0). A worker claims a chunk only with a CAS that still sees the generation it read the
/// parameters under, so a late worker can never run a chunk with another call's parameters; and since a claim
/// succeeds only while chunks remain, the caller (whose stack holds the job) is still waiting whenever one runs.
/// The caller returns when the done counter reaches the chunk count, without waiting for slow workers to check in.
/// </remarks>
internal sealed unsafe class WorkerPool
{
    const uint Closed = uint.MaxValue;

    [StructLayout(LayoutKind.Sequential, Size = 128)]
    struct Padded { public long Value; }

    Padded _state;       // (generation << 32) | next chunk
    Padded _done;        // chunks finished in the current generation
    Padded _busy;        // 1 while a caller owns the pool
    Padded _sleepers;    // workers blocked on _gate

    // Parameters of the current generation: written by the owning caller between close and open.
    delegate*<void*, int, int, void> _fn;
    void* _job;
    int _n, _chunk, _chunks, _maxThreads;
    long _generation;    // caller-owned counter
    Exception? _error;

    readonly object _gate = new();
    readonly long _spinTicks;

    public int Threads { get; }

    public WorkerPool(int threads, int spinMicroseconds)
    {
        Threads = threads;
        _spinTicks = Stopwatch.Frequency * spinMicroseconds / 1_000_000;
        for (int i = 1; i < threads; i++)
        {
            int id = i;
            var t = new Thread(() => WorkerLoop(id), 256 * 1024) { IsBackground = true, Name = $"daop-cpu-{i}" };
            t.Start();
        }
    }

    public bool TryAcquire() => Interlocked.CompareExchange(ref _busy.Value, 1, 0) == 0;

    /// <summary>Runs a job; the caller must hold the pool (<see cref="TryAcquire"/>), which this releases.</summary>
    public void Run(delegate*<void*, int, int, void> fn, void* job, int n, int chunk, int chunks, int maxThreads)
    {
        try
        {
            long gen = ++_generation;
            Interlocked.Exchange(ref _state.Value, (gen << 32) | Closed);
            _fn = fn; _job = job; _n = n; _chunk = chunk; _chunks = chunks; _maxThreads = maxThreads;
            _error = null;
            Volatile.Write(ref _done.Value, 0);
            // Full fence: pairs with the worker's increment of _sleepers before it re-reads the state.
            Interlocked.Exchange(ref _state.Value, gen << 32);
            if (Volatile.Read(ref _sleepers.Value) > 0)
                lock (_gate) Monitor.PulseAll(_gate);

            Participate(gen);

            var spin = new SpinWait();
            while (Volatile.Read(ref _done.Value) < chunks) spin.SpinOnce(sleep1Threshold: -1);

            var error = _error;
            _error = null;
            if (error != null) ExceptionDispatchInfo.Throw(error);
        }
        finally
        {
            Volatile.Write(ref _busy.Value, 0);
        }
    }

    void Participate(long gen)
    {
        var fn = _fn;
        void* job = _job;
        int n = _n, chunk = _chunk;
        uint chunks = (uint)_chunks;
        int done = 0;
        while (true)
        {
            long s = Volatile.Read(ref _state.Value);
            if ((s >> 32) != gen || (uint)s >= chunks) break;
            if (Interlocked.CompareExchange(ref _state.Value, s + 1, s) != s) continue;
            int start = (int)(uint)s * chunk;
            int end = (int)Math.Min(n, (long)start + chunk);
            try { fn(job, start, end); }
            catch (Exception e) { Interlocked.CompareExchange(ref _error, e, null); }
            done++;
        }
        if (done > 0) Interlocked.Add(ref _done.Value, done);
    }

    void WorkerLoop(int id)
    {
        long seen = 0;
        while (true)
        {
            long s = WaitForWork(seen);
            seen = s >> 32;
            // Parameters are read after the state; a stale read is caught by the generation check in the CAS.
            if (id < _maxThreads) Participate(seen);
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    long WaitForWork(long seen)
    {
        long start = Stopwatch.GetTimestamp();
        while (true)
        {
            for (int i = 0; i < 64; i++)
            {
                long s = Volatile.Read(ref _state.Value);
                if ((s >> 32) != seen && (uint)s != Closed) return s;
                Thread.SpinWait(1);
            }
            if (Stopwatch.GetTimestamp() - start > _spinTicks) break;
        }
        lock (_gate)
        {
            Interlocked.Increment(ref _sleepers.Value);
            try
            {
                while (true)
                {
                    long s = Volatile.Read(ref _state.Value);
                    if ((s >> 32) != seen && (uint)s != Closed) return s;
                    Monitor.Wait(_gate);
                }
            }
            finally { Interlocked.Decrement(ref _sleepers.Value); }
        }
    }
}
