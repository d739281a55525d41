using System.Diagnostics;
using Daop.Engine.Device;
using Daop.Engine.Device.Gpu;
using Daop.Engine.Model;

namespace Daop.Bench;

/// <summary>
/// The engine side of continuous batching, without a server: N sequences' random prompts go in through batched steps
/// (<see cref="MoeModel.ForwardBatch(ReadOnlySpan{int}, ReadOnlySpan{BatchSegment}, Span{float})"/>, prompt chunks
/// packed up to the forward chunk), then they decode together, one token each per step. The decode rate is set beside
/// its bytes-read bound: per step the dense matrices every token reads, once, plus each expert the step routed to, once
/// (<see cref="MoeModel.ExpertReads"/>), at the given bandwidth.
/// </summary>
public static class BatchDecodeBench
{
    /// <summary>
    /// One batch size's result: prefill and decode tokens/s (all sequences together), decode step time, the experts read
    /// per step (of layers × experts), the decode bound at the bandwidth given, and the kernel launches per decode step
    /// (0 off the GPU path).
    /// </summary>
    public readonly record struct Result(int Sequences, double PrefillTokensPerSecond, double DecodeTokensPerSecond, double StepMilliseconds,
        double ExpertsPerStep, int ExpertsInModel, double BytesPerStep, double BoundTokensPerSecond, double LaunchesPerStep = 0)
    {
        /// <summary>Decode as a fraction of its bound.</summary>
        public double OfBound => DecodeTokensPerSecond / BoundTokensPerSecond;
    }

    /// <summary>
    /// Runs <paramref name="sequences"/> sequences of <paramref name="promptTokens"/> random prompt tokens then
    /// <paramref name="newTokens"/> decode steps (random tokens fed: the rate does not depend on what is sampled).
    /// <paramref name="bandwidthGBps"/>: the device's weight-read bandwidth (GPU GEMV or host memory) for the bound.
    /// </summary>
    public static Result Run(MoeModel model, int sequences, int promptTokens, int newTokens, double bandwidthGBps, int seed = 11)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(sequences, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(promptTokens, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(newTokens, 1);
        if (sequences > model.MaxChunkTokens)
            throw new ArgumentOutOfRangeException(nameof(sequences), $"{sequences} sequences: a decode step holds at most {model.MaxChunkTokens} (the forward chunk)");
        if (promptTokens + newTokens > model.ContextLength)
            throw new ArgumentOutOfRangeException(nameof(newTokens), $"{promptTokens} + {newTokens} tokens do not fit the context of {model.ContextLength}");
        var c = model.Config;
        var rng = new Random(seed);
        var prompts = Enumerable.Range(0, sequences).Select(_ => Enumerable.Range(0, promptTokens).Select(_ => rng.Next(c.VocabSize)).ToArray()).ToArray();
        var caches = new KvCache[sequences];
        try
        {
            model.NewCaches(sequences, promptTokens + newTokens).CopyTo(caches, 0); // one KV pool, as the server's slots
            var logits = new float[sequences * c.VocabSize];
            var tokens = new int[model.MaxChunkTokens];
            var segments = new List<BatchSegment>();

            // Prefill: prompt chunks packed into steps of up to MaxChunkTokens, in sequence order.
            long t0 = Stopwatch.GetTimestamp();
            int seq = 0, done = 0;
            while (seq < sequences)
            {
                segments.Clear();
                int n = 0;
                while (seq < sequences && n < tokens.Length)
                {
                    int take = Math.Min(tokens.Length - n, promptTokens - done);
                    prompts[seq].AsSpan(done, take).CopyTo(tokens.AsSpan(n));
                    segments.Add(new BatchSegment(caches[seq], done, take, done + take == promptTokens));
                    n += take;
                    done += take;
                    if (done == promptTokens) { seq++; done = 0; }
                }
                model.ForwardBatch(tokens.AsSpan(0, n), System.Runtime.InteropServices.CollectionsMarshal.AsSpan(segments), logits);
            }
            double prefillSeconds = Stopwatch.GetElapsedTime(t0).TotalSeconds;

            // Decode: every sequence one token per step.
            var positions = new int[sequences];
            var step = new int[sequences];
            long reads0 = model.ExpertReads, launches0 = (model.Device as GpuDevice)?.Launches ?? 0;
            t0 = Stopwatch.GetTimestamp();
            for (int s = 0; s < newTokens; s++)
            {
                for (int i = 0; i < sequences; i++)
                {
                    step[i] = rng.Next(c.VocabSize);
                    positions[i] = promptTokens + s;
                }
                model.ForwardBatch(step, positions, caches, logits);
            }
            double decodeSeconds = Stopwatch.GetElapsedTime(t0).TotalSeconds;
            double expertsPerStep = (double)(model.ExpertReads - reads0) / newTokens;
            double launchesPerStep = model.Device is GpuDevice g ? (double)(g.Launches - launches0) / newTokens : 0;
            long perStep = model.Weights.DenseBytesPerToken(); // read once per step whatever the batch
            var moe = model.Weights.Layers.FirstOrDefault(l => l.Experts.Length > 0);
            long expertBytes = moe?.Experts[0].ByteLength ?? 0;
            double bytes = perStep + expertsPerStep * expertBytes;
            int inModel = model.Weights.Layers.Sum(l => l.Experts.Length);
            return new Result(sequences, sequences * promptTokens / prefillSeconds, sequences * newTokens / decodeSeconds, decodeSeconds / newTokens * 1e3,
                expertsPerStep, inModel, bytes, sequences * bandwidthGBps * 1e9 / bytes, launchesPerStep);
        }
        finally
        {
            foreach (var cache in caches) (cache as IDisposable)?.Dispose();
        }
    }
}
