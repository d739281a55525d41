using Daop.Engine.Device;
using Daop.Engine.Device.Gpu;
using Daop.Engine.Model;
using Daop.Engine.Placement;
using Daop.Engine.Schedule;
using Daop.Tests.Gpu;

namespace Daop.Tests.Model;

/// <summary>
/// <c>MoeModel.ForwardBatch</c>: a step of several sequences, each at its own positions and cache — one decode token
/// each, or decode tokens beside prompt chunks (a chunk first or later in the batch, one ending its prompt, one not) —
/// gives each sequence the logits its own steps give (to fp32 rounding: the batch runs the multi-token kernels) and
/// leaves caches that keep decoding alike; on the CPU and on the GPU path (ILGPU CPU accelerator). Schedulers that
/// keep per-sequence state refuse a batch.
/// </summary>
[Collection(GpuCollection.Name)]
public class ForwardBatchTests(GpuFixture gpu)
{
    const int Steps = 4;

    // Three sequences of different prompt lengths; every step feeds each the same (seeded) token alone and in a batch.
    // The batched caches: one pool (MoeModel.NewCaches, the server's slots), or caches made one by one (a pool each on the GPU).
    static KvCache[] BatchCaches(MoeModel m, bool pooled) => pooled ? m.NewCaches(3) : [m.NewCache(), m.NewCache(), m.NewCache()];

    static void BatchMatchesSequences(MoeModel m, string what, bool pooled = true)
    {
        int v = m.Config.VocabSize;
        var rng = new Random(5);
        int[][] prompts = [.. new[] { 5, 11, 2 }.Select(n => Enumerable.Range(0, n).Select(_ => rng.Next(v)).ToArray())];
        int[][] fed = [.. prompts.Select(_ => Enumerable.Range(0, Steps).Select(_ => rng.Next(v)).ToArray())];
        int b = prompts.Length;
        var alone = prompts.Select(_ => m.NewCache()).ToArray();
        var batched = BatchCaches(m, pooled);
        var logits = new float[v];
        for (int i = 0; i < b; i++)
        {
            m.Forward(prompts[i], 0, alone[i], logits);
            m.Forward(prompts[i], 0, batched[i], logits);
        }
        var batchLogits = new float[b * v];
        for (int s = 0; s < Steps; s++)
        {
            var tokens = fed.Select(f => f[s]).ToArray();
            var positions = prompts.Select(p => p.Length + s).ToArray();
            m.ForwardBatch(tokens, positions, batched, batchLogits);
            for (int i = 0; i < b; i++)
            {
                m.Forward([tokens[i]], positions[i], alone[i], logits);
                var got = batchLogits.AsSpan(i * v, v);
                LogitsAssert.Close(logits, got.ToArray(), $"{what}: sequence {i} step {s}");
                Assert.Equal(Array.IndexOf(logits, logits.Max()), got.IndexOf(got.ToArray().Max()));
            }
        }
    }

    // Sequence A (5-token prompt, prefilled alone) decodes while B's 7-token prompt goes in over two steps and C's 2-token
    // prompt in one; then all three decode together. Step 1 is [B's first 4 (no logits), A's token, C's prompt]; step 2
    // [A's token, C's token, B's last 3]: prompt chunks at row 0 and after it.
    static void MixedBatchMatchesSequences(MoeModel m, string what, bool pooled = true)
    {
        int v = m.Config.VocabSize;
        var rng = new Random(9);
        int[] Tokens(int n) => [.. Enumerable.Range(0, n).Select(_ => rng.Next(v))];
        int[] a = Tokens(5 + 4), b = Tokens(7 + 2), c = Tokens(2 + 3); // prompt, then the tokens fed after it
        var alone = new[] { m.NewCache(), m.NewCache(), m.NewCache() };
        var batched = BatchCaches(m, pooled);
        var want = new float[v];
        var got = new float[3 * v];
        m.Forward(a.AsSpan(0, 5), 0, batched[0], want);

        void Same(int seq, int[] tokens, int pos, int n, int row, string step)
        {
            m.Forward(tokens.AsSpan(pos, n), pos, alone[seq], want);
            var g = got.AsSpan(row * v, v);
            LogitsAssert.Close(want, g.ToArray(), $"{what}: sequence {"ABC"[seq]} {step}");
            Assert.Equal(Array.IndexOf(want, want.Max()), g.IndexOf(g.ToArray().Max()));
        }
        m.Forward(a.AsSpan(0, 5), 0, alone[0], want);

        m.ForwardBatch([.. b[..4], a[5], .. c[..2]],
            [new(batched[1], 0, 4, Logits: false), new(batched[0], 5, 1), new(batched[2], 0, 2)], got);
        m.Forward(b.AsSpan(0, 4), 0, alone[1], want);
        Same(0, a, 5, 1, 0, "decode beside two prompts");
        Same(2, c, 0, 2, 1, "whole prompt beside a decode");

        m.ForwardBatch([a[6], c[2], .. b[4..7]],
            [new(batched[0], 6, 1), new(batched[2], 2, 1), new(batched[1], 4, 3)], got);
        Same(0, a, 6, 1, 0, "second decode");
        Same(2, c, 2, 1, 1, "first decode");
        Same(1, b, 4, 3, 2, "prompt's second chunk, after two decodes");

        for (int s = 0; s < 2; s++)
        {
            m.ForwardBatch([a[7 + s], b[7 + s], c[3 + s]], [7 + s, 7 + s, 3 + s], batched, got);
            Same(0, a, 7 + s, 1, 0, $"decode {s} after");
            Same(1, b, 7 + s, 1, 1, $"decode {s} after");
            Same(2, c, 3 + s, 1, 2, $"decode {s} after");
        }
    }

    [Theory]
    [InlineData("mixtral-tiny")]
    [InlineData("qwen2moe-tiny")]
    [InlineData("olmoe-tiny")]
    [InlineData("deepseekv2-tiny")]
    [InlineData("deepseekv3-tiny")]
    [InlineData("gptoss-tiny")]          // sink attention's segment loop, sliding and full layers
    public void EachSequenceGetsItsOwnLogitsOnTheCpu(string fixture)
    {
        using var m = MoeModel.Load(TestPaths.Fixture(fixture), new ModelOptions { ContextLength = 64, MaxChunkTokens = 8 });
        Assert.True(m.Experts.BatchesSequences);
        BatchMatchesSequences(m, fixture);
        MixedBatchMatchesSequences(m, fixture);
    }

    [Theory]
    [InlineData("mixtral-tiny", true)]
    [InlineData("mixtral-tiny", false)]
    [InlineData("gptoss-tiny", true)]          // biased experts: several sequences' decode in one routed launch
    public void EachSequenceGetsItsOwnLogitsOnTheGpuPath(string fixture, bool pooled)
    {
        using var m = MoeModel.Load(TestPaths.Fixture(fixture), new ModelOptions
        {
            ContextLength = 64, MaxChunkTokens = 8, Device = _ => new GpuDevice(gpu.Accelerator),
            Experts = (model, d) => new GpuExpertScheduler(model, d),
        });
        Assert.True(m.Experts.BatchesSequences);
        BatchMatchesSequences(m, $"{fixture} gpu pooled={pooled}", pooled);
        MixedBatchMatchesSequences(m, $"{fixture} gpu pooled={pooled}", pooled);
    }

    /// <summary>
    /// A batched step of sequences whose caches share a pool launches attention once per layer; caches made one by one
    /// take one attention launch per sequence and layer (RoPE is one launch either way).
    /// </summary>
    [Theory]
    [InlineData("mixtral-tiny")]
    [InlineData("gptoss-tiny")]
    public void APooledStepLaunchesAttentionOncePerLayer(string fixture)
    {
        using var m = MoeModel.Load(TestPaths.Fixture(fixture), new ModelOptions
        {
            ContextLength = 64, MaxChunkTokens = 8, Device = _ => new GpuDevice(gpu.Accelerator),
            Experts = (model, d) => new GpuExpertScheduler(model, d),
        });
        var dev = (GpuDevice)m.Device;
        var logits = new float[3 * m.Config.VocabSize];
        long Step(bool pooled)
        {
            var caches = BatchCaches(m, pooled);
            m.ForwardBatch([1, 2, 3], [0, 0, 0], caches, logits);               // first use: uploads, kernel loads
            long before = dev.Launches;
            m.ForwardBatch([4, 5, 6], [1, 1, 1], caches, logits);
            return dev.Launches - before;
        }
        long pooledLaunches = Step(true), separate = Step(false);
        Assert.Equal(2 * m.Config.NumLayers, separate - pooledLaunches);
        BatchMatchesSequences(m, $"{fixture} gpu");
    }

    /// <summary>Multi-head latent attention's segments on the GPU path: every segment appends before any attends.</summary>
    [Fact]
    public void EachSequenceGetsItsOwnLogitsOnTheGpuPathWithLatentAttention()
    {
        using var m = MoeModel.Load(TestPaths.Fixture("deepseekv3-tiny"), new ModelOptions
        {
            ContextLength = 64, MaxChunkTokens = 8, Device = _ => new GpuDevice(gpu.Accelerator),
            Experts = (model, d) => new GpuExpertScheduler(model, d),
        });
        BatchMatchesSequences(m, "deepseekv3-tiny gpu");
        MixedBatchMatchesSequences(m, "deepseekv3-tiny gpu");
    }

    /// <summary>Placement schedulers batch too (exact policies: the logits do not depend on where experts run).</summary>
    [Theory]
    [InlineData("static-cpu")]
    [InlineData("lru-on-demand")]
    [InlineData("daop-exact-drift")]
    public void PlacedExpertsBatchOnTheCpuStandInAndTheOffloadedGpuPath(string policy)
    {
        IPlacementPolicy Policy() => policy switch
        {
            "static-cpu" => new StaticPolicy(),
            "lru-on-demand" => new LruPolicy(prefetch: false),
            _ => new DaopPolicy(approximate: false, driftWindow: 2),
        };
        using (var cpu = MoeModel.Load(TestPaths.Fixture("mixtral-tiny"), new ModelOptions
        {
            ContextLength = 64, MaxChunkTokens = 8, Experts = (model, _) => CpuStandInScheduler.FromRatio(model, Policy(), 0.5),
        }))
        {
            Assert.True(cpu.Experts.BatchesSequences);
            BatchMatchesSequences(cpu, $"{policy} cpu stand-in");
            MixedBatchMatchesSequences(cpu, $"{policy} cpu stand-in");
            var s = ((CpuStandInScheduler)cpu.Experts).Stats;
            Assert.True(s.GpuExpertRuns > 0 && s.CpuExpertRuns + s.Transfers > 0, s.ToString()); // placement was at work
        }
        using var gpuModel = MoeModel.Load(TestPaths.Fixture("mixtral-tiny"), new ModelOptions
        {
            ContextLength = 64, MaxChunkTokens = 8, Device = _ => new GpuDevice(gpu.Accelerator),
            Experts = (model, d) => OffloadedExpertScheduler.FromRatio(model, d, Policy(), 0.5),
        });
        var g = (OffloadedExpertScheduler)gpuModel.Experts;
        Assert.True(g.BatchesSequences);
        BatchMatchesSequences(gpuModel, $"{policy} offloaded");
        MixedBatchMatchesSequences(gpuModel, $"{policy} offloaded");
        g.Synchronize();
        g.CheckInvariants();
    }

    /// <summary>A VRAM budget for three parallel sequences holds their three KV caches: the device never exceeds it.</summary>
    [Fact]
    public void AVramBudgetCountsEverySequencesCache()
    {
        long vram = 0, dense = 0;
        using var m = MoeModel.Load(TestPaths.Fixture("mixtral-tiny"), new ModelOptions
        {
            ContextLength = 64, MaxChunkTokens = 8, Device = _ => new GpuDevice(gpu.Accelerator),
            Experts = (model, d) =>
            {
                dense = OffloadBudget.DenseBytes(model, 8, sequences: 3);
                vram = dense + 4 * ExpertLayout.Of(model.Weights).ExpertBytes + 100;
                return OffloadedExpertScheduler.FromVramBudget(model, d, new LruPolicy(prefetch: false), vram, 8, sequences: 3);
            },
        });
        var s = (OffloadedExpertScheduler)m.Experts;
        Assert.True(dense > OffloadBudget.DenseBytes(m, 8, sequences: 1));
        int v = m.Config.VocabSize;
        var caches = new[] { m.NewCache(), m.NewCache(), m.NewCache() };
        var logits = new float[3 * v];
        for (int i = 0; i < 3; i++) m.Forward([1 + i, 2, 3], 0, caches[i], logits.AsSpan(0, v));
        for (int step = 0; step < Steps; step++)
        {
            m.ForwardBatch([4 + step, 5, 6], [3 + step, 3 + step, 3 + step], caches, logits);
            s.Synchronize();
            s.CheckInvariants();
            Assert.True(s.TotalBytes <= vram, $"{s.TotalBytes} bytes on the device, budget {vram}");
        }
        Assert.True(s.DenseBytes <= dense, $"dense part {s.DenseBytes} bytes, predicted for three sequences {dense}");
    }

    /// <summary>
    /// <see cref="MoeModel.ExpertReads"/> counts, per MoE layer call, the distinct experts its tokens route to: for a
    /// 6-token prompt the union of each layer's routing as a recorded trace gives it, for one token top-k per layer.
    /// </summary>
    [Fact]
    public void ExpertReadsCountEachLayersDistinctExperts()
    {
        using var m = MoeModel.Load(TestPaths.Fixture("mixtral-tiny"), new ModelOptions { ContextLength = 64, MaxChunkTokens = 8 });
        int[] tokens = [3, 17, 9, 40, 3, 22];
        var trace = RoutingTrace.Record(m, tokens);
        long want = 0;
        for (int l = 0; l < trace.Layers; l++)
            want += Enumerable.Range(0, tokens.Length).SelectMany(t => trace.True(t, l).ToArray()).Distinct().Count();
        Assert.True(want < tokens.Length * trace.Layers * trace.TopK, "the prompt's tokens share experts"); // a union, not a sum
        long before = m.ExpertReads;
        var cache = m.NewCache();
        m.Forward(tokens, 0, cache, new float[tokens.Length * m.Config.VocabSize], allLogits: true);
        Assert.Equal(want, m.ExpertReads - before);
        before = m.ExpertReads;
        m.Forward([5], tokens.Length, cache, new float[m.Config.VocabSize]);
        Assert.Equal(trace.Layers * trace.TopK, m.ExpertReads - before);
    }

    [Fact]
    public void BadBatchesAreRefusedNamingWhatIsWrong()
    {
        using var m = MoeModel.Load(TestPaths.Fixture("mixtral-tiny"), new ModelOptions { ContextLength = 16, MaxChunkTokens = 4 });
        int v = m.Config.VocabSize;
        var caches = new[] { m.NewCache(), m.NewCache() };
        var logits = new float[2 * v];
        Assert.Contains("position 16", Assert.Throws<ArgumentOutOfRangeException>(() => m.ForwardBatch([1, 2], [0, 16], caches, logits)).Message);
        Assert.Contains("one each", Assert.Throws<ArgumentException>(() => m.ForwardBatch([1, 2], [0], caches, logits)).Message);
        Assert.Contains("chunk of 4", Assert.Throws<ArgumentException>(() =>
            m.ForwardBatch([1, 2, 3, 4, 5], [0, 0, 0, 0, 0], [.. Enumerable.Range(0, 5).Select(_ => m.NewCache())], new float[5 * v])).Message);
        var c = caches[0];
        Assert.Contains("share a cache", Assert.Throws<ArgumentException>(() => m.ForwardBatch([1, 2], [new(c, 0, 1), new(c, 1, 1)], logits)).Message);
        Assert.Contains("hold 3 tokens, 2 were given", Assert.Throws<ArgumentException>(() =>
            m.ForwardBatch([1, 2], [new(c, 0, 2), new(caches[1], 0, 1)], logits)).Message);
        Assert.Contains("segment 1: 0 tokens", Assert.Throws<ArgumentOutOfRangeException>(() =>
            m.ForwardBatch([1], [new(c, 0, 1), new(caches[1], 0, 0)], logits)).Message);
        Assert.Contains("position 17", Assert.Throws<ArgumentOutOfRangeException>(() =>
            m.ForwardBatch([1, 2, 3], [new(c, 15, 3)], logits)).Message);
        Assert.Contains("need 2x", Assert.Throws<ArgumentException>(() =>
            m.ForwardBatch([1, 2], [new(c, 0, 1), new(caches[1], 0, 1)], logits.AsSpan(0, v))).Message);
        var trace = RoutingTrace.Record(m, [1, 2, 3]);
        m.UseExperts((model, _) => CpuStandInScheduler.FromRatio(model, new StaticPolicy(), 0.5, routingOverride: new TraceReplay([trace])));
        Assert.False(m.Experts.BatchesSequences);
        Assert.Contains("one sequence at a time", Assert.Throws<NotSupportedException>(() => m.ForwardBatch([1, 2], [0, 0], caches, logits)).Message);
    }
}
