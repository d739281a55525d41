using Daop.Engine.Device.Gpu;
using Daop.Engine.Model;
using Daop.Engine.Model.Layers;
using Daop.Engine.Placement;
using Daop.Engine.Schedule;
using Daop.Kernels;
using Daop.Kernels.Generated;
using Daop.Kernels.Gpu;
using Daop.Tests.Generators;
using Daop.Tests.Kernels;
using ILGPU.Runtime;

namespace Daop.Tests.Gpu;

/// <summary>
/// The engine's expert path (<see cref="GpuExpertScheduler"/>, <see cref="GpuDevice.Ffn"/>) on a shape a generator
/// config names (tests/Daop.Tests/Generators/Configs/odd-80x136.json, compiled at test time by
/// <see cref="OddShapeAssembly"/>): with the shape's generated kernels in the kernel set, the row-kernel launches run
/// them (counted by <see cref="GpuKernels.GeneratedLaunches"/>), batched launches stay generic, and the outputs equal
/// the generic kernels' within the expert tests' tolerance (2e-5 · M, <see cref="GpuExpertTests"/>).
/// </summary>
[Collection(GpuCollection.Name)]
public class GpuGeneratedExpertTests(GpuFixture gpu)
{
    static GeneratedGpuExpert Odd(int hidden, int inter, DType type) =>
        OddShapeAssembly.Gpu(hidden, inter, type switch { DType.BF16 => "Bf16", DType.F16 => "F16", _ => "F32" });

    /// <summary>
    /// 1–2 tokens: gate/up + fused down-and-combine, both generated (2 tokens over 3 experts puts two positions in a
    /// tile). 3 tokens: gate/up + grouped down row kernels, generated, then the generic combine. 9 tokens over 3
    /// experts: batched tiles, no generated launch.
    /// </summary>
    [Theory]
    [InlineData(80, 136, DType.BF16, 1, 2, 4, 1, 2)]
    [InlineData(80, 136, DType.BF16, 1, 2, 4, 4, 2)]
    [InlineData(80, 136, DType.BF16, 2, 2, 3, 1, 2)]
    [InlineData(80, 136, DType.BF16, 3, 2, 3, 2, 2)]
    [InlineData(80, 136, DType.BF16, 9, 2, 3, 1, 0)]
    [InlineData(36, 20, DType.F32, 1, 2, 3, 1, 2)]
    [InlineData(64, 128, DType.F32, 3, 2, 4, 4, 2)]
    public void SchedulerRunsTheGeneratedKernelsAndMatchesGeneric(int hidden, int inter, DType type, int tokens, int topK, int numExperts,
        int lanes, int generatedLaunches)
    {
        var experts = Enumerable.Range(0, numExperts).Select(e => new GpuExpertTests.Expert(type, hidden, inter, 200 + 10 * e)).ToArray();
        try
        {
            var weights = GpuExpertTests.OneLayer(experts.Select(e => e.W).ToArray());
            var routing = Routing(tokens, topK, numExperts);
            var x = NativeWeights.Floats(tokens * hidden, 5);
            float[] Run(GpuKernelOptions options, out long launches, out long generated)
            {
                using var dev = new GpuDevice(gpu.Accelerator, options);
                long gen0 = dev.Kernels.GeneratedLaunches;
                var sched = new GpuExpertScheduler(weights, hidden, numExperts, inter, dev);
                var xb = dev.Allocate(tokens * hidden);
                var yb = dev.Allocate(tokens * hidden);
                ((GpuBuffer)xb).View.SubView(0, x.Length).CopyFromCPU(dev.Stream, x);
                sched.RunExperts(0, xb, routing, yb, tokens);
                var y = new float[tokens * hidden];
                dev.CopyToHost(yb, 0, y);
                launches = dev.Launches;
                generated = dev.Kernels.GeneratedLaunches - gen0;
                return y;
            }
            var kernel = Odd(hidden, inter, type);
            var withGenerated = new GpuKernelOptions { Lanes = lanes, GeneratedExperts = [kernel] };
            Assert.Same(kernel, GpuKernels.For(gpu.Accelerator, withGenerated).GeneratedExpertFor(hidden, inter, type));
            var got = Run(withGenerated, out long launches, out long generated);
            var generic = Run(new GpuKernelOptions { Lanes = lanes, GeneratedExperts = [] }, out long genericLaunches, out long genericGenerated);
            Assert.Equal(generatedLaunches, generated);
            Assert.Equal(0, genericGenerated);
            Assert.Equal(genericLaunches, launches);

            string what = $"{type} {hidden}x{inter} T={tokens} K={topK} E={numExperts} lanes={lanes}";
            for (int t = 0; t < tokens; t++)
            {
                var want = new double[hidden];
                var mag = new double[hidden];
                for (int j = 0; j < topK; j++)
                {
                    float w = routing.Weights[t * topK + j];
                    var (y, m) = experts[routing.Experts[t * topK + j]].Reference(x.AsSpan(t * hidden, hidden));
                    for (int i = 0; i < hidden; i++) { want[i] += w * y[i]; mag[i] += Math.Abs(w) * m[i]; }
                }
                var row = got.AsSpan(t * hidden, hidden).ToArray();
                GpuExpertTests.AssertClose(want, mag, row, $"{what} token {t} vs reference");
                var genericRow = generic.Skip(t * hidden).Take(hidden).Select(v => (double)v).ToArray();
                GpuExpertTests.AssertClose(genericRow, mag, row, $"{what} token {t} vs generic");
            }
        }
        finally
        {
            foreach (var e in experts) e.Dispose();
        }
    }

    /// <summary>The dense FFN (a shared expert): up to 4 tokens run the generated kernels in their dense mode, more the batched ones.</summary>
    [Theory]
    [InlineData(1, 1, 2)]
    [InlineData(3, 4, 2)]
    [InlineData(5, 1, 0)]
    public void DenseFfnRunsTheGeneratedKernelsAndMatchesGeneric(int tokens, int lanes, int generatedLaunches)
    {
        const int hidden = 80, inter = 136;
        using var ex = new GpuExpertTests.Expert(DType.BF16, hidden, inter, 7);
        var x = NativeWeights.Floats(tokens * hidden, 3);
        float[] Run(GpuKernelOptions options, out long generated)
        {
            using var dev = new GpuDevice(gpu.Accelerator, options);
            long gen0 = dev.Kernels.GeneratedLaunches;
            var xb = dev.Allocate(tokens * hidden);
            var yb = dev.Allocate(tokens * hidden);
            ((GpuBuffer)xb).View.SubView(0, x.Length).CopyFromCPU(dev.Stream, x);
            dev.Ffn(ex.W, xb, yb, tokens);
            var y = new float[tokens * hidden];
            dev.CopyToHost(yb, 0, y);
            generated = dev.Kernels.GeneratedLaunches - gen0;
            return y;
        }
        var got = Run(new GpuKernelOptions { Lanes = lanes, GeneratedExperts = [Odd(hidden, inter, DType.BF16)] }, out long generated);
        var generic = Run(new GpuKernelOptions { Lanes = lanes, GeneratedExperts = [] }, out _);
        Assert.Equal(generatedLaunches, generated);
        for (int t = 0; t < tokens; t++)
        {
            var (want, mag) = ex.Reference(x.AsSpan(t * hidden, hidden));
            var row = got.AsSpan(t * hidden, hidden).ToArray();
            GpuExpertTests.AssertClose(want, mag, row, $"T={tokens} lanes={lanes} token {t} vs reference");
            GpuExpertTests.AssertClose(generic.Skip(t * hidden).Take(hidden).Select(v => (double)v).ToArray(), mag, row,
                $"T={tokens} lanes={lanes} token {t} vs generic");
        }
    }

    /// <summary>
    /// The embedded tiny-mixtral-code (256 × 256 bf16, a built-in generated shape) through both GPU expert schedulers:
    /// the default kernel set runs generated launches, and its logits equal the generic set's and the CPU path's within
    /// the goldens' 1e-4 · max(1, max |ref|). Offloaded: half the experts in GPU slots, the rest on the CPU (LRU).
    /// </summary>
    [Theory]
    [InlineData("resident")]
    [InlineData("offloaded")]
    public void DefaultModelRunsGeneratedKernelsOnBothSchedulers(string scheduler)
    {
        string dir = TestPaths.DefaultModel;
        int[] tokens = [1, 5, 9, 200, 17, 33, 4000, 12];
        const int prefix = 6;
        float[][] Run(MoeModel m)
        {
            int v = m.Config.VocabSize;
            var cache = m.NewCache();
            var steps = new float[tokens.Length - prefix + 1][];
            steps[0] = new float[v];
            m.Forward(tokens.AsSpan(0, prefix), 0, cache, steps[0]);
            for (int i = prefix; i < tokens.Length; i++)
            {
                steps[i - prefix + 1] = new float[v];
                m.Forward(tokens.AsSpan(i, 1), i, cache, steps[i - prefix + 1]);
            }
            return steps;
        }
        (float[][] Logits, long Generated) RunGpu(GpuKernelOptions options)
        {
            using var m = MoeModel.Load(dir, new ModelOptions
            {
                ContextLength = 16,
                MaxChunkTokens = 4,
                Device = _ => new GpuDevice(gpu.Accelerator, options),
                Experts = scheduler == "resident"
                    ? (m, d) => new GpuExpertScheduler(m, d)
                    : (m, d) => OffloadedExpertScheduler.FromRatio(m, d, new LruPolicy(prefetch: false), 0.5),
            });
            var k = ((GpuDevice)m.Device).Kernels;
            long g0 = k.GeneratedLaunches;
            var logits = Run(m);
            return (logits, k.GeneratedLaunches - g0);
        }
        using var cpu = MoeModel.Load(dir, new ModelOptions { ContextLength = 16 });
        var want = Run(cpu);
        var generated = RunGpu(GpuKernelOptions.Default);
        var generic = RunGpu(new GpuKernelOptions { GeneratedExperts = [] });
        Assert.True(generated.Generated > 0, "no generated launch");
        Assert.Equal(0, generic.Generated);
        for (int i = 0; i < want.Length; i++)
        {
            LogitsAssert.Close(want[i], generated.Logits[i], $"{scheduler} step {i} generated vs CPU");
            LogitsAssert.Close(generic.Logits[i], generated.Logits[i], $"{scheduler} step {i} generated vs generic");
        }
    }

    [Fact]
    public void TheKernelSetSaysWhichShapesRunGeneratedKernels()
    {
        var builtIn = GeneratedIlgpuKernels.Find(256, 256, DType.BF16);
        Assert.NotNull(builtIn);
        Assert.True(builtIn.HasRoutedKernels);
        var defaults = GpuKernels.For(gpu.Accelerator);
        Assert.Same(builtIn, defaults.GeneratedExpertFor(256, 256, DType.BF16)); // the embedded tiny-mixtral-code's shape
        Assert.Null(defaults.GeneratedExpertFor(80, 136, DType.BF16));           // named only by a test config
        Assert.Null(defaults.GeneratedExpertFor(256, 256, DType.F16));
        Assert.Null(GpuKernels.For(gpu.Accelerator, new GpuKernelOptions { GeneratedExperts = [] }).GeneratedExpertFor(256, 256, DType.BF16));

        // 33 × 17 rows are not whole Float4s: no routed kernels, so the generic kernels run even when it is listed.
        var odd = Odd(33, 17, DType.F16);
        Assert.False(odd.HasRoutedKernels);
        Assert.Empty(odd.RoutedMethods);
        Assert.Null(GpuKernels.For(gpu.Accelerator, new GpuKernelOptions { GeneratedExperts = [odd] }).GeneratedExpertFor(33, 17, DType.F16));
    }

    static RoutingBatch Routing(int tokens, int topK, int numExperts)
    {
        var rng = new Random(tokens * 13 + topK);
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
        return routing;
    }
}
