using Daop.Kernels.Gpu;
using Daop.Engine.Device.Gpu;
using Daop.Engine.Model;
using Daop.Engine.Placement;
using Daop.Engine.Schedule;
using ILGPU.Runtime;

namespace Daop.Bench.Gpu;

/// <summary>
/// The engine's GPU paths against the CPU on one model, for a machine without .NET's test runner: batched steps
/// (<c>MoeModel.ForwardBatch</c>: three sequences decoding at their own positions, then decode tokens beside prompt
/// chunks) on the resident GPU path and through
/// offloaded placement against each sequence's own CPU steps, and DAOP's approximate modes on
/// <see cref="OffloadedExpertScheduler"/> against <see cref="CpuStandInScheduler"/> with the same policy and ratio
/// (the approximate modes change the logits, so the CPU stand-in is their reference, not the exact model).
/// </summary>
public static class GpuEngineCheck
{
    /// <summary>One comparison: the largest max|gpu − cpu| / max(1, max|cpu|) over its forward calls.</summary>
    public readonly record struct Result(string Name, double MaxRelativeError, int Calls)
    {
        /// <summary>Passes at the GPU model check's tolerance (fp32 sums in another order).</summary>
        public bool Passed => MaxRelativeError <= 1e-3;
    }

    const int Steps = 4, Context = 64, Chunk = 8;

    /// <summary>
    /// Every comparison on the model in <paramref name="modelDir"/>: batched decode resident and under each exact policy
    /// of <paramref name="exactPolicies"/>, then each approximate policy of <paramref name="approximatePolicies"/>, at
    /// <paramref name="ratio"/> of the experts in GPU slots. <paramref name="report"/> sees each result as it is made.
    /// </summary>
    public static List<Result> Run(string modelDir, GpuContext acc, IEnumerable<(string Name, Func<IPlacementPolicy> Policy)> exactPolicies,
        IEnumerable<(string Name, Func<IPlacementPolicy> Policy)> approximatePolicies, double ratio, Action<Result> report)
    {
        var results = new List<Result>();
        void Add(Result r) { results.Add(r); report(r); }

        using var cpu = MoeModel.Load(modelDir, new ModelOptions { ContextLength = Context, MaxChunkTokens = Chunk });
        Add(Batched(cpu, modelDir, "batched steps, resident", new ModelOptions
        {
            ContextLength = Context, MaxChunkTokens = Chunk, Device = _ => new GpuDevice(acc), Experts = (m, d) => new GpuExpertScheduler(m, d),
        }));
        foreach (var (name, policy) in exactPolicies)
            Add(Batched(cpu, modelDir, $"batched steps, {name} at {ratio:0.##}", new ModelOptions
            {
                ContextLength = Context, MaxChunkTokens = Chunk, Device = _ => new GpuDevice(acc),
                Experts = (m, d) => OffloadedExpertScheduler.FromRatio(m, d, policy(), ratio),
            }));
        // The first exact policy again with every CPU-resident expert of a prompt chunk that has two tokens streamed
        // through the staging slots.
        foreach (var (name, policy) in exactPolicies.Take(1))
            Add(Batched(cpu, modelDir, $"batched steps, {name} at {ratio:0.##}, prefill streamed", new ModelOptions
            {
                ContextLength = Context, MaxChunkTokens = Chunk, Device = _ => new GpuDevice(acc),
                Experts = (m, d) => OffloadedExpertScheduler.FromRatio(m, d, policy(), ratio, options: new OffloadOptions { StreamPrefillMinTokens = 2 }),
            }));
        foreach (var (name, policy) in approximatePolicies)
        {
            using var standIn = MoeModel.Load(modelDir, new ModelOptions
            {
                ContextLength = Context, MaxChunkTokens = Chunk, Experts = (m, _) => CpuStandInScheduler.FromRatio(m, policy(), ratio),
            });
            using var gpu = MoeModel.Load(modelDir, new ModelOptions
            {
                ContextLength = Context, MaxChunkTokens = Chunk, Device = _ => new GpuDevice(acc),
                Experts = (m, d) => OffloadedExpertScheduler.FromRatio(m, d, policy(), ratio),
            });
            Add(Sequence(standIn, gpu, $"{name} at {ratio:0.##} against the CPU stand-in"));
        }
        return results;
    }

    // Three prompts of different lengths prefilled alone; then each step feeds each sequence one seeded token, in one
    // batch on the GPU model and alone on the CPU model. Then two steps mix prompts with decodes: a fourth sequence's
    // 5-token prompt first with two of the three decoding, then the three decoding with a fifth's 4-token prompt last.
    static Result Batched(MoeModel cpu, string modelDir, string name, ModelOptions options)
    {
        using var gpu = MoeModel.Load(modelDir, options);
        int v = cpu.Config.VocabSize;
        var rng = new Random(5);
        int[][] prompts = [.. new[] { 5, 11, 2 }.Select(n => Enumerable.Range(0, n).Select(_ => rng.Next(v)).ToArray())];
        int b = prompts.Length;
        var alone = prompts.Select(_ => cpu.NewCache()).Concat([cpu.NewCache(), cpu.NewCache()]).ToArray();
        var batched = prompts.Select(_ => gpu.NewCache()).Concat([gpu.NewCache(), gpu.NewCache()]).ToArray();
        var want = new float[v];
        var got = new float[(b + 2) * v];
        double worst = 0;
        int calls = 0;
        for (int i = 0; i < b; i++)
        {
            cpu.Forward(prompts[i], 0, alone[i], want);
            gpu.Forward(prompts[i], 0, batched[i], got.AsSpan(0, v));
            worst = Math.Max(worst, GpuBench.MaxRelativeError(want, got.AsSpan(0, v), 1));
            calls++;
        }
        for (int s = 0; s < Steps; s++)
        {
            var tokens = prompts.Select(_ => rng.Next(v)).ToArray();
            var positions = prompts.Select(p => p.Length + s).ToArray();
            gpu.ForwardBatch(tokens, positions, batched[..b], got);
            for (int i = 0; i < b; i++)
            {
                cpu.Forward([tokens[i]], positions[i], alone[i], want);
                worst = Math.Max(worst, GpuBench.MaxRelativeError(want, got.AsSpan(i * v, v), 1));
                calls++;
            }
        }
        var pos = prompts.Select(p => p.Length + Steps).Concat([0, 0]).ToArray();
        foreach (var step in new[] { new[] { (3, 5), (0, 1), (1, 1) }, [(0, 1), (1, 1), (2, 1), (4, 4)] })
        {
            var tokens = step.SelectMany(g => Enumerable.Range(0, g.Item2).Select(_ => rng.Next(v))).ToArray();
            gpu.ForwardBatch(tokens, [.. step.Select(g => new BatchSegment(batched[g.Item1], pos[g.Item1], g.Item2))], got);
            int at = 0;
            for (int j = 0; j < step.Length; j++)
            {
                var (seq, n) = step[j];
                cpu.Forward(tokens.AsSpan(at, n), pos[seq], alone[seq], want);
                worst = Math.Max(worst, GpuBench.MaxRelativeError(want, got.AsSpan(j * v, v), 1));
                calls++;
                at += n;
                pos[seq] += n;
            }
        }
        return new Result(name, worst, calls);
    }

    // One sequence: a 12-token prefill, then decode steps one token at a time, on both models.
    static Result Sequence(MoeModel reference, MoeModel gpu, string name)
    {
        int v = reference.Config.VocabSize;
        var rng = new Random(7);
        var tokens = Enumerable.Range(0, 12 + 3 * Steps).Select(_ => rng.Next(v)).ToArray();
        var rc = reference.NewCache();
        var gc = gpu.NewCache();
        var a = new float[v];
        var b = new float[v];
        reference.Forward(tokens.AsSpan(0, 12), 0, rc, a);
        gpu.Forward(tokens.AsSpan(0, 12), 0, gc, b);
        double worst = GpuBench.MaxRelativeError(a, b, 1);
        for (int i = 12; i < tokens.Length; i++)
        {
            reference.Forward(tokens.AsSpan(i, 1), i, rc, a);
            gpu.Forward(tokens.AsSpan(i, 1), i, gc, b);
            worst = Math.Max(worst, GpuBench.MaxRelativeError(a, b, 1));
        }
        var scheduler = (OffloadedExpertScheduler)gpu.Experts;
        scheduler.Synchronize();
        scheduler.CheckInvariants();
        return new Result(name, worst, tokens.Length - 11);
    }
}
