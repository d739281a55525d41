using Daop.Engine.Api;
using Daop.Engine.Generate;
using Daop.Engine.Load;
using Daop.Engine.Load.Chat;
using Daop.Engine.Load.Safetensors;
using Daop.Engine.Load.Tokenizer;
using Daop.Engine.Model;
using Daop.Engine.Schedule;

namespace Daop.Tests.Api;

/// <summary>The library API on the embedded model: same text as the engine underneath, FIFO turns, cancellation, stop strings, info.</summary>
public class DaopModelTests
{

    [Fact]
    public async Task GenerateAsyncMatchesTextGenerator()
    {
        using var model = DaopModel.Load(TestPaths.DefaultModel);
        var settings = new GenerationSettings { MaxTokens = 40 };
        string text = await Pieces.Join(model.GenerateAsync("def fibonacci(n):", settings));

        var tok = HfTokenizer.FromDirectory(TestPaths.DefaultModel);
        using var engine = MoeModel.Load(TestPaths.DefaultModel);
        string expected = new TextGenerator(engine, tok).Generate("def fibonacci(n):", new SamplingOptions { MaxNewTokens = 40 });
        Assert.Equal(expected, text);
        Assert.NotEmpty(text.Trim());
    }

    [Fact]
    public async Task ChatAsyncIsTheTemplatedPromptWithEndOfTurnStops()
    {
        using var model = DaopModel.Load(TestPaths.DefaultModel);
        ChatMessage[] messages = [new("system", "You write Python."), new("user", "Sort a list")];
        string prompt = model.RenderChat(messages);
        Assert.Equal("<|im_start|>system\nYou write Python.<|im_end|>\n<|im_start|>user\nSort a list<|im_end|>\n<|im_start|>assistant\n", prompt);
        Assert.Contains(model.Tokenizer.TokenToId("<|im_end|>")!.Value, model.ChatStopTokenIds);
        Assert.DoesNotContain(model.Tokenizer.TokenToId("<|im_end|>")!.Value, model.StopTokenIds);

        var settings = new GenerationSettings { MaxTokens = 24 };
        var stats = new GenerationStats();
        string chat = await Pieces.Join(model.ChatAsync(messages, settings, stats));
        string same = await Pieces.Join(model.GenerateAsync(model.Tokenize(prompt, addSpecialTokens: false), model.ChatStopTokenIds.ToArray(), settings));
        Assert.Equal(same, chat);
        Assert.Equal(model.ChatTokens(messages).Length, stats.PromptTokens);
    }

    [Fact]
    public async Task ConcurrentCallersGetTheirOwnTextInArrivalOrder()
    {
        using var model = DaopModel.Load(TestPaths.DefaultModel);
        string[] prompts = ["import os\n", "class Stack:", "def read_json(path):", "for i in range(10):", "# sort tuples\n", "try:\n"];
        var settings = new GenerationSettings { MaxTokens = 20 };
        var expected = new List<string>();
        foreach (var p in prompts) expected.Add(await Pieces.Join(model.GenerateAsync(p, settings)));

        var started = new List<int>();
        async Task<string> One(int i)
        {
            var sb = new System.Text.StringBuilder();
            bool first = true;
            await foreach (string piece in model.GenerateAsync(prompts[i], settings))
            {
                if (first) lock (started) started.Add(i);
                first = false;
                sb.Append(piece);
            }
            return sb.ToString();
        }
        // Hold the model while every caller queues up, so their arrival order is known.
        var gate = model.GenerateAsync("x", new GenerationSettings { MaxTokens = 200, Stop = ["\u0001never"] }).GetAsyncEnumerator();
        Assert.True(await gate.MoveNextAsync());
        var tasks = new List<Task<string>>();
        for (int i = 0; i < prompts.Length; i++)
        {
            tasks.Add(Task.Run(() => One(i)));
            var deadline = DateTime.UtcNow.AddSeconds(10);
            while (model.QueuedGenerations < i + 1 && DateTime.UtcNow < deadline) await Task.Delay(5);
            Assert.Equal(i + 1, model.QueuedGenerations);
        }
        await gate.DisposeAsync();
        var results = await Task.WhenAll(tasks);
        Assert.Equal(expected, results);
        Assert.Equal(Enumerable.Range(0, prompts.Length), started);
        Assert.False(model.IsBusy);
    }

    [Fact]
    public async Task CancellingAQueuedCallLeavesTheQueue()
    {
        using var model = DaopModel.Load(TestPaths.DefaultModel);
        var holder = model.GenerateAsync("x", new GenerationSettings { MaxTokens = 100 }).GetAsyncEnumerator();
        Assert.True(await holder.MoveNextAsync());
        using var cts = new CancellationTokenSource();
        var queued = Pieces.Join(model.GenerateAsync("import os", new GenerationSettings { MaxTokens = 5 }, cts.Token));
        while (model.QueuedGenerations == 0) await Task.Delay(5);
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => queued);
        Assert.Equal(0, model.QueuedGenerations);
        await holder.DisposeAsync();
        Assert.False(model.IsBusy);
        Assert.NotEmpty(await Pieces.Join(model.GenerateAsync("import os", new GenerationSettings { MaxTokens = 5 })));
    }

    [Fact]
    public async Task CancellingARunningGenerationThrowsAndFreesTheModel()
    {
        using var model = DaopModel.Load(TestPaths.DefaultModel);
        using var cts = new CancellationTokenSource();
        var stats = new GenerationStats();
        int n = 0;
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var _ in model.GenerateAsync("import os\n", new GenerationSettings { MaxTokens = 500 }, stats, cts.Token))
                if (++n == 3) cts.Cancel();
        });
        Assert.Equal(FinishReason.Cancelled, stats.Finish);
        Assert.True(stats.GeneratedTokens < 10);
        Assert.False(model.IsBusy);
    }

    [Fact]
    public async Task StopSequencesCutTheTextAndAreNotReturned()
    {
        using var model = DaopModel.Load(TestPaths.DefaultModel);
        var settings = new GenerationSettings { MaxTokens = 60 };
        string full = await Pieces.Join(model.GenerateAsync("def fibonacci(n):", settings));
        // A stop string taken from the middle of the greedy text.
        string stop = full.Substring(full.Length / 2, 3);
        var stats = new GenerationStats();
        string cut = await Pieces.Join(model.GenerateAsync("def fibonacci(n):", settings with { Stop = [stop] }, stats));
        Assert.Equal(full[..full.IndexOf(stop, StringComparison.Ordinal)], cut);
        Assert.Equal(FinishReason.Stop, stats.Finish);
    }

    [Theory]
    [InlineData(new[] { "ab", "cd", "ef" }, "cd", "ab")]
    [InlineData(new[] { "abc", "d" }, "cd", "ab")]
    [InlineData(new[] { "a", "b", "c" }, "bc", "a")]
    [InlineData(new[] { "xx", "y" }, "yz", "xxy")]
    [InlineData(new[] { "hello", " wor", "ld" }, "world!", "hello world")]
    public void StopFilterHoldsBackPossibleStarts(string[] pieces, string stop, string expected)
    {
        var f = new StopSequenceFilter([stop, "\u0000"]);
        var sb = new System.Text.StringBuilder();
        foreach (var p in pieces) sb.Append(f.Push(p));
        sb.Append(f.Flush());
        Assert.Equal(expected, sb.ToString());
    }

    [Fact]
    public void InfoCountsEveryStoredByte()
    {
        using var model = DaopModel.Load(TestPaths.DefaultModel);
        var i = model.Info;
        Assert.Equal("mixtral", i.Architecture);
        Assert.Equal((6, 6, 8, 2), (i.Layers, i.MoeLayers, i.Experts, i.ExpertsPerToken));
        Assert.Equal(3L * 256 * 256, i.ExpertParameters);
        Assert.Equal(48 * i.ExpertParameters, i.RoutedExpertParameters);
        Assert.Equal(i.TotalParameters - i.RoutedExpertParameters + 6 * 2 * i.ExpertParameters, i.ActiveParameters);
        Assert.Equal(2 * i.ExpertParameters, i.ExpertBytes); // bf16
        // Every tensor of the checkpoint is counted once: dense + experts = the safetensors data section.
        using var st = TensorStore.OpenFile(Path.Combine(TestPaths.DefaultModel, "model.safetensors"));
        long data = st.Names.Sum(n => st.Entry(n).ByteLength);
        Assert.Equal(data, i.DenseBytes + i.RoutedExpertBytes);
        Assert.Equal(data / 2, i.TotalParameters);
        Assert.True(i.HasChatTemplate);
    }

    [Fact]
    public void VramPlanMatchesTheOffloadBudget()
    {
        using var model = DaopModel.Load(TestPaths.DefaultModel);
        long dense = OffloadBudget.DenseBytes(model.Engine, 256);
        var all = model.PlanVram(1L << 34);
        Assert.Equal(48, all.TotalSlots);
        Assert.Equal(1.0, all.ResidentFraction);
        var none = model.PlanVram(dense - 1);
        Assert.False(none.DenseFits);
        Assert.Equal(0, none.TotalSlots);
        long budget = dense + 13 * all.SlotBytes + 5;
        var some = model.PlanVram(budget);
        Assert.Equal(OffloadBudget.SlotsFromVram(model.Engine, budget, 256), some.SlotsPerLayer);
        Assert.Equal(13, some.TotalSlots);
        Assert.Equal([3, 2, 2, 2, 2, 2], some.SlotsPerLayer);

        // Four parallel sequences: three more KV caches in the dense part, so fewer slots in the same budget.
        long budget4 = OffloadBudget.DenseBytes(model.Engine, 256, sequences: 4) + 13 * all.SlotBytes + 5;
        var four = model.PlanVram(budget4, 256, sequences: 4);
        Assert.Equal(4, four.Sequences);
        Assert.Equal(6 * 2 * model.ContextLength * model.Info.KvHeads * model.Info.HeadDim * 4L, four.KvCacheBytes);
        Assert.Equal(some.DenseBytes + 3 * four.KvCacheBytes, four.DenseBytes);
        Assert.Equal(13, four.TotalSlots);
        Assert.True(model.PlanVram(budget4).TotalSlots > four.TotalSlots);

        // 20 experts' bytes beside the dense part: two go to the staging slots of streamed prefill experts, as the
        // scheduler allocates them; a budget that holds every expert streams nothing and keeps no staging slots.
        long budget20 = dense + 20 * all.SlotBytes + 5;
        var twenty = model.PlanVram(budget20);
        Assert.Equal(OffloadedExpertScheduler.StagingSlots, twenty.StagingSlots);
        Assert.Equal(20 - OffloadedExpertScheduler.StagingSlots, twenty.TotalSlots);
        Assert.Equal(OffloadBudget.SlotsFromVram(model.Engine, budget20 - 2 * all.SlotBytes, 256), twenty.SlotsPerLayer);
        Assert.True(twenty.UsedBytes <= budget20);
        Assert.Equal(0, all.StagingSlots);
    }

    [Fact]
    public async Task BadInputsFailWithUsefulExceptions()
    {
        Assert.Throws<ModelLoadException>(() => DaopModel.Load(Path.Combine(TestPaths.Root, "no-such-model")));
        Assert.Throws<ArgumentException>(() => DaopModel.Load(TestPaths.DefaultModel, new DaopOptions { Device = "tpu" }));
        Assert.Throws<ArgumentException>(() => DaopModel.Load(TestPaths.DefaultModel, new DaopOptions { ContextLength = 0 }));
        using var model = DaopModel.Load(TestPaths.DefaultModel, new DaopOptions { ContextLength = 32 });
        Assert.Equal(32, model.ContextLength);
        Assert.Throws<ArgumentException>(() => model.GenerateAsync("x", new GenerationSettings { Temperature = -1 }));
        Assert.Throws<ArgumentException>(() => model.GenerateAsync("x", new GenerationSettings { Stop = [""] }));
        string longPrompt = string.Join(" ", Enumerable.Repeat("word", 100));
        await Assert.ThrowsAsync<ContextOverflowException>(() => Pieces.Join(model.GenerateAsync(longPrompt)));
    }

    [Fact]
    public async Task DisposeWhileGeneratingEndsTheGenerationCleanly()
    {
        var model = DaopModel.Load(TestPaths.DefaultModel);
        var e = model.GenerateAsync("import os\n", new GenerationSettings { MaxTokens = 300 }).GetAsyncEnumerator();
        Assert.True(await e.MoveNextAsync());
        model.Dispose();
        await Assert.ThrowsAsync<ObjectDisposedException>(async () => { while (await e.MoveNextAsync()) { } });
        await e.DisposeAsync();
        await Assert.ThrowsAsync<ObjectDisposedException>(() => Pieces.Join(model.GenerateAsync("x")));
    }
}
