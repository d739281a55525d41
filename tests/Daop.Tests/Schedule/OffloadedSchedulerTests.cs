using System.Collections.Concurrent;
using System.Diagnostics;
using Daop.Engine.Device.Gpu;
using Daop.Engine.Load.Safetensors;
using Daop.Engine.Model;
using Daop.Engine.Placement;
using Daop.Engine.Schedule;
using Daop.Tests.Gpu;
using ILGPU;
using ILGPU.Runtime;
using Xunit.Abstractions;

namespace Daop.Tests.Schedule;

/// <summary>
/// <see cref="OffloadedExpertScheduler"/> end to end on the ILGPU CPU accelerator: a 12-token prefix prefilled in chunks
/// of 8 (grouped kernels, post-prefill counts) then 4 decode steps (fused path, next-layer prediction), with experts split
/// between GPU slots and the CPU by transfer-on-miss LRU, prefetching LRU, the static (run-on-CPU) policy and DAOP
/// (exact mode: CPU on miss, swaps after prefill). Logits must
/// equal the CPU path's within 1e-4 · max(1, max |ref|) — placement never changes what is computed. Budget tests drive
/// random routing through the pool and check its own counters after every step.
/// </summary>
[Collection(GpuCollection.Name)]
public partial class OffloadedSchedulerTests(GpuFixture gpu, ITestOutputHelper output)
{
    const int Prefix = 12, Decode = 4, Chunk = 8, Context = 64;

    static readonly ConcurrentDictionary<string, (int[] Tokens, float[] Prefill, float[][] Steps)> s_reference = new();

    static IPlacementPolicy Policy(string name) => name switch
    {
        "lru" => new LruPolicy(prefetch: false),
        "prefetch" => new LruPolicy(prefetch: true),
        "static" => new StaticPolicy(),
        "daop" => new DaopPolicy(approximate: false),
        "daop-drift" => new DaopPolicy(approximate: false, driftWindow: 2),
        _ => throw new ArgumentException(name),
    };

    public static IEnumerable<object[]> Cases()
    {
        foreach (var f in TestPaths.HfFixtures().Select(o => (string)o[0]))
            foreach (double ratio in new[] { 0.0, 1.0 })
                foreach (var p in new[] { "lru", "static" })
                    yield return [f, ratio, p];
        // gptoss-tiny: biased clamped-SwiGLU experts in the slots, the staging slots and the CPU runner
        foreach (var f in new[] { "mixtral-tiny", "olmoe-tiny", "qwen2moe-tiny", "gptoss-tiny" })
            foreach (double ratio in new[] { 0.25, 0.5 })
                foreach (var p in new[] { "lru", "prefetch", "static" })
                    yield return [f, ratio, p];
        // DAOP (exact mode): misses on the CPU, swaps after each prefill chunk become transfers
        yield return ["mixtral-odd", 0.5, "daop"];
        yield return ["olmoe-tiny", 0.25, "daop"];
        yield return ["gptoss-tiny", 0.25, "daop"];
        yield return ["gptoss-tiny", 0.5, "daop"];
        // ... and with the placement following drift during decode (window 2: swaps within the four decode steps)
        yield return ["mixtral-tiny", 0.25, "daop-drift"];
        yield return ["olmoe-tiny", 0.5, "daop-drift"];
        yield return ["gptoss-tiny", 0.25, "daop-drift"];
    }

    // The CPU path's logits for the fixture's reference prompt: prefill [Prefix, V] and each decode step's [V].
    static (int[] Tokens, float[] Prefill, float[][] Steps) Reference(string fixture) => s_reference.GetOrAdd(fixture, f =>
    {
        string dir = TestPaths.Fixture(f);
        using var reference = TensorStore.OpenFile(Path.Combine(dir, "reference.safetensors"));
        var (ids, shape) = reference.Int64s("input_ids");
        var tokens = ids.Take((int)shape[1]).Select(x => (int)x).ToArray();
        using var cpu = MoeModel.Load(dir, new ModelOptions { ContextLength = Context });
        return Run(cpu, tokens);
    });

    static (int[] Tokens, float[] Prefill, float[][] Steps) Run(MoeModel model, int[] tokens, Action? afterStep = null)
    {
        int v = model.Config.VocabSize;
        var cache = model.NewCache();
        var prefill = new float[Prefix * v];
        model.Forward(tokens.AsSpan(0, Prefix), 0, cache, prefill, allLogits: true);
        afterStep?.Invoke();
        var steps = new float[Decode][];
        for (int i = 0; i < Decode; i++)
        {
            steps[i] = new float[v];
            model.Forward(tokens.AsSpan(Prefix + i, 1), Prefix + i, cache, steps[i]);
            afterStep?.Invoke();
        }
        return (tokens, prefill, steps);
    }

    // The device half: slots, host store, layout.
    static GpuExpertOffload Gpu(OffloadedExpertScheduler s) => (GpuExpertOffload)s.Offload;

    MoeModel LoadOffloaded(string fixture, Func<MoeModel, Daop.Engine.Device.IDevice, OffloadedExpertScheduler> experts) =>
        MoeModel.Load(TestPaths.Fixture(fixture), new ModelOptions
        {
            ContextLength = Context,
            MaxChunkTokens = Chunk,
            Device = _ => new GpuDevice(gpu.Accelerator),
            Experts = experts,
        });

    // Loads the fixture offloaded by `experts`, runs the reference prompt (invariants checked after every step) and
    // asserts its prefill and decode logits are the CPU path's.
    MoeModel RunsLikeTheCpuPath(string fixture, string what, Func<MoeModel, Daop.Engine.Device.IDevice, OffloadedExpertScheduler> experts)
    {
        var want = Reference(fixture);
        var model = LoadOffloaded(fixture, experts);
        try
        {
            var s = (OffloadedExpertScheduler)model.Experts;
            var got = Run(model, want.Tokens, s.CheckInvariants);
            LogitsAssert.Close(want.Prefill, got.Prefill, $"{what} prefill");
            for (int i = 0; i < Decode; i++) LogitsAssert.Close(want.Steps[i], got.Steps[i], $"{what} decode {i}");
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void LogitsMatchCpuPath(string fixture, double ratio, string policy)
    {
        var sw = Stopwatch.StartNew();
        string what = $"{fixture} {policy} @ {ratio}";
        using var model = RunsLikeTheCpuPath(fixture, what, (m, d) => OffloadedExpertScheduler.FromRatio(m, d, Policy(policy), ratio));
        var s = (OffloadedExpertScheduler)model.Experts;

        var c = model.Config;
        var st = s.Stats;
        int moeLayers = c.MoeLayerCount;
        Assert.Equal(Prefix + Decode, st.Tokens);
        Assert.Equal((long)(Prefix + Decode) * c.TopK * moeLayers, st.Activations);
        Assert.Equal(st.Activations, st.Hits + st.Misses);
        Assert.Equal(st.Activations, st.GpuExpertRuns + st.CpuExpertRuns);
        Assert.Equal(st.Transfers * Gpu(s).Layout.ExpertBytes, st.TransferBytes);
        // the pool and, prefill streaming being on by default, its two staging slots (one for a dense model's single FFN)
        Assert.Equal(Math.Min(OffloadedExpertScheduler.StagingSlots, c.NumExperts), Gpu(s).Staging!.Slots);
        Assert.Equal((Gpu(s).Pool.Slots + Gpu(s).Staging!.Slots) * Gpu(s).Layout.ExpertBytes, s.PoolBytes);
        if (ratio == 1)
        {
            Assert.Equal(c.NumExperts * moeLayers, Gpu(s).Pool.Slots);
            Assert.Equal(0, st.Misses);
            Assert.Equal(0, st.Transfers);
            Assert.Equal(0, st.CpuExpertRuns);
            // a prefill chunk of 8 tokens gives some expert more positions than a row tile: batched tiles, as resident
            // (granitemoe-odd's chunks spread too evenly over its 6 experts for batched tiles to pay: ExpertTiles.BatchedTilesPay;
            // GPT-OSS's biased experts take the batched kernels' biased variants)
            if (fixture != "granitemoe-odd") Assert.True(Gpu(s).BatchedWaves > 0, $"{what}: no wave took the batched kernels");
        }
        if (ratio == 0)
        {
            Assert.Equal(0, Gpu(s).Pool.Slots);
            Assert.Equal(0, Gpu(s).Pool.AllocatedBytes);
            Assert.Equal(st.Activations, st.CpuExpertRuns);
            Assert.Equal(0, st.Transfers);
        }
        if (policy == "static") Assert.Equal(0, st.Transfers);
        if (policy is "lru" or "prefetch")
        {
            Assert.Equal(0, st.CpuExpertRuns * (ratio > 0 ? 1 : 0));
            Assert.Equal(st.Misses * (ratio > 0 ? 1 : 0), st.MissTransfers);
        }
        if (policy == "lru") Assert.Equal(0, st.PrefetchTransfers);
        if (policy is "daop" or "daop-drift") Assert.Equal(0, st.MissTransfers + st.PrefetchTransfers);
        if (policy == "daop") Assert.Equal(0, st.RebalanceTransfers);
        if (policy == "daop-drift") Assert.True(st.RebalanceTransfers > 0, "the drift cases are chosen so decode re-places an expert");
        if (policy == "lru" && ratio == 0.25) Assert.True(st.SplitWaves > 0, "a prefill chunk should evict an expert it still has to run");
        if (st.GpuExpertRuns == 0) Assert.Equal(0, st.Waves);
        output.WriteLine($"{what}: {Gpu(s).Pool.Slots} slots; {st}; {sw.ElapsedMilliseconds} ms");
    }

    /// <summary>
    /// Prefill streaming: a chunk's CPU-resident expert with at least two of its tokens runs from a staging slot (two
    /// slots, so a layer that streams more experts reuses them); the logits stay the CPU path's, decode never streams
    /// and the residency is what the policy placed.
    /// </summary>
    [Theory]
    [InlineData("mixtral-tiny", "static", 0.25)]
    [InlineData("olmoe-tiny", "static", 0.0)]
    [InlineData("qwen2moe-tiny", "daop", 0.5)]
    [InlineData("gptoss-tiny", "static", 0.25)]
    public void StreamedPrefillExpertsMatchTheCpuPath(string fixture, string policy, double ratio)
    {
        string what = $"{fixture} {policy} @ {ratio} streamed";
        using var model = RunsLikeTheCpuPath(fixture, what, (m, d) => OffloadedExpertScheduler.FromRatio(m, d, Policy(policy), ratio,
            options: new OffloadOptions { StreamPrefillMinTokens = 2 }));
        var s = (OffloadedExpertScheduler)model.Experts;
        var st = s.Stats;
        var staging = Gpu(s).Staging!;
        Assert.Equal(OffloadedExpertScheduler.StagingSlots, staging.Slots);
        Assert.Equal((Gpu(s).Pool.Slots + staging.Slots) * Gpu(s).Layout.ExpertBytes, s.PoolBytes);
        Assert.True(st.StreamTransfers > OffloadedExpertScheduler.StagingSlots, $"{what}: {st}"); // the staging slots were reused
        Assert.Equal(st.Transfers * Gpu(s).Layout.ExpertBytes, st.TransferBytes);
        Assert.Equal(st.Activations, st.GpuExpertRuns + st.CpuExpertRuns);
        Assert.True(st.StreamedRuns >= 2 * st.StreamTransfers);
        if (policy == "static") Assert.Equal(st.StreamTransfers, st.Transfers);
        // page-locked images are bounded by default: host memory less the experts' own bytes and 8 GiB
        long experts = model.Weights.Layers.Sum(l => l.Experts.Sum(e => e.ByteLength));
        Assert.Equal(Math.Max(0, GC.GetGCMemoryInfo().TotalAvailableMemoryBytes - experts - (8L << 30)), Gpu(s).Store.PinnedBudgetBytes);
        output.WriteLine($"{what}: {st}");
    }

    /// <summary>Staged (padded, pinned) host images as the transfer source, as on CUDA (GPT-OSS's with its biases).</summary>
    [Theory]
    [InlineData("mixtral-odd")]
    [InlineData("gptoss-tiny")]
    public void LogitsMatchWithStagedHostImages(string fixture)
    {
        var want = Reference(fixture);
        using var model = LoadOffloaded(fixture, (m, d) => OffloadedExpertScheduler.FromRatio(m, d, new LruPolicy(true), 0.5,
            options: new OffloadOptions { CopyMode = HostCopyMode.Staged }));
        var s = (OffloadedExpertScheduler)model.Experts;
        var got = Run(model, want.Tokens, s.CheckInvariants);
        LogitsAssert.Close(want.Prefill, got.Prefill, "staged prefill");
        for (int i = 0; i < Decode; i++) LogitsAssert.Close(want.Steps[i], got.Steps[i], $"staged decode {i}");
        Assert.True(s.Stats.Transfers > 0);
        Assert.True(Gpu(s).Store.PinnedBytes > 0);
        Assert.Equal(0, Gpu(s).Store.PinnedBytes % Gpu(s).Layout.ExpertBytes);
    }

    [Theory]
    [InlineData("mixtral-tiny", "lru")]
    [InlineData("mixtral-tiny", "prefetch")]
    [InlineData("olmoe-tiny", "lru")]
    [InlineData("olmoe-tiny", "prefetch")]
    [InlineData("qwen3moe-tiny", "static")]
    public void RandomRoutingNeverOverfillsThePool(string fixture, string policy)
    {
        using var model = LoadOffloaded(fixture, (m, d) => OffloadedExpertScheduler.FromRatio(m, d, Policy(policy), 0.25));
        var s = (OffloadedExpertScheduler)model.Experts;
        var pool = Gpu(s).Pool;
        int v = model.Config.VocabSize, slots = pool.Slots;
        Assert.True(slots > 0 && slots < model.Config.NumExperts * model.Config.NumLayers);
        var rng = new Random(fixture.GetHashCode(StringComparison.Ordinal) ^ policy.Length);
        var cache = model.NewCache();
        var logits = new float[v];
        int pos = 0;
        void Check()
        {
            Assert.True(pool.SlotsInUse <= pool.Slots, $"{pool.SlotsInUse} experts in {pool.Slots} slots");
            for (int l = 0; l < pool.Layers; l++) Assert.True(pool.InUse(l) <= pool.Capacity(l));
            Assert.Equal(pool.Slots * pool.ExpertBytes, pool.AllocatedBytes);
            Assert.Equal(slots, pool.Slots);
            s.CheckInvariants();
        }
        foreach (int n in new[] { 8, 3, 1, 1, 1, 1, 1, 1, 8, 1, 1 })
        {
            var tokens = Enumerable.Range(0, n).Select(_ => rng.Next(v)).ToArray();
            model.Forward(tokens, pos, cache, logits);
            pos += n;
            Check();
            Assert.All(logits, x => Assert.True(float.IsFinite(x)));
        }
        var st = s.Stats;
        Assert.True(st.Misses > 0, "random routing should miss at a 25% cache");
        if (policy != "static") Assert.True(st.Transfers > 0);
        if (policy == "prefetch") Assert.True(st.PrefetchTransfers > 0);
        output.WriteLine($"{fixture} {policy}: {st}");
    }

    [Fact]
    public void InvalidBudgetsGiveClearErrors()
    {
        using var model = LoadOffloaded("mixtral-tiny", (m, d) => OffloadedExpertScheduler.FromRatio(m, d, new StaticPolicy(), 0.5));
        var dev = (GpuDevice)model.Device;
        foreach (double bad in new[] { -0.25, 1.5, double.NaN })
        {
            var ex = Assert.Throws<ArgumentOutOfRangeException>(() => OffloadedExpertScheduler.FromRatio(model, dev, new StaticPolicy(), bad));
            Assert.Contains("expert cache ratio must be in [0, 1]", ex.Message);
        }
        long dense = OffloadBudget.DenseBytes(model, Chunk);
        var tooSmall = Assert.Throws<ArgumentOutOfRangeException>(() =>
            OffloadedExpertScheduler.FromVramBudget(model, dev, new StaticPolicy(), dense - 1, Chunk));
        Assert.Contains("cannot hold the dense part", tooSmall.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => OffloadedExpertScheduler.FromVramBudget(model, dev, new StaticPolicy(), -1, Chunk));
        var neg = Assert.Throws<ArgumentOutOfRangeException>(() => new OffloadedExpertScheduler(model, dev, new StaticPolicy(), [1, -1, 1], null));
        Assert.Contains("layer 1 asks for -1 expert slots", neg.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => new OffloadedExpertScheduler(model, dev, new StaticPolicy(), [9, 0, 0], null));
        Assert.Throws<ArgumentException>(() => new OffloadedExpertScheduler(model, dev, new StaticPolicy(), [1, 1], null));
        Assert.Throws<ArgumentException>(() => OffloadedExpertScheduler.FromRatio(model, new Daop.Engine.Device.Cpu.CpuDevice(), new StaticPolicy(), 0.5));
    }

    /// <summary>
    /// A whole-device budget: the dense part plus 5½ experts gives 5 slots; after prefill and decode the device holds
    /// no more than the budget, the dense part is what <see cref="OffloadBudget.DenseBytes"/> predicted and does not
    /// depend on how many experts are resident (routed experts never go through <see cref="GpuDevice.Matrix"/>).
    /// </summary>
    [Fact]
    public void VramBudgetHoldsWhileRunning()
    {
        var want = Reference("mixtral-tiny");
        long vram = 0, dense = 0;
        using var model = LoadOffloaded("mixtral-tiny", (m, d) =>
        {
            dense = OffloadBudget.DenseBytes(m, Chunk);
            vram = dense + 5 * ExpertLayout.Of(m.Weights).ExpertBytes + 100;
            return OffloadedExpertScheduler.FromVramBudget(m, d, new LruPolicy(false), vram, Chunk);
        });
        var s = (OffloadedExpertScheduler)model.Experts;
        Assert.Equal(5, Gpu(s).Pool.Slots);
        Assert.Null(Gpu(s).Staging); // too small a budget to give two experts' bytes to staging
        Assert.Equal(new[] { 2, 2, 1 }, Enumerable.Range(0, 3).Select(Gpu(s).Pool.Capacity));
        var got = Run(model, want.Tokens, () =>
        {
            s.CheckInvariants();
            Assert.True(s.TotalBytes <= vram, $"{s.TotalBytes} bytes on the device, budget {vram}");
        });
        LogitsAssert.Close(want.Prefill, got.Prefill, "budget prefill");
        Assert.Equal(s.DenseBytes + s.PoolBytes, s.TotalBytes);
        output.WriteLine($"dense predicted {dense}, actual {s.DenseBytes}; pool {s.PoolBytes}; budget {vram}");
        Assert.Equal(dense, s.DenseBytes);

        long denseAll;
        using (var all = LoadOffloaded("mixtral-tiny", (m, d) => OffloadedExpertScheduler.FromRatio(m, d, new StaticPolicy(), 1)))
        {
            Run(all, want.Tokens);
            denseAll = ((OffloadedExpertScheduler)all.Experts).DenseBytes;
        }
        long denseNone;
        using (var none = LoadOffloaded("mixtral-tiny", (m, d) => OffloadedExpertScheduler.FromRatio(m, d, new StaticPolicy(), 0)))
        {
            Run(none, want.Tokens);
            denseNone = ((OffloadedExpertScheduler)none.Experts).DenseBytes;
        }
        Assert.Equal(dense, denseAll);
        Assert.Equal(dense, denseNone);
    }

    /// <summary>A budget of 20 experts beside the dense part streams prefill: 18 slots and the two staging slots fit it.</summary>
    [Fact]
    public void VramBudgetHoldsTheStagingSlots()
    {
        var want = Reference("mixtral-tiny");
        long vram = 0, expert = 0;
        using var model = LoadOffloaded("mixtral-tiny", (m, d) =>
        {
            expert = ExpertLayout.Of(m.Weights).ExpertBytes;
            vram = OffloadBudget.DenseBytes(m, Chunk) + OffloadedExpertScheduler.StreamingMinBudgetExperts * expert + 4 * expert + 100;
            return OffloadedExpertScheduler.FromVramBudget(m, d, new StaticPolicy(), vram, Chunk,
                options: new OffloadOptions { StreamPrefillMinTokens = 2 });
        });
        var s = (OffloadedExpertScheduler)model.Experts;
        Assert.Equal(OffloadedExpertScheduler.StreamingMinBudgetExperts + 4 - OffloadedExpertScheduler.StagingSlots, Gpu(s).Pool.Slots);
        Assert.Equal(OffloadedExpertScheduler.StagingSlots, Gpu(s).Staging!.Slots);
        var got = Run(model, want.Tokens, () => Assert.True(s.TotalBytes <= vram, $"{s.TotalBytes} bytes on the device, budget {vram}"));
        LogitsAssert.Close(want.Prefill, got.Prefill, "budget prefill, streamed");
        Assert.True(s.Stats.StreamTransfers > 0);
        Assert.Equal(s.DenseBytes + s.PoolBytes, s.TotalBytes);
    }

    /// <summary>The prediction hook called from outside (as the forward pass will): it prefetches for the next layer.</summary>
    [Fact]
    public void ExternalPredictionHookPrefetches()
    {
        var want = Reference("mixtral-tiny");
        using var model = LoadOffloaded("mixtral-tiny", (m, d) => OffloadedExpertScheduler.FromRatio(m, d, new LruPolicy(true), 0.25,
            options: new OffloadOptions { PredictNextLayer = false }));
        var s = (OffloadedExpertScheduler)model.Experts;
        var got = Run(model, want.Tokens, s.CheckInvariants);
        Assert.Equal(0, s.Stats.PrefetchTransfers);
        for (int i = 0; i < Decode; i++) LogitsAssert.Close(want.Steps[i], got.Steps[i], $"decode {i}");

        var dev = (GpuDevice)model.Device;
        int hidden = model.Config.HiddenSize;
        var x = (GpuBuffer)dev.Allocate(hidden);
        long before = s.Stats.PrefetchTransfers;
        // a gate input that routes to experts not resident in layer 1: try a few random ones
        var rng = new Random(5);
        for (int tries = 0; tries < 20 && s.Stats.PrefetchTransfers == before; tries++)
        {
            var h = Enumerable.Range(0, hidden).Select(_ => (float)rng.NextDouble() * 4 - 2).ToArray();
            x.View.SubView(0, hidden).CopyFromCPU(dev.Stream, ref h[0], hidden);
            s.OnNextLayerGateInput(0, x, 1);
            s.CheckInvariants();
        }
        Assert.True(s.Stats.PrefetchTransfers > before);
    }
}
