using Daop.Engine.Api;
using Daop.Engine.Generate;
using Daop.Engine.Model;
using Daop.Engine.Schedule;

namespace Daop.Tests.Api;

/// <summary>
/// Continuous batching (<see cref="DaopOptions.Parallel"/>): callers decode together yet each gets the greedy text it gets
/// alone, more callers than slots wait their turn, a cancelled caller leaves its slot at once while the others go on,
/// disposing the model ends every caller, placed (offloaded) experts batch too, and a scheduler that cannot batch
/// sequences (a replayed trace) is refused at load.
/// </summary>
public class BatchingTests
{
    static readonly string[] Prompts = ["import os\n", "class Stack:", "def read_json(path):", "for i in range(10):", "# sort tuples\n", "try:\n", "x = ["];

    [Fact]
    public async Task EachCallerGetsTheTextItGetsAlone()
    {
        var settings = new GenerationSettings { MaxTokens = 24 };
        var expected = new List<string>();
        using (var alone = DaopModel.Load(TestPaths.DefaultModel))
            foreach (var p in Prompts) expected.Add(await Pieces.Join(alone.GenerateAsync(p, settings)));

        using var model = DaopModel.Load(TestPaths.DefaultModel, new DaopOptions { Parallel = 3 });
        Assert.Equal(3, model.Parallel);
        var stats = Prompts.Select(_ => new GenerationStats()).ToArray();
        // Seven callers, three slots: four wait, join as others finish, and prefill beside running decodes.
        var results = await Task.WhenAll(Prompts.Select((p, i) => Task.Run(() => Pieces.Join(model.GenerateAsync(p, settings, stats[i])))));
        Assert.Equal(expected, results);
        foreach (var s in stats)
        {
            Assert.Equal(FinishReason.MaxTokens, s.Finish);
            Assert.Equal(24, s.GeneratedTokens);
            Assert.Equal(23, s.DecodeSteps);
            Assert.True(s.PromptTokens > 0);
        }
        Assert.Equal(0, model.RunningGenerations + model.QueuedGenerations);
        Assert.False(model.IsBusy);
    }

    /// <summary>
    /// Prompts longer than the forward chunk go in over several steps, beside other prompts and running decodes (an
    /// 8-token chunk: every step splits its budget between them), and each caller still gets its text alone.
    /// </summary>
    [Fact]
    public async Task PromptsSplitAcrossStepsBesideDecodesGiveTheTextTheyGiveAlone()
    {
        var settings = new GenerationSettings { MaxTokens = 12 };
        var options = new DaopOptions { Engine = new ModelOptions { MaxChunkTokens = 8 } };
        string[] prompts = ["def quicksort(items):\n    if len(items) <= 1:\n", "x", "import numpy as np\nimport pandas as pd\n", "# a comment", "while True:"];
        var expected = new List<string>();
        using (var alone = DaopModel.Load(TestPaths.DefaultModel, options))
            foreach (var p in prompts) expected.Add(await Pieces.Join(alone.GenerateAsync(p, settings)));
        using var model = DaopModel.Load(TestPaths.DefaultModel, options with { Parallel = 4 });
        Assert.True(model.Tokenize(prompts[0]).Length > 16);
        var stats = prompts.Select(_ => new GenerationStats()).ToArray();
        var results = await Task.WhenAll(prompts.Select((p, i) => Task.Run(() => Pieces.Join(model.GenerateAsync(p, settings, stats[i])))));
        Assert.Equal(expected, results);
        Assert.All(stats, s => Assert.Equal(11, s.DecodeSteps));
    }

    [Fact]
    public async Task ACancelledCallerLeavesItsSlotAndTheOthersGoOn()
    {
        using var model = DaopModel.Load(TestPaths.DefaultModel, new DaopOptions { Parallel = 2 });
        var settings = new GenerationSettings { MaxTokens = 16 };
        string want;
        using (var alone = DaopModel.Load(TestPaths.DefaultModel)) want = await Pieces.Join(alone.GenerateAsync(Prompts[1], settings));

        using var cts = new CancellationTokenSource();
        var endless = new GenerationSettings { MaxTokens = 4000, Stop = ["\u0001never"] }; // seconds of decoding: the test acts long before it ends
        var cancelled = model.GenerateAsync(Prompts[0], endless, cancellationToken: cts.Token).GetAsyncEnumerator();
        Assert.True(await cancelled.MoveNextAsync());
        Assert.Equal(1, model.RunningGenerations);
        var other = Task.Run(() => Pieces.Join(model.GenerateAsync(Prompts[1], settings)));
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => { while (await cancelled.MoveNextAsync()) { } });
        Assert.Equal(want, await other);
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (model.RunningGenerations > 0 && DateTime.UtcNow < deadline) await Task.Delay(5);
        Assert.Equal(0, model.RunningGenerations);
        await cancelled.DisposeAsync();
    }

    [Fact]
    public async Task PlacedExpertsBatchWithTheTextTheyGiveAlone()
    {
        var settings = new GenerationSettings { MaxTokens = 16 };
        var options = new DaopOptions
        {
            Engine = new ModelOptions { Experts = (m, _) => CpuStandInScheduler.FromRatio(m, new Engine.Placement.LruPolicy(prefetch: false), 0.25) },
        };
        var expected = new List<string>();
        using (var alone = DaopModel.Load(TestPaths.DefaultModel, options))
            foreach (var p in Prompts[..4]) expected.Add(await Pieces.Join(alone.GenerateAsync(p, settings)));
        using var model = DaopModel.Load(TestPaths.DefaultModel, options with { Parallel = 4 });
        var results = await Task.WhenAll(Prompts[..4].Select(p => Task.Run(() => Pieces.Join(model.GenerateAsync(p, settings)))));
        Assert.Equal(expected, results);
        var stats = ((CpuStandInScheduler)model.Engine.Experts).Stats;
        Assert.True(stats.Transfers > 0 && stats.CpuExpertRuns + stats.GpuExpertRuns == stats.Activations, stats.ToString());
    }

    [Fact]
    public async Task DisposingTheModelEndsEveryCaller()
    {
        var model = DaopModel.Load(TestPaths.DefaultModel, new DaopOptions { Parallel = 2 });
        var endless = new GenerationSettings { MaxTokens = 4000, Stop = ["\u0001never"] }; // seconds of decoding: the test acts long before it ends
        var running = model.GenerateAsync(Prompts[0], endless).GetAsyncEnumerator();
        Assert.True(await running.MoveNextAsync());
        model.Dispose();
        await Assert.ThrowsAsync<ObjectDisposedException>(async () => { while (await running.MoveNextAsync()) { } });
        await Assert.ThrowsAsync<ObjectDisposedException>(async () => await Pieces.Join(model.GenerateAsync("x", endless)));
    }

    [Fact]
    public void AScheduleThatCannotBatchIsRefusedAtLoad()
    {
        RoutingTrace trace;
        using (var m = MoeModel.Load(TestPaths.DefaultModel)) trace = RoutingTrace.Record(m, [1, 2, 3]);
        var options = new DaopOptions
        {
            Parallel = 2,
            Engine = new ModelOptions
            {
                Experts = (m, _) => CpuStandInScheduler.FromRatio(m, new Engine.Placement.StaticPolicy(), 0.5, routingOverride: new TraceReplay([trace])),
            },
        };
        Assert.Contains("one sequence at a time", Assert.Throws<NotSupportedException>(() => DaopModel.Load(TestPaths.DefaultModel, options)).Message);
        Assert.Contains("parallel sequences must be 1 to", Assert.Throws<ArgumentOutOfRangeException>(() =>
            DaopModel.Load(TestPaths.DefaultModel, new DaopOptions { Parallel = 0 })).Message);
    }
}
