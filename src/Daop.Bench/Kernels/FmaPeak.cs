using System.Diagnostics;
using System.Runtime.Intrinsics;
using Daop.Kernels.Cpu;

namespace Daop.Bench.Kernels;

/// <summary>The machine's fp32 FMA throughput: the ceiling a compute-bound GEMM is measured against.</summary>
public static class FmaPeak
{
    /// <summary>
    /// GFLOP/s (an FMA counts 2) of independent register-only FMA chains at the widest vector width, on every
    /// <see cref="CpuWorkers"/> thread; best of <paramref name="repeats"/> passes.
    /// </summary>
    public static double MeasureGflops(int repeats = 5)
    {
        int threads = CpuWorkers.Threads;
        var job = new Job { Iterations = 2_000_000 };
        double best = 0;
        for (int i = 0; i <= repeats; i++)
        {
            long t0 = Stopwatch.GetTimestamp();
            CpuWorkers.For(threads, 1, job);
            double s = Stopwatch.GetElapsedTime(t0).TotalSeconds;
            if (i > 0) best = Math.Max(best, threads * job.Flops / s / 1e9);
        }
        return best;
    }

    /// <summary>Where the chains' sums go, so the JIT cannot drop them.</summary>
    static volatile float s_sink;

    struct Job : IParallelJob
    {
        public int Iterations;

        /// <summary>Flops of one chunk: 12 chains of one FMA per iteration.</summary>
        public readonly double Flops => 12.0 * 2 * Width * Iterations;

        static int Width => Vector512.IsHardwareAccelerated ? 16 : Vector256.IsHardwareAccelerated ? 8 : 1;

        public readonly void Execute(int start, int end)
        {
            for (int c = start; c < end; c++)
            {
                if (Vector512.IsHardwareAccelerated) Chains512(Iterations);
                else Chains256(Iterations);
            }
        }

        [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
        static void Chains512(int n)
        {
            var m = Vector512.Create(0.999999f);
            var a = Vector512.Create(1e-3f);
            Vector512<float> c0 = default, c1 = default, c2 = default, c3 = default, c4 = default, c5 = default;
            Vector512<float> c6 = default, c7 = default, c8 = default, c9 = default, c10 = default, c11 = default;
            for (int i = 0; i < n; i++)
            {
                c0 = Vector512.FusedMultiplyAdd(c0, m, a); c1 = Vector512.FusedMultiplyAdd(c1, m, a);
                c2 = Vector512.FusedMultiplyAdd(c2, m, a); c3 = Vector512.FusedMultiplyAdd(c3, m, a);
                c4 = Vector512.FusedMultiplyAdd(c4, m, a); c5 = Vector512.FusedMultiplyAdd(c5, m, a);
                c6 = Vector512.FusedMultiplyAdd(c6, m, a); c7 = Vector512.FusedMultiplyAdd(c7, m, a);
                c8 = Vector512.FusedMultiplyAdd(c8, m, a); c9 = Vector512.FusedMultiplyAdd(c9, m, a);
                c10 = Vector512.FusedMultiplyAdd(c10, m, a); c11 = Vector512.FusedMultiplyAdd(c11, m, a);
            }
            s_sink = Vector512.Sum(c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9 + c10 + c11);
        }

        [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
        static void Chains256(int n)
        {
            var m = Vector256.Create(0.999999f);
            var a = Vector256.Create(1e-3f);
            Vector256<float> c0 = default, c1 = default, c2 = default, c3 = default, c4 = default, c5 = default;
            Vector256<float> c6 = default, c7 = default, c8 = default, c9 = default, c10 = default, c11 = default;
            for (int i = 0; i < n; i++)
            {
                c0 = Vector256.FusedMultiplyAdd(c0, m, a); c1 = Vector256.FusedMultiplyAdd(c1, m, a);
                c2 = Vector256.FusedMultiplyAdd(c2, m, a); c3 = Vector256.FusedMultiplyAdd(c3, m, a);
                c4 = Vector256.FusedMultiplyAdd(c4, m, a); c5 = Vector256.FusedMultiplyAdd(c5, m, a);
                c6 = Vector256.FusedMultiplyAdd(c6, m, a); c7 = Vector256.FusedMultiplyAdd(c7, m, a);
                c8 = Vector256.FusedMultiplyAdd(c8, m, a); c9 = Vector256.FusedMultiplyAdd(c9, m, a);
                c10 = Vector256.FusedMultiplyAdd(c10, m, a); c11 = Vector256.FusedMultiplyAdd(c11, m, a);
            }
            s_sink = Vector256.Sum(c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9 + c10 + c11);
        }
    }
}
