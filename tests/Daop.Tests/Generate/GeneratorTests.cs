using Daop.Engine.Generate;
using Daop.Engine.Model;
using Daop.Tests.Model;

namespace Daop.Tests.Generate;

public class GeneratorTests
{
    static readonly int[] Prompt = [3, 17, 42, 99, 7];

    [Fact]
    public void GreedyGeneratorEqualsManualArgMaxLoop()
    {
        using var model = MoeModel.Load(TestPaths.Fixture("olmoe-tiny"));
        var got = new Generator(model).Generate(Prompt, new SamplingOptions { MaxNewTokens = 12, StopTokenIds = [] }).ToArray();
        Assert.Equal(GoldenTests.Greedy(model, Prompt, 12), got);
    }

    [Fact]
    public void SamplingIsReproducibleForASeedAndVariesAcrossSeeds()
    {
        using var model = MoeModel.Load(TestPaths.Fixture("mixtral-tiny"));
        var gen = new Generator(model);
        SamplingOptions O(ulong seed) => new() { Temperature = 1.5f, MaxNewTokens = 24, Seed = seed, StopTokenIds = [] };
        var a = gen.Generate(Prompt, O(1)).ToArray();
        var b = gen.Generate(Prompt, O(1)).ToArray();
        var c = gen.Generate(Prompt, O(2)).ToArray();
        Assert.Equal(a, b);
        Assert.NotEqual(a, c);
    }

    [Fact]
    public void TopKOneIsGreedy()
    {
        using var model = MoeModel.Load(TestPaths.Fixture("qwen3moe-tiny"));
        var gen = new Generator(model);
        var greedy = gen.Generate(Prompt, new SamplingOptions { MaxNewTokens = 10, StopTokenIds = [] }).ToArray();
        var topk1 = gen.Generate(Prompt, new SamplingOptions { Temperature = 2f, TopK = 1, MaxNewTokens = 10, Seed = 9, StopTokenIds = [] }).ToArray();
        Assert.Equal(greedy, topk1);
    }

    [Fact]
    public void StopTokenEndsGenerationAndIsNotEmitted()
    {
        using var model = MoeModel.Load(TestPaths.Fixture("mixtral-tiny"));
        var gen = new Generator(model);
        var free = gen.Generate(Prompt, new SamplingOptions { MaxNewTokens = 8, StopTokenIds = [] }).ToArray();
        var stats = new GenerationStats();
        var stopped = gen.Generate(Prompt, new SamplingOptions { MaxNewTokens = 8, StopTokenIds = [free[3]] }, stats).ToArray();
        int first = Array.IndexOf(free, free[3]);
        Assert.Equal(free.Take(first), stopped);
        Assert.Equal(FinishReason.Stop, stats.Finish);
    }

    [Fact]
    public void GenerationStopsWhenTheContextIsFull()
    {
        using var model = MoeModel.Load(TestPaths.Fixture("mixtral-tiny"), new ModelOptions { ContextLength = 12 });
        var stats = new GenerationStats();
        var ids = new Generator(model).Generate(Prompt, new SamplingOptions { MaxNewTokens = 50, StopTokenIds = [] }, stats).ToArray();
        // 5 prompt positions + 7 decoded positions fill 12; the 8th token comes from the last logits.
        Assert.Equal(8, ids.Length);
        Assert.Equal(FinishReason.ContextFull, stats.Finish);
    }

    [Fact]
    public void ChunkedPrefillEqualsOneShotPrefill()
    {
        var tokens = Enumerable.Range(0, 40).Select(i => (i * 37 + 11) % 389).ToArray();
        using var whole = MoeModel.Load(TestPaths.Fixture("mixtral-odd"));
        using var chunked = MoeModel.Load(TestPaths.Fixture("mixtral-odd"), new ModelOptions { MaxChunkTokens = 7 });
        int v = whole.Config.VocabSize;
        var a = new float[tokens.Length * v];
        var b = new float[tokens.Length * v];
        whole.Forward(tokens, 0, whole.NewCache(), a, allLogits: true);
        chunked.Forward(tokens, 0, chunked.NewCache(), b, allLogits: true);
        for (int i = 0; i < a.Length; i++) Assert.True(Math.Abs(a[i] - b[i]) <= 1e-4f, $"logit {i}: {a[i]} vs {b[i]}");
    }

    /// <summary>
    /// The outside test's case: the embedded model at temperature 0.05 printed the last vocabulary token over and over
    /// (logits / T overflowed the softmax). A trained model's margins at T = 0.01 leave the greedy choice each step.
    /// </summary>
    [Fact]
    public void VeryLowTemperatureFollowsTheGreedyPath()
    {
        using var model = MoeModel.Load(TestPaths.DefaultModel);
        var tok = Daop.Engine.Load.Tokenizer.HfTokenizer.FromDirectory(TestPaths.DefaultModel);
        var prompt = tok.Encode("def fibonacci(n):", addSpecialTokens: false);
        var gen = new Generator(model);
        var greedy = gen.Generate(prompt, new SamplingOptions { MaxNewTokens = 12, StopTokenIds = [] }).ToArray();
        var cold = gen.Generate(prompt, new SamplingOptions { Temperature = 0.01f, MaxNewTokens = 12, Seed = 3, StopTokenIds = [] }).ToArray();
        Assert.Equal(greedy, cold);
        Assert.DoesNotContain(model.Config.VocabSize - 1, cold);
    }
}

/// <summary>
/// Decode must not allocate. Runs with parallelization off: when another test holds the CPU worker pool, kernels
/// run inline on this thread and touch its scratch for the first time, a one-off of the test run, not of decode.
/// </summary>
[CollectionDefinition("serial-allocation", DisableParallelization = true)]
public sealed class SerialAllocationCollection;

[Collection("serial-allocation")]
public class DecodeAllocationTests
{
    static readonly int[] Prompt = [3, 17, 42, 99, 7];

    [Fact]
    public void DecodeStepsAllocateNothing() => AssertDecodeAllocatesNothing();

    /// <summary>
    /// Test threads are pooled: a model with a shorter context that ran on this thread before must not leave scratch
    /// that the next model's decode outgrows (attention's per-thread score buffer did, at position 12 here).
    /// </summary>
    [Fact]
    public void DecodeAllocatesNothingAfterASmallerModelRanOnTheSameThread()
    {
        // A fresh thread, so no earlier test's thread-local state decides the outcome.
        Exception? error = null;
        var thread = new Thread(() =>
        {
            try
            {
                using (var small = MoeModel.Load(TestPaths.Fixture("qwen2moe-tiny"), new ModelOptions { ContextLength = 12 }))
                {
                    var logits = new float[small.Config.VocabSize];
                    small.Forward(Prompt, 0, small.NewCache(), logits);
                }
                AssertDecodeAllocatesNothing();
            }
            catch (Exception e) { error = e; }
        });
        thread.Start();
        thread.Join();
        if (error != null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(error);
    }

    static void AssertDecodeAllocatesNothing()
    {
        using var model = MoeModel.Load(TestPaths.Fixture("qwen2moe-tiny"));
        var cache = model.NewCache();
        var logits = new float[model.Config.VocabSize];
        model.Forward(Prompt, 0, cache, logits);
        for (int i = 0; i < 4; i++) model.Forward([i + 1], Prompt.Length + i, cache, logits); // warm-up
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 4; i < 36; i++) model.Forward([i + 1], Prompt.Length + i, cache, logits);
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }
}
