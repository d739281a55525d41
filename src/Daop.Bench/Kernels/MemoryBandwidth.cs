using System.Diagnostics;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using System.Runtime.InteropServices;
using Daop.Kernels;
using Daop.Kernels.Cpu;

namespace Daop.Bench.Kernels;

/// <summary>STREAM-style measurement of the machine's sustainable read bandwidth: the ceiling for GEMV.</summary>
public static unsafe class MemoryBandwidth
{
    /// <summary>
    /// Sums a <paramref name="bytes"/>-long buffer with <paramref name="threads"/> threads of <see cref="CpuWorkers"/>
    /// (0: all) and returns the best of <paramref name="repeats"/> passes in GB/s (10⁹ bytes per second).
    /// Use a buffer well beyond the last-level cache to measure DRAM.
    /// </summary>
    public static double MeasureReadGBps(long bytes = 1L << 30, int threads = 0, int repeats = 5)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(bytes, 1L << 20);
        ArgumentOutOfRangeException.ThrowIfLessThan(repeats, 1);
        if (threads <= 0 || threads > CpuWorkers.Threads) threads = CpuWorkers.Threads;
        const int ChunkBytes = 1 << 20; // dynamic 1 MB chunks keep threads busy even if one is descheduled
        long chunks = bytes / ChunkBytes;
        if (chunks > int.MaxValue) throw new ArgumentOutOfRangeException(nameof(bytes));
        bytes = chunks * ChunkBytes;
        byte* data = (byte*)NativeMemory.AlignedAlloc((nuint)bytes, 4096);
        uint* sums = (uint*)NativeMemory.AlignedAlloc((nuint)chunks * sizeof(uint), 64);
        try
        {
            // Write every page so the timed passes measure reads, not page faults, and make every page distinct:
            // a hypervisor or KSM may merge identical pages into one cached frame and report cache bandwidth.
            for (long i = 0; i < bytes / sizeof(ulong); i++) ((ulong*)data)[i] = (ulong)i * 0x9E3779B97F4A7C15ul;
            var job = new SumJob { Data = data, Sums = sums, ChunkBytes = ChunkBytes };
            double best = 0;
            for (int i = 0; i <= repeats; i++)
            {
                long t0 = Stopwatch.GetTimestamp();
                CpuWorkers.For((int)chunks, 1, job, threads);
                double s = Stopwatch.GetElapsedTime(t0).TotalSeconds;
                if (i > 0) best = Math.Max(best, bytes / s / 1e9); // pass 0 warms the workers
            }
            return best;
        }
        finally
        {
            NativeMemory.AlignedFree(data);
            NativeMemory.AlignedFree(sums);
        }
    }

    struct SumJob : IParallelJob
    {
        public byte* Data;
        public uint* Sums;
        public int ChunkBytes;

        public readonly void Execute(int start, int end)
        {
            for (int i = start; i < end; i++) Sums[i] = Sum((uint*)(Data + (long)i * ChunkBytes), ChunkBytes / sizeof(uint));
        }

        /// <summary>
        /// Integer sum of four interleaved quarter-streams with software prefetch 2 KB ahead: the access pattern
        /// of the GEMV kernel (one stream per core leaves bandwidth unused on current cores).
        /// </summary>
        static uint Sum(uint* p, int n)
        {
            int q = n / 4;
            uint* p0 = p, p1 = p + q, p2 = p + 2 * q, p3 = p + 3 * q;
            if (!Vector512.IsHardwareAccelerated)
            {
                var s = Vector256<uint>.Zero;
                for (int i = 0; i + 8 <= q; i += 8)
                    s += Vector256.Load(p0 + i) + Vector256.Load(p1 + i) + Vector256.Load(p2 + i) + Vector256.Load(p3 + i);
                return Vector256.Sum(s);
            }
            Vector512<uint> a0 = default, a1 = default, a2 = default, a3 = default;
            for (int i = 0; i + 16 <= q; i += 16)
            {
                if (Sse.IsSupported)
                {
                    Sse.Prefetch0(p0 + i + 512); Sse.Prefetch0(p1 + i + 512);
                    Sse.Prefetch0(p2 + i + 512); Sse.Prefetch0(p3 + i + 512);
                }
                a0 += Vector512.Load(p0 + i); a1 += Vector512.Load(p1 + i);
                a2 += Vector512.Load(p2 + i); a3 += Vector512.Load(p3 + i);
            }
            return Vector512.Sum((a0 + a1) + (a2 + a3));
        }
    }
}
