using System.Diagnostics;
using System.Numerics.Tensors;
using Daop.Engine.Device.Gpu;
using Daop.Engine.Generate;
using Daop.Engine.Load.Config;
using Daop.Engine.Load.Safetensors;
using Daop.Engine.Model;
using Daop.Engine.Model.Layers;
using Daop.Engine.Schedule;
using Xunit.Abstractions;

namespace Daop.Tests.Gpu;

/// <summary>
/// End to end on the ILGPU CPU accelerator: every fixture through <see cref="GpuDevice"/> and
/// <see cref="GpuExpertScheduler"/> against the CPU path and transformers' logits. A 12-token prefix is prefilled
/// in chunks of 8 (so the second chunk attends over cached and fresh keys, and routed experts take the grouped
/// path), then 4 tokens are decoded one at a time through the KV cache (the fused down-and-combine path).
/// Tolerance as in the goldens: max |gpu − ref| ≤ 1e-4 · max(1, max |ref|).
/// </summary>
[Collection(GpuCollection.Name)]
public class GpuModelTests(GpuFixture gpu, ITestOutputHelper output)
{
    const int Prefix = 12, Decode = 4, GreedyTokens = 6;

    MoeModel LoadGpu(string dir) => gpu.LoadModel(dir);

    [Theory]
    [MemberData(nameof(TestPaths.HfFixtures), MemberType = typeof(TestPaths))]
    public void LogitsMatchCpuAndTransformers(string fixture)
    {
        var sw = Stopwatch.StartNew();
        string dir = TestPaths.Fixture(fixture);
        using var reference = TensorStore.OpenFile(Path.Combine(dir, "reference.safetensors"));
        using var cpu = MoeModel.Load(dir, new ModelOptions { ContextLength = 64 });
        using var model = LoadGpu(dir);
        var dev = (GpuDevice)model.Device;
        Assert.Equal("ilgpu-cpu", dev.Name);
        var (ids, idShape) = reference.Int64s("input_ids");
        var (refLogits, _) = reference.Floats("logits");
        int len = (int)idShape[1], v = model.Config.VocabSize;
        var tokens = ids.Take(len).Select(x => (int)x).ToArray();

        var gpuCache = model.NewCache();
        var cpuCache = cpu.NewCache();
        var got = new float[Prefix * v];
        var want = new float[Prefix * v];
        model.Forward(tokens.AsSpan(0, Prefix), 0, gpuCache, got, allLogits: true);
        cpu.Forward(tokens.AsSpan(0, Prefix), 0, cpuCache, want, allLogits: true);
        LogitsAssert.Close(want, got, $"{fixture} prefill vs cpu");
        LogitsAssert.Close(refLogits.AsSpan(0, Prefix * v), got, $"{fixture} prefill vs transformers");

        var step = new float[v];
        var cpuStep = new float[v];
        for (int i = 0; i < Decode; i++)
        {
            int pos = Prefix + i;
            long before = dev.Launches, copies = dev.Copies;
            model.Forward(tokens.AsSpan(pos, 1), pos, gpuCache, step);
            long launches = dev.Launches - before;
            copies = dev.Copies - copies;
            cpu.Forward(tokens.AsSpan(pos, 1), pos, cpuCache, cpuStep);
            LogitsAssert.Close(cpuStep, step, $"{fixture} decode {pos} vs cpu");
            LogitsAssert.Close(refLogits.AsSpan(pos * v, v), step, $"{fixture} decode {pos} vs transformers");
            if (i == 0) output.WriteLine($"{fixture}: {launches} launches and {copies} copies per decoded token ({model.Config.NumLayers} layers)");
            // Softmax top-k routers (and top-k softmax: Granite, GPT-OSS) route on the device: the token and the step's
            // position table go up, the last row to the head, the logits come down, and no layer waits for the host (host
            // routing adds the logits down and the work list up per layer).
            if (model.Weights.Layers.All(l => l.Ffn is not MoeBlock m || m.Spec.Router.DeviceRenormalize != null)) Assert.Equal(4, copies);
            else Assert.True(copies > 4, $"{fixture}: {copies} copies: its router runs on the host");
        }
        output.WriteLine($"{fixture}: {dev.AllocatedBytes / 1024} KiB on device, {sw.ElapsedMilliseconds} ms");
    }

    /// <summary>The same with teams of 4 lanes (the warp width here): every shuffle reduction and the lane-parallel attention.</summary>
    [Theory]
    [InlineData("mixtral-odd")]
    [InlineData("qwen2moe-tiny")]
    public void LogitsMatchWithWarpWideTeams(string fixture) =>
        gpu.WithLanes(gpu.Accelerator.WarpSize, gpu.Accelerator.WarpSize, () => LogitsMatchCpuAndTransformers(fixture));

    [Theory]
    [MemberData(nameof(TestPaths.HfFixtures), MemberType = typeof(TestPaths))]
    public void GreedyContinuationMatchesCpu(string fixture)
    {
        string dir = TestPaths.Fixture(fixture);
        using var reference = TensorStore.OpenFile(Path.Combine(dir, "reference.safetensors"));
        using var cpu = MoeModel.Load(dir, new ModelOptions { ContextLength = 64 });
        using var model = LoadGpu(dir);
        var (prompts, pShape) = reference.Int64s("greedy_prompt_ids");
        var (expected, _) = reference.Int64s("greedy_new_ids");
        var prompt = prompts.Take((int)pShape[1]).Select(x => (int)x).ToArray();
        var want = Model.GoldenTests.Greedy(cpu, prompt, GreedyTokens);
        var got = Model.GoldenTests.Greedy(model, prompt, GreedyTokens);
        Assert.Equal(want, got);
        Assert.Equal(expected.Take(GreedyTokens).Select(x => (int)x), got);
    }

    /// <summary>
    /// Decode steps through <see cref="GpuDevice.RunStep"/> (the path CUDA captures as a graph with DAOP_CUDA_GRAPHS=1; here
    /// the step runs directly): the same logits as plain steps, one step per decoded token, and none where a layer routes
    /// on the host (a sigmoid router, or host routing).
    /// </summary>
    /// <summary>
    /// The chunks of a long prompt through a model whose layers never wait for the host (dense: no router) queue one
    /// after another; the page-locked token and table arrays a queued copy still reads are written again only after the
    /// host waited (one wait per chunk after the first, none in decode, whose logits are read each step). An MoE model's
    /// prefill waits for its router each layer, so its copies have run before the next chunk.
    /// </summary>
    [Theory]
    [InlineData("llama-odd", 2)]
    [InlineData("mixtral-tiny", 0)]
    public void PromptChunksDoNotOverwriteQueuedCopies(string fixture, int waits)
    {
        string dir = TestPaths.Fixture(fixture);
        using var model = MoeModel.Load(dir, new ModelOptions
        {
            ContextLength = 64, MaxChunkTokens = 8, Device = _ => gpu.NewDevice(), Experts = (m, d) => new GpuExpertScheduler(m, d),
        });
        using var cpu = MoeModel.Load(dir, new ModelOptions { ContextLength = 64, MaxChunkTokens = 8 });
        int[] prompt = [.. Enumerable.Range(0, 20).Select(i => (7 * i + 3) % 50)];   // 3 chunks of at most 8
        var v = model.Config.VocabSize;
        var (g, c) = (new float[v], new float[v]);
        var (cg, cc) = (model.NewCache(), cpu.NewCache());
        model.Forward(prompt, 0, cg, g);
        cpu.Forward(prompt, 0, cc, c);
        var dev = (GpuDevice)model.Device;
        Assert.Equal(waits, dev.StagingWaits);
        for (int i = 0; i < 3; i++)
        {
            LogitsAssert.Close(c, g, $"{fixture} position {prompt.Length + i}");
            int next = System.Numerics.Tensors.TensorPrimitives.IndexOfMax(c);
            model.Forward([next], prompt.Length + i, cg, g);
            cpu.Forward([next], prompt.Length + i, cc, c);
        }
        Assert.Equal(waits, dev.StagingWaits);
    }

    [Theory]
    [InlineData("qwen3moe-tiny", true)]
    [InlineData("mixtral-odd", true)]
    [InlineData("gptoss-tiny", true)]
    [InlineData("deepseekv3-tiny", false)]
    public void DecodeStepsThroughRunStepMatchPlainSteps(string fixture, bool routesOnDevice)
    {
        string dir = TestPaths.Fixture(fixture);
        using var plain = LoadGpu(dir);
        using var stepped = MoeModel.Load(dir, new ModelOptions
        {
            ContextLength = 64, MaxChunkTokens = 8, Device = _ => new GpuDevice(gpu.Accelerator, gpu.Kernels.Options) { StepGraphs = true },
            Experts = (m, d) => new GpuExpertScheduler(m, d),
        });
        int[] prompt = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3];
        var v = plain.Config.VocabSize;
        var (a, b) = (new float[v], new float[v]);
        var (ca, cb) = (plain.NewCache(), stepped.NewCache());
        plain.Forward(prompt, 0, ca, a);
        stepped.Forward(prompt, 0, cb, b);
        Assert.Equal(0, ((GpuDevice)stepped.Device).StepsRun); // prompts are not steps
        for (int i = 0; i < 4; i++)
        {
            Assert.Equal(a, b);
            int next = System.Numerics.Tensors.TensorPrimitives.IndexOfMax(a);
            plain.Forward([next], prompt.Length + i, ca, a);
            stepped.Forward([next], prompt.Length + i, cb, b);
        }
        Assert.Equal(a, b);
        Assert.Equal(routesOnDevice ? 4 : 0, ((GpuDevice)stepped.Device).StepsRun);
    }

    /// <summary>The load-time warm-up compiles by running (kernels launched before any request) and leaves nothing behind.</summary>
    [Fact]
    public void WarmUpAtLoadChangesNoOutput()
    {
        string dir = TestPaths.Fixture("qwen3moe-tiny");
        using var warm = MoeModel.Load(dir, new ModelOptions
        {
            ContextLength = 64, MaxChunkTokens = 8, Device = _ => gpu.NewDevice(), Experts = (m, d) => new GpuExpertScheduler(m, d), WarmUp = true,
        });
        var dev = (GpuDevice)warm.Device;
        Assert.True(dev.Launches > 2 * warm.Config.NumLayers, $"{dev.Launches} launches at load");
        using var cold = LoadGpu(dir);
        Assert.Equal(0, ((GpuDevice)cold.Device).Launches);
        int[] prompt = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3];
        Assert.Equal(Model.GoldenTests.Greedy(cold, prompt, GreedyTokens), Model.GoldenTests.Greedy(warm, prompt, GreedyTokens));
    }

    [Fact]
    public void RepeatedGenerationsReuseOneKvCache()
    {
        using var model = LoadGpu(TestPaths.Fixture("mixtral-tiny"));
        var device = (GpuDevice)model.Device;
        var gen = new Generator(model);
        var options = new SamplingOptions { MaxNewTokens = 6, StopTokenIds = [] };
        int[] longer = [5, 9, 11, 13, 17, 19, 23, 29, 31, 37], prompt = [3, 17, 42];
        var first = gen.Generate(prompt, options).ToArray();
        gen.Generate(longer, options).ToArray();              // leaves positions past the next prompt filled
        long after = device.AllocatedBytes;                   // (the longer chunk grew the scratch once)
        var again = gen.Generate(prompt, options).ToArray();
        gen.Generate(longer, options).ToArray();
        Assert.Equal(after, device.AllocatedBytes);          // no new KV cache per sequence
        Assert.Equal(first, again);                           // stale positions are never read
        Assert.Equal(new Generator(model).Generate(prompt, options), again);
    }
}
