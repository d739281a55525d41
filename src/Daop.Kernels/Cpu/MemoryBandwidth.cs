using System.Diagnostics;
using System.Runtime.Intrinsics;
using System.Runtime.InteropServices;

namespace Daop.Kernels.Cpu;

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

        /// <summary>Integer sum with eight independent accumulators so the loop is bound by loads alone.</summary>
        static uint Sum(uint* p, int n)
        {
            if (!Vector512.IsHardwareAccelerated)
            {
                var s = Vector256<uint>.Zero;
                for (int i = 0; i + 8 <= n; i += 8) s += Vector256.Load(p + i);
                return Vector256.Sum(s);
            }
            Vector512<uint> a0 = default, a1 = default, a2 = default, a3 = default;
            Vector512<uint> a4 = default, a5 = default, a6 = default, a7 = default;
            for (int i = 0; i + 128 <= n; i += 128)
            {
                a0 += Vector512.Load(p + i); a1 += Vector512.Load(p + i + 16);
                a2 += Vector512.Load(p + i + 32); a3 += Vector512.Load(p + i + 48);
                a4 += Vector512.Load(p + i + 64); a5 += Vector512.Load(p + i + 80);
                a6 += Vector512.Load(p + i + 96); a7 += Vector512.Load(p + i + 112);
            }
            return Vector512.Sum((a0 + a1) + (a2 + a3) + ((a4 + a5) + (a6 + a7)));
        }
    }
}
