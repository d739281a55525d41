using Daop.Engine.Schedule;
using Daop.Engine.Device.Gpu;
using Daop.Engine.Model;
using Daop.Engine.Model.Layers;
using Daop.Kernels;
using Daop.Kernels.Gpu;
using ILGPU.Runtime;

namespace Daop.Bench.Gpu;

/// <summary>What <see cref="GpuExpertPathBench.Run"/> measured.</summary>
/// <param name="GenericMicroseconds">One <see cref="GpuExpertScheduler.RunExperts"/> call with the generic kernels only.</param>
/// <param name="GeneratedMicroseconds">The same call with the default kernel set (the shape's generated kernels when built).</param>
/// <param name="GeneratedLaunchesPerCall">Launches per call that ran a generated kernel (0: the shape has none, or the call is batched).</param>
/// <param name="MaxRelativeDifference">max |generated − generic| / max |generic| over the outputs.</param>
/// <param name="ExpertsPerCall">Distinct experts a call's routing reads, on average over the routings cycled through.</param>
/// <param name="ExpertBytes">Bytes of one expert's three matrices.</param>
public readonly record struct ExpertPathTiming(double GenericMicroseconds, double GeneratedMicroseconds, double GeneratedLaunchesPerCall,
    double MaxRelativeDifference, double ExpertsPerCall, long ExpertBytes)
{
    /// <summary>Expert bytes a call must read (each routed expert once) per second of the generated kernel set, in GB/s.</summary>
    public double GeneratedGBps => ExpertsPerCall * ExpertBytes / GeneratedMicroseconds / 1e3;
}

/// <summary>
/// The routed experts as the engine runs them (<see cref="GpuExpertScheduler.RunExperts"/>: host tiling, one index
/// upload, gate/up and down(-combine) launches), timed with the generic kernels and with the generated ones.
/// </summary>
public static class GpuExpertPathBench
{
    /// <summary>
    /// <paramref name="tokens"/> tokens routed top-<paramref name="topK"/> over <paramref name="experts"/> random experts of
    /// one layer (one random weight set, uploaded per expert), cycling through 16 random routings so that successive
    /// calls read different experts, as decode steps do. Each kernel set gets its own device and expert stacks; both
    /// see the same inputs. Microseconds are the best of five batches of <paramref name="iters"/> / 5 calls.
    /// </summary>
    public static ExpertPathTiming Run(GpuContext accelerator, DType type, int hidden, int inter, int experts, int topK, int tokens, int iters)
    {
        using var gate = BenchMatrix.Random(type, inter, hidden, 3, 1f / MathF.Sqrt(hidden));
        using var up = BenchMatrix.Random(type, inter, hidden, 4, 1f / MathF.Sqrt(hidden));
        using var down = BenchMatrix.Random(type, hidden, inter, 5, 1f / MathF.Sqrt(inter));
        var weights = OneLayerWeights.Of(Enumerable.Repeat(new ExpertWeights(gate.W, up.W, down.W), experts).ToArray());
        var rng = new Random(17);
        var routings = new RoutingBatch[16];
        for (int i = 0; i < routings.Length; i++)
        {
            var r = new RoutingBatch(tokens, topK) { Tokens = tokens };
            for (int t = 0; t < tokens; t++)
            {
                var pick = Enumerable.Range(0, experts).OrderBy(_ => rng.Next()).Take(topK).ToArray();
                for (int j = 0; j < topK; j++) { r.Experts[t * topK + j] = pick[j]; r.Weights[t * topK + j] = (float)(0.1 + rng.NextDouble()); }
            }
            routings[i] = r;
        }
        var x = RandomWeights.Floats(tokens * hidden, 6);

        (double Microseconds, double GeneratedPerCall, float[] Y) Time(GpuKernelOptions options)
        {
            using var dev = new GpuDevice(accelerator, options);
            var sched = new GpuExpertScheduler(weights, hidden, experts, inter, dev);
            sched.Preload();
            var xb = dev.Allocate(tokens * hidden);
            var yb = dev.Allocate(tokens * hidden);
            ((GpuBuffer)xb).View.SubView(0, x.Length).CopyFromCPU(dev.Stream, x);
            int call = 0;
            long calls0 = 0, gen0 = 0;
            double sec = GpuBench.BestSecondsPerCall(accelerator, iters, () =>
            {
                if (call == 1) { calls0 = call; gen0 = dev.Kernels.GeneratedLaunches; } // after the warm-up call
                sched.RunExperts(0, xb, routings[call++ % routings.Length], yb, tokens);
            });
            double perCall = (double)(dev.Kernels.GeneratedLaunches - gen0) / Math.Max(1, call - calls0);
            sched.RunExperts(0, xb, routings[0], yb, tokens);
            var y = new float[tokens * hidden];
            dev.CopyToHost(yb, 0, y);
            return (sec * 1e6, perCall, y);
        }

        var generic = Time(new GpuKernelOptions { GeneratedExperts = [] });
        var generated = Time(GpuKernelOptions.Default);
        double distinct = routings.Average(r => r.Experts.AsSpan(0, tokens * topK).ToArray().Distinct().Count());
        return new ExpertPathTiming(generic.Microseconds, generated.Microseconds, generated.GeneratedPerCall,
            GpuBench.MaxRelativeError(generic.Y, generated.Y, 1e-30), distinct, weights.Layers[0].Experts[0].ByteLength);
    }
}
