using Daop.Engine.Device;
using Daop.Engine.Device.Cpu;
using Daop.Engine.Device.Gpu;
using Daop.Engine.Load.Safetensors;
using Daop.Engine.Model;
using Daop.Engine.Model.Layers;
using Daop.Engine.Placement;
using Daop.Engine.Schedule;
using Daop.Kernels;
using Daop.Kernels.Cpu;
using Daop.Kernels.Quant;
using Daop.Tests.Gpu;
using Xunit.Abstractions;

namespace Daop.Tests.Schedule;

/// <summary>
/// Mixed precision on a miss (HOBBIT, <see cref="MissPrecision"/>): the placement driver's rule (decode CPU misses with
/// router weight ≤ W read the low-precision copy; hits, misses above W, loads and prefill keep full precision), the CPU
/// stand-in's numerics against experts recomputed from the dequantized copies, the GPU scheduler on ILGPU's CPU
/// accelerator against the stand-in, the bytes, and bad values.
/// </summary>
[Collection(GpuCollection.Name)]
public class MissPrecisionTests(GpuFixture gpu, ITestOutputHelper output)
{
    const int Prefix = 12, Decode = 6, Chunk = 8, Context = 64;

    static MoeModel LoadCpu(string fixture, Func<MoeModel, IDevice, IExpertScheduler>? experts = null) =>
        MoeModel.Load(TestPaths.Fixture(fixture), new ModelOptions { ContextLength = Context, MaxChunkTokens = Chunk, Experts = experts });

    MoeModel LoadGpu(string fixture, Func<MoeModel, IDevice, IExpertScheduler> experts) =>
        MoeModel.Load(TestPaths.Fixture(fixture), new ModelOptions
        {
            ContextLength = Context, MaxChunkTokens = Chunk, Device = _ => new GpuDevice(gpu.Accelerator), Experts = experts,
        });

    static int[] Tokens(string fixture)
    {
        using var reference = TensorStore.OpenFile(Path.Combine(TestPaths.Fixture(fixture), "reference.safetensors"));
        var (ids, shape) = reference.Int64s("input_ids");
        return ids.Take((int)shape[1]).Select(x => (int)x).ToArray();
    }

    static (float[] Prefill, float[][] Steps) Run(MoeModel model, int[] tokens)
    {
        int v = model.Config.VocabSize;
        var cache = model.NewCache();
        var prefill = new float[Prefix * v];
        model.Forward(tokens.AsSpan(0, Prefix), 0, cache, prefill, allLogits: true);
        var steps = new float[Decode][];
        for (int i = 0; i < Decode; i++)
        {
            steps[i] = new float[v];
            model.Forward(tokens.AsSpan(Prefix + i, 1), Prefix + i, cache, steps[i]);
        }
        return (prefill, steps);
    }

    static IPlacementPolicy Policy(string name) => name switch
    {
        "lru" => new LruPolicy(prefetch: false),
        "static" => new StaticPolicy(),
        "daop-exact" => new DaopPolicy(approximate: false),
        "daop" => new DaopPolicy(approximate: true),
        _ => throw new ArgumentException(name),
    };

    // One decode step (or a prompt chunk of `tokens`) of one layer through a fresh driver: which decisions it makes.
    static (List<PlacementDecision> Decisions, Residency Residency, OffloadStats Stats) Decide(MoeModel m, IPlacementPolicy policy,
        MissPrecision miss, int layer, int[] experts, float[] weights, int tokens)
    {
        var slots = OffloadBudget.SlotsFromRatio(m.Config, 0.25, null);
        var driver = new PlacementDriver(m, policy, slots, null, 1000) { MissPrecision = miss, MissCopySavedBytes = 700 };
        int k = m.Config.TopK;
        var r = new RoutingBatch(tokens, k) { Tokens = tokens };
        experts.CopyTo(r.Experts, 0);
        weights.CopyTo(r.Weights, 0);
        var before = new Residency(driver.Residency.Layers, driver.Residency.Experts, slots);
        for (int e = 0; e < m.Config.NumExperts; e++)
            if (driver.Residency.IsResident(layer, e)) before.Load(layer, e);
        driver.BeginChunk(tokens == 1 ? 5 : 0, tokens);
        driver.BeginLayer(layer, r, tokens);
        var list = driver.DecideActivations(layer, r, tokens).ToArray().ToList();
        return (list, before, driver.Stats);
    }

    /// <summary>
    /// The rule per activation: a resident expert runs on the GPU at full precision whatever its weight; a miss the
    /// policy runs on the CPU reads the low-precision copy exactly when its weight is ≤ W (the bound itself included);
    /// LRU loads its misses (full precision, in a slot); a prompt chunk keeps full precision. Stats count the low runs and
    /// their saved bytes.
    /// </summary>
    [Theory]
    [InlineData("static")]
    [InlineData("daop-exact")]
    public void CpuMissesAtOrBelowTheBoundTakeTheLowPrecisionCopy(string policy)
    {
        using var m = LoadCpu("mixtral-tiny");
        int layer = 0, k = m.Config.TopK, experts = m.Config.NumExperts;
        var miss = new MissPrecision(DType.Q4_0, 0.3f);
        float[] ladder = [0.05f, 0.3f, 0.31f, 0.9f];
        int lowSeen = 0, fullMissSeen = 0, hitSeen = 0;
        for (int first = 0; first < experts; first++)
            foreach (float w in ladder)
            {
                // token's K experts: first, first+1, ... each with weight w (the rule reads each activation's own weight)
                var ids = Enumerable.Range(0, k).Select(j => (first + j) % experts).ToArray();
                var (decisions, before, stats) = Decide(m, Policy(policy), miss, layer, ids, Enumerable.Repeat(w, k).ToArray(), 1);
                foreach (var d in decisions.Where(d => d.Index >= 0))
                {
                    bool resident = before.IsResident(layer, d.Expert);
                    if (resident)
                    {
                        Assert.Equal(PlacementAction.RunOnGpu, d.Action);
                        Assert.False(d.LowPrecision);
                        hitSeen++;
                    }
                    else
                    {
                        Assert.Equal(PlacementAction.RunOnCpu, d.Action);
                        Assert.Equal(w <= 0.3f, d.LowPrecision);
                        if (d.LowPrecision) lowSeen++; else fullMissSeen++;
                    }
                }
                Assert.Equal(decisions.Count(d => d.LowPrecision), stats.LowPrecisionRuns);
                Assert.Equal(700 * stats.LowPrecisionRuns, stats.LowPrecisionBytesSaved);
                Assert.DoesNotContain(decisions, d => d.LowPrecision && d.Action != PlacementAction.RunOnCpu);
            }
        Assert.True(lowSeen > 0 && fullMissSeen > 0 && hitSeen > 0, $"low {lowSeen}, full misses {fullMissSeen}, hits {hitSeen}");
    }

    [Fact]
    public void LoadsAndPromptChunksKeepFullPrecision()
    {
        using var m = LoadCpu("mixtral-tiny");
        int k = m.Config.TopK, experts = m.Config.NumExperts;
        var miss = new MissPrecision(DType.Q4_0, 1f); // every miss qualifies by weight
        for (int first = 0; first < experts; first++)
        {
            var ids = Enumerable.Range(0, k).Select(j => (first + j) % experts).ToArray();
            var (lru, _, lruStats) = Decide(m, Policy("lru"), miss, 0, ids, Enumerable.Repeat(0.1f, k).ToArray(), 1);
            Assert.DoesNotContain(lru, d => d.LowPrecision || d.Action == PlacementAction.RunOnCpu);
            Assert.Equal(0, lruStats.LowPrecisionRuns);
            // a two-token prompt chunk with static placement: CPU misses, all at full precision
            var (chunk, before, chunkStats) = Decide(m, Policy("static"), miss, 0, [.. ids, .. ids], Enumerable.Repeat(0.1f, 2 * k).ToArray(), 2);
            Assert.Contains(chunk, d => d.Action == PlacementAction.RunOnCpu || before.IsResident(0, d.Expert));
            Assert.DoesNotContain(chunk, d => d.LowPrecision);
            Assert.Equal(0, chunkStats.LowPrecisionRuns);
        }
    }

    // The expert FFN recomputed from fp32 weights dequantized from the copy (or the primary), summed with the routing's weights.
    static float[] ReferenceLayer(MoeModel m, MissPrecisionCopies copies, int layer, ReadOnlySpan<float> x, RoutingBatch r, Func<int, bool> low)
    {
        int h = m.Config.HiddenSize, inter = m.Config.ExpertIntermediate;
        var y = new float[h];
        var o = new float[h];
        var scratch = new float[2 * inter];
        for (int k = 0; k < r.TopK; k++)
        {
            int e = r.Experts[k];
            var w = low(k) ? copies.Weights(layer, e) : m.Weights.Layers[layer].Experts[e];
            using var g = Widen(w.Gate);
            using var u = Widen(w.Up);
            using var d = Widen(w.Down);
            ExpertFfn.Forward(g.Matrix, u.Matrix, d.Matrix, x, o, 1, scratch);
            for (int i = 0; i < h; i++) y[i] += r.Weights[k] * o[i];
        }
        return y;
    }

    sealed unsafe class Widened : IDisposable
    {
        public readonly WeightMatrix Matrix;
        readonly byte[] _data;
        public Widened(in WeightMatrix m)
        {
            _data = GC.AllocateUninitializedArray<byte>((int)WeightConvert.ByteLength(m, DType.F32), pinned: true);
            fixed (byte* p = _data)
            {
                WeightConvert.Matrix(m, p, DType.F32);
                Matrix = new WeightMatrix(p, DType.F32, m.Rows, m.Cols);
            }
        }
        public void Dispose() => GC.KeepAlive(_data);
    }

    static Widened Widen(in WeightMatrix m) => new(m);

    /// <summary>
    /// One decode layer call of the stand-in equals the layer recomputed from dequantized weights: the low-precision copy
    /// for exactly the CPU misses with weight ≤ W, the primary weights for the rest; and differs from the all-primary
    /// layer by far more than the tolerance (the copy really is read).
    /// </summary>
    [Theory]
    [InlineData("mixtral-tiny", DType.Q4_0)]
    [InlineData("olmoe-tiny", DType.Q8_0)]
    [InlineData("qwen3moe-tiny", DType.Q4_0)]
    public void StandInDecodeLayerEqualsDequantizedReference(string fixture, DType type)
    {
        using var m = LoadCpu(fixture);
        int h = m.Config.HiddenSize, k = m.Config.TopK, experts = m.Config.NumExperts;
        int layer = Enumerable.Range(0, m.Config.NumLayers).First(m.Config.IsMoe);
        const float W = 0.3f;
        var copies = new MissPrecisionCopies(m.Weights, type);
        var s = CpuStandInScheduler.FromRatio(m, new StaticPolicy(), 0.25, missPrecision: new MissPrecision(type, W));
        var rng = new Random(3);
        var x = new CpuBuffer(h);
        for (int i = 0; i < h; i++) x.Data[i] = (float)(rng.NextDouble() * 2 - 1);
        var y = new CpuBuffer(h);
        double worst = 0, apart = double.MaxValue;
        int lowRuns = 0;
        for (int first = 0; first < experts; first++)
        {
            var r = new RoutingBatch(1, k) { Tokens = 1 };
            for (int j = 0; j < k; j++)
            {
                r.Experts[j] = (first + j) % experts;
                r.Weights[j] = j % 2 == 0 ? 0.2f : 0.45f; // alternately below and above W
            }
            var resident = Enumerable.Range(0, k).Select(j => s.Residency.IsResident(layer, r.Experts[j])).ToArray();
            long lowBefore = s.Stats.LowPrecisionRuns;
            s.BeginChunk(Prefix, 1);
            s.RunExperts(layer, x, r, y, 1);
            int low = Enumerable.Range(0, k).Count(j => !resident[j] && r.Weights[j] <= W);
            Assert.Equal(low, s.Stats.LowPrecisionRuns - lowBefore);
            lowRuns += low;
            var want = ReferenceLayer(m, copies, layer, x.Data, r, j => !resident[j] && r.Weights[j] <= W);
            var exact = ReferenceLayer(m, copies, layer, x.Data, r, _ => false);
            float scale = Math.Max(1, want.Max(Math.Abs));
            double diff = want.Zip(y.Data, (a, b) => (double)Math.Abs(a - b)).Max() / scale;
            worst = Math.Max(worst, diff);
            if (low > 0) apart = Math.Min(apart, want.Zip(exact, (a, b) => (double)Math.Abs(a - b)).Max() / scale);
        }
        output.WriteLine($"{fixture} {type.Name()}: {lowRuns} low runs; max |stand-in − dequantized reference| {worst:E2}, min |low − exact| {apart:E2}");
        Assert.True(lowRuns > 0);
        Assert.True(worst < 2e-3, $"stand-in differs from the dequantized reference by {worst:E2}");
        // q8_0's kernel rounds the activations to 8 bits too, an error of the copy's own size: only q4_0's copy stands far apart
        if (type == DType.Q4_0) Assert.True(apart > 5 * worst, $"the low-precision copy changes the layer by only {apart:E2} (tolerance {worst:E2})");
    }

    /// <summary>
    /// The GPU scheduler (ILGPU CPU accelerator) with the switch makes the stand-in's decisions and computes its logits:
    /// same low-precision runs and bytes saved, prefill identical to the exact model's, decode changed; the device's bytes
    /// are those without the switch (the copies live in host memory only).
    /// </summary>
    [Theory]
    [InlineData("mixtral-tiny", 0.25, "static", DType.Q4_0)]
    [InlineData("olmoe-tiny", 0.5, "daop-exact", DType.Q8_0)]
    [InlineData("gptoss-tiny", 0.25, "static", DType.Q4_0)]
    [InlineData("qwen3moe-tiny", 0.25, "daop", DType.Q4_0)]
    public void GpuSchedulerAgreesWithTheStandIn(string fixture, double ratio, string policy, DType type)
    {
        var miss = new MissPrecision(type, 0.35f);
        var tokens = Tokens(fixture);
        using var exact = LoadCpu(fixture);
        var want = Run(exact, tokens);
        using var cpu = LoadCpu(fixture, (m, _) => CpuStandInScheduler.FromRatio(m, Policy(policy), ratio, missPrecision: miss));
        using var gpuModel = LoadGpu(fixture, (m, d) => OffloadedExpertScheduler.FromRatio(m, d, Policy(policy), ratio,
            options: new OffloadOptions { MissPrecision = miss }));
        using var plain = LoadGpu(fixture, (m, d) => OffloadedExpertScheduler.FromRatio(m, d, Policy(policy), ratio));
        var c = (CpuStandInScheduler)cpu.Experts;
        var g = (OffloadedExpertScheduler)gpuModel.Experts;
        var a = Run(cpu, tokens);
        var b = Run(gpuModel, tokens);
        Run(plain, tokens); // scratch grows on first use: compare the devices' bytes after the same run
        g.Synchronize();
        g.CheckInvariants();
        LogitsAssert.Close(a.Prefill, b.Prefill, $"{fixture} prefill");
        Assert.Equal(want.Prefill, a.Prefill); // prompt chunks keep full precision
        double changed = 0;
        for (int i = 0; i < Decode; i++)
        {
            LogitsAssert.Close(a.Steps[i], b.Steps[i], $"{fixture} decode {i}");
            changed = Math.Max(changed, want.Steps[i].Zip(a.Steps[i], (p, q) => Math.Abs(p - q)).Max());
        }
        var (sc, sg) = (c.Stats, g.Stats);
        Assert.True(sc.LowPrecisionRuns > 0, "some decode misses should take the low-precision copy");
        Assert.True(changed > 0, "the low-precision copy should change the decode logits");
        Assert.Equal(sc.LowPrecisionRuns, sg.LowPrecisionRuns);
        Assert.Equal(sc.LowPrecisionBytesSaved, sg.LowPrecisionBytesSaved);
        Assert.Equal(sc.CpuExpertRuns, sg.CpuExpertRuns);
        Assert.Equal(sc.Hits, sg.Hits);
        Assert.Equal(g.MissCopies!.SavedBytesPerRun * sg.LowPrecisionRuns, sg.LowPrecisionBytesSaved);
        Assert.Equal(((OffloadedExpertScheduler)plain.Experts).TotalBytes, g.TotalBytes);
        Assert.Equal(((OffloadedExpertScheduler)plain.Experts).PoolBytes, g.PoolBytes);
        output.WriteLine($"{fixture} {policy} @ {ratio} {miss}: max |Δ logit| vs exact {changed:E2}; {g.MissCopies}; gpu {sg}");
    }

    /// <summary>
    /// The trace simulator replaying a recorded trace decides what the stand-in decides on the same routing: as many CPU
    /// runs and low-precision runs over the decoded tokens.
    /// </summary>
    [Theory]
    [InlineData("static", 0.25, 0.3f)]
    [InlineData("daop-exact", 0.5, 1f)]
    public void SimulatorMakesTheStandInsDecisions(string policy, double ratio, float maxWeight)
    {
        const string fixture = "mixtral-tiny";
        var tokens = Tokens(fixture)[..(Prefix + Decode)];
        RoutingTrace trace;
        using (var m = LoadCpu(fixture)) trace = RoutingTrace.Record(m, tokens);
        var miss = new MissPrecision(DType.Q4_0, maxWeight);
        var replay = new TraceReplay([trace]);
        // the prompt in one chunk, as the simulator places it (DAOP places by each chunk's counts)
        using var cpu = MoeModel.Load(TestPaths.Fixture(fixture), new ModelOptions
        {
            ContextLength = Context, MaxChunkTokens = Prefix,
            Experts = (m, _) => CpuStandInScheduler.FromRatio(m, Policy(policy), ratio, routingOverride: replay, missPrecision: miss),
        });
        var s = (CpuStandInScheduler)cpu.Experts;
        var cache = cpu.NewCache();
        var logits = new float[cpu.Config.VocabSize];
        cpu.Forward(tokens.AsSpan(0, Prefix), 0, cache, logits);
        var atDecode = s.Stats;
        for (int i = 0; i < Decode - 1; i++) cpu.Forward(tokens.AsSpan(Prefix + i, 1), Prefix + i, cache, logits);
        var decode = s.Stats.Since(atDecode);
        var slots = OffloadBudget.SlotsFromRatio(cpu.Config, ratio, null);
        var sim = TraceSimulator.Run([trace.Take(Prefix + Decode - 1)], Policy(policy), slots,
            new CostModel(10, 5, 20, 40, 0, 1) { LowPrecisionBytesRatio = 0.28 }, Prefix, null, miss);
        Assert.Equal(Decode - 1, sim.DecodeTokens);
        Assert.True(decode.LowPrecisionRuns > 0);
        Assert.Equal(decode.PerToken(decode.CpuExpertRuns), sim.CpuExpertsPerToken, 9);
        Assert.Equal(decode.PerToken(decode.LowPrecisionRuns), sim.LowPrecisionRunsPerToken, 9);
    }

    /// <summary>The copies' bytes are their rows in the low type; a low-precision run saves the primary's bytes less the copy's.</summary>
    [Theory]
    [InlineData("mixtral-tiny", DType.Q4_0)]
    [InlineData("mixtral-odd", DType.Q4_0)] // partial blocks
    [InlineData("gptoss-tiny", DType.Q8_0)]
    [InlineData("olmoe-tiny", DType.MXFP4)]
    public void CopiesCountTheirBytes(string fixture, DType type)
    {
        using var m = LoadCpu(fixture);
        var copies = new MissPrecisionCopies(m.Weights, type);
        long want = 0, primary = 0;
        for (int l = 0; l < m.Weights.Layers.Length; l++)
            for (int e = 0; e < m.Weights.Layers[l].Experts.Length; e++)
            {
                var w = m.Weights.Layers[l].Experts[e];
                var cw = copies.Weights(l, e);
                Assert.Equal((type, type, type), (cw.Gate.Type, cw.Up.Type, cw.Down.Type));
                Assert.Equal((w.Gate.Rows, w.Gate.Cols, w.Down.Rows, w.Down.Cols), (cw.Gate.Rows, cw.Gate.Cols, cw.Down.Rows, cw.Down.Cols));
                want += w.Gate.Rows * type.RowBytes(w.Gate.Cols) + w.Up.Rows * type.RowBytes(w.Up.Cols) + w.Down.Rows * type.RowBytes(w.Down.Cols);
                primary += w.ByteLength;
                Assert.Equal(w.Bias.HasValue, cw.Bias.HasValue);
            }
        Assert.Equal(want, copies.Bytes);
        Assert.Equal(primary, copies.PrimaryBytes);
        Assert.True(copies.Bytes < copies.PrimaryBytes);
        var first = m.Weights.Layers.First(l => l.Experts.Length > 0).Experts[0];
        Assert.Equal(first.ByteLength - copies.Weights(Array.FindIndex(m.Weights.Layers, l => l.Experts.Length > 0), 0).ByteLength, copies.SavedBytesPerRun);
        output.WriteLine(copies.ToString());
    }

    [Fact]
    public void BadValuesAreRefusedNamingTheOption()
    {
        foreach (float w in new[] { -0.1f, 1.5f, float.NaN, float.PositiveInfinity })
        {
            var e = Assert.Throws<ArgumentOutOfRangeException>(() => new MissPrecision(DType.Q4_0, w));
            Assert.Contains("--miss-max-weight", e.Message);
        }
        foreach (var t in new[] { DType.BF16, DType.F32, DType.Q4_K })
        {
            var e = Assert.Throws<ArgumentOutOfRangeException>(() => new MissPrecision(t, 0.2f));
            Assert.Contains("--miss-dtype", e.Message);
            Assert.Contains(t.Name(), e.Message);
        }
        // experts already quantized: a copy would quantize their rounding again
        using var q8 = MoeModel.Load(TestPaths.Fixture("mixtral-tiny"), new ModelOptions { ContextLength = Context, ExpertDType = DType.Q8_0 });
        var ex = Assert.Throws<ArgumentException>(() => new MissPrecisionCopies(q8.Weights, DType.Q4_0));
        Assert.Contains("--miss-dtype", ex.Message);
        Assert.Contains("q8_0", ex.Message);
        Assert.Throws<ArgumentException>(() => CpuStandInScheduler.FromRatio(q8, new StaticPolicy(), 0.5, missPrecision: new MissPrecision(DType.Q4_0, 0.2f)));
        using var m = LoadCpu("mixtral-tiny");
        Assert.Throws<ArgumentOutOfRangeException>(() => new PlacementDriver(m, new StaticPolicy(), OffloadBudget.SlotsFromRatio(m.Config, 0.5, null), null, 0)
        {
            MissCopySavedBytes = -1,
        });
        Assert.Throws<ArgumentOutOfRangeException>(() => new CostModel(1, 1, 1, 1, 1, 1) { LowPrecisionBytesRatio = 0 });
    }
}
