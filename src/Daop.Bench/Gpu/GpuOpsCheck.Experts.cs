using Daop.Engine.Schedule;
using Daop.Engine.Device.Gpu;
using Daop.Engine.Load.Config;
using Daop.Engine.Model;
using Daop.Engine.Model.Layers;
using Daop.Kernels;
using Daop.Kernels.Generated;
using Daop.Kernels.Gpu;
using ILGPU.Runtime;

namespace Daop.Bench.Gpu;

public static partial class GpuOpsCheck
{
    /// <summary>The generated shapes checked: the embedded model's (small), or every one built in.</summary>
    static IEnumerable<(int Hidden, int Inter)> GeneratedShapes(bool small) => small
        ? [(256, 256)]
        : GeneratedIlgpuKernels.All.Where(k => k.Type == DType.BF16 && k.HasRoutedKernels).Select(k => (k.Hidden, k.Inter));

    /// <summary>One random SwiGLU expert in host memory, scaled like trained weights (1/√fan-in); any dtype (<see cref="BenchMatrix"/>).</summary>
    sealed class Expert(DType type, int hidden, int inter, uint seed) : IDisposable
    {
        public readonly BenchMatrix Gate = BenchMatrix.Random(type, inter, hidden, seed, 1f / MathF.Sqrt(hidden));
        public readonly BenchMatrix Up = BenchMatrix.Random(type, inter, hidden, seed + 1, 1f / MathF.Sqrt(hidden));
        public readonly BenchMatrix Down = BenchMatrix.Random(type, hidden, inter, seed + 2, 1f / MathF.Sqrt(inter));
        public ExpertWeights W => new(Gate.W, Up.W, Down.W);

        public void Dispose() { Gate.Dispose(); Up.Dispose(); Down.Dispose(); }

        /// <summary>
        /// Expert(x) in double and each output's error scale M = Σ_c |Wd[r,c]| · (|h_c| + |∂h/∂g|·Σ|x·wg| + |∂h/∂u|·Σ|x·wu|)
        /// (as the GPU expert tests).
        /// </summary>
        public (double[] Y, double[] M) Reference(ReadOnlySpan<float> xs)
        {
            int hidden = Gate.W.Cols, inter = Gate.W.Rows;
            var x = xs.ToArray();
            var h = new double[inter];
            var hm = new double[inter];
            Parallel.For(0, inter, c =>
            {
                var g = Gate.Row(c);
                var u = Up.Row(c);
                double gs = 0, us = 0, mg = 0, mu = 0;
                for (int i = 0; i < hidden; i++)
                {
                    gs += (double)x[i] * g[i]; mg += Math.Abs((double)x[i] * g[i]);
                    us += (double)x[i] * u[i]; mu += Math.Abs((double)x[i] * u[i]);
                }
                double sg = 1 / (1 + Math.Exp(-gs)), silu = gs * sg, dsilu = sg * (1 + gs * (1 - sg));
                h[c] = silu * us;
                hm[c] = Math.Abs(h[c]) + Math.Abs(dsilu * us) * mg + Math.Abs(silu) * mu;
            });
            var y = new double[hidden];
            var m = new double[hidden];
            Parallel.For(0, hidden, r =>
            {
                var d = Down.Row(r);
                double s = 0, a = 0;
                for (int c = 0; c < inter; c++) { s += d[c] * h[c]; a += Math.Abs(d[c]) * hm[c]; }
                y[r] = s;
                m[r] = a;
            });
            return (y, m);
        }
    }

    // Tolerance 2e-5 · M, or 4e-5 · M when batched work runs on the tensor cores (hi/lo split activations).
    static double ExpertRel(GpuKernels k, DType type, int tokens) =>
        k.BatchesOnTensorCores(type) && tokens > GpuExpertScheduler.FusedCombineMaxTokens ? 4e-5 : 2e-5;

    /// <summary>
    /// Routed experts through <see cref="GpuExpertScheduler"/>, top-2 of <paramref name="numExperts"/> at random: 1–2 tokens
    /// take gate/up + fused down-and-combine, more the grouped down + combine (row kernels, or the batched tiles once an
    /// expert has more than 4 positions). Generated kernels run where the kernel set has the shape's.
    /// </summary>
    static GpuOpCheck RoutedExperts(GpuContext acc, GpuKernelOptions options, string label, DType type, int hidden, int inter,
        int[] tokenCounts, int numExperts)
    {
        const int topK = 2;
        using var dev = new GpuDevice(acc, options);
        var generated = dev.Kernels.GeneratedExpertFor(hidden, inter, type) != null ? " generated" : "";
        var worst = new Worst($"experts {Name(type)} {hidden}x{inter}{generated} [{label}]");
        var experts = Enumerable.Range(0, numExperts).Select(e => new Expert(type, hidden, inter, (uint)(100 + 10 * e))).ToArray();
        try
        {
            var sched = new GpuExpertScheduler(OneLayerWeights.Of(experts.Select(e => e.W).ToArray()), hidden, numExperts, inter, dev);
            foreach (int tokens in tokenCounts)
            {
                var rng = new Random(tokens * 7 + numExperts);
                var routing = new RoutingBatch(tokens, topK) { Tokens = tokens };
                for (int t = 0; t < tokens; t++)
                {
                    var pick = Enumerable.Range(0, numExperts).OrderBy(_ => rng.Next()).Take(topK).ToArray();
                    for (int j = 0; j < topK; j++)
                    {
                        routing.Experts[t * topK + j] = pick[j];
                        routing.Weights[t * topK + j] = (float)(0.1 + rng.NextDouble());
                    }
                }
                var x = RandomWeights.Floats(tokens * hidden, (uint)tokens + 5);
                var xb = dev.Allocate(tokens * hidden);
                var yb = dev.Allocate(tokens * hidden);
                ((GpuBuffer)xb).View.SubView(0, x.Length).CopyFromCPU(dev.Stream, x);
                sched.RunExperts(0, xb, routing, yb, tokens);
                var got = new float[tokens * hidden];
                dev.CopyToHost(yb, 0, got);
                double rel = ExpertRel(dev.Kernels, type, tokens);
                var want = new double[tokens * hidden];
                var tol = new double[tokens * hidden];
                for (int t = 0; t < tokens; t++)
                    for (int j = 0; j < topK; j++)
                    {
                        float w = routing.Weights[t * topK + j];
                        var (y, m) = experts[routing.Experts[t * topK + j]].Reference(x.AsSpan(t * hidden, hidden));
                        for (int i = 0; i < hidden; i++) { want[t * hidden + i] += w * y[i]; tol[t * hidden + i] += rel * Math.Abs(w) * m[i]; }
                    }
                worst.Compare($"T={tokens} E={numExperts}", got, want, tol); // x, y freed with the device
            }
        }
        finally
        {
            foreach (var e in experts) e.Dispose();
        }
        return worst.Result;
    }

    /// <summary>A dense FFN (as a shared expert) through <see cref="GpuDevice.Ffn"/>: row kernels up to 4 tokens, batched beyond.</summary>
    static GpuOpCheck DenseFfn(GpuContext acc, GpuKernelOptions options, string label, DType type, int hidden, int inter, int[] tokenCounts)
    {
        using var dev = new GpuDevice(acc, options);
        var generated = dev.Kernels.GeneratedExpertFor(hidden, inter, type) != null ? " generated" : "";
        var worst = new Worst($"dense FFN {Name(type)} {hidden}x{inter}{generated} [{label}]");
        using var ex = new Expert(type, hidden, inter, 41);
        foreach (int tokens in tokenCounts)
        {
            var x = RandomWeights.Floats(tokens * hidden, (uint)tokens + 3);
            var xb = dev.Allocate(tokens * hidden);
            var yb = dev.Allocate(tokens * hidden);
            ((GpuBuffer)xb).View.SubView(0, x.Length).CopyFromCPU(dev.Stream, x);
            dev.Ffn(ex.W, xb, yb, tokens);
            var got = new float[tokens * hidden];
            dev.CopyToHost(yb, 0, got);
            var want = new double[tokens * hidden];
            var tol = new double[tokens * hidden];
            double rel = dev.Kernels.BatchesOnTensorCores(type) && tokens > GpuKernels.RowTokens ? 4e-5 : 2e-5;
            for (int t = 0; t < tokens; t++)
            {
                var (y, m) = ex.Reference(x.AsSpan(t * hidden, hidden));
                y.CopyTo(want, t * hidden);
                for (int i = 0; i < hidden; i++) tol[t * hidden + i] = rel * m[i];
            }
            worst.Compare($"T={tokens}", got, want, tol); // x, y freed with the device
        }
        return worst.Result;
    }

    /// <summary>Each generated expert's own single-token launcher (<see cref="GeneratedGpuExpert.Forward"/>), as <c>bench gpu</c> times it.</summary>
    static GpuOpCheck GeneratedForward(GpuContext acc, bool small)
    {
        var worst = new Worst("generated expert Forward (dense kernels)");
        foreach (var k in GeneratedIlgpuKernels.All)
        {
            if (small && (k.Hidden > 256 || k.Inter > 256)) continue;
            using var ex = new Expert(k.Type, k.Hidden, k.Inter, 61);
            var (gb, gm) = Upload(acc, ex.Gate.W);
            var (ub, um) = Upload(acc, ex.Up.W);
            var (db, dm) = Upload(acc, ex.Down.W);
            using var _g = gb;
            using var _u = ub;
            using var _d = db;
            var x = RandomWeights.Floats(k.Hidden, 5);
            using var xb = Upload(acc, x);
            using var hb = Upload(acc, new float[k.Inter]);
            using var yb = Upload(acc, new float[k.Hidden]);
            k.Forward(acc.DefaultStream, gm, um, dm, xb.View, hb.View, yb.View);
            var got = Read(acc, yb, k.Hidden);
            var (y, m) = ex.Reference(x);
            worst.Compare(k.Name, got, y, m.Select(v => 2e-5 * v).ToArray());
        }
        return worst.Result;
    }
}
