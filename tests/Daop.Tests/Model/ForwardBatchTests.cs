using Daop.Engine.Device.Gpu;
using Daop.Engine.Model;
using Daop.Engine.Schedule;
using Daop.Tests.Gpu;

namespace Daop.Tests.Model;

/// <summary>
/// <see cref="MoeModel.ForwardBatch"/>: a decode step of several sequences, each at its own position and cache, gives
/// each sequence the logits its own single-token step gives (to fp32 rounding: the batch runs the multi-token kernels)
/// and leaves caches that keep decoding alike; on the CPU and on the GPU path (ILGPU CPU accelerator). Schedulers that
/// keep per-sequence state refuse a batch.
/// </summary>
[Collection(GpuCollection.Name)]
public class ForwardBatchTests(GpuFixture gpu)
{
    const int Steps = 4;

    // Three sequences of different prompt lengths; every step feeds each the same (seeded) token alone and in a batch.
    static void BatchMatchesSequences(MoeModel m, string what)
    {
        int v = m.Config.VocabSize;
        var rng = new Random(5);
        int[][] prompts = [.. new[] { 5, 11, 2 }.Select(n => Enumerable.Range(0, n).Select(_ => rng.Next(v)).ToArray())];
        int[][] fed = [.. prompts.Select(_ => Enumerable.Range(0, Steps).Select(_ => rng.Next(v)).ToArray())];
        int b = prompts.Length;
        var alone = prompts.Select(_ => m.NewCache()).ToArray();
        var batched = prompts.Select(_ => m.NewCache()).ToArray();
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

    [Theory]
    [InlineData("mixtral-tiny")]
    [InlineData("qwen2moe-tiny")]
    [InlineData("olmoe-tiny")]
    public void EachSequenceGetsItsOwnLogitsOnTheCpu(string fixture)
    {
        using var m = MoeModel.Load(TestPaths.Fixture(fixture), new ModelOptions { ContextLength = 64, MaxChunkTokens = 8 });
        Assert.True(m.Experts.BatchesSequences);
        BatchMatchesSequences(m, fixture);
    }

    [Fact]
    public void EachSequenceGetsItsOwnLogitsOnTheGpuPath()
    {
        using var m = MoeModel.Load(TestPaths.Fixture("mixtral-tiny"), new ModelOptions
        {
            ContextLength = 64, MaxChunkTokens = 8, Device = _ => new GpuDevice(gpu.Accelerator),
            Experts = (model, d) => new GpuExpertScheduler(model, d),
        });
        Assert.True(m.Experts.BatchesSequences);
        BatchMatchesSequences(m, "mixtral-tiny gpu");
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
        m.UseExperts((model, _) => CpuStandInScheduler.FromRatio(model, new Engine.Placement.StaticPolicy(), 0.5));
        Assert.Contains("one sequence at a time", Assert.Throws<NotSupportedException>(() => m.ForwardBatch([1, 2], [0, 0], caches, logits)).Message);
    }
}
