using Daop.Engine.Load.Config;
using Daop.Engine.Model.Layers;
using Daop.Kernels.Gpu;
using ILGPU.Runtime;

namespace Daop.Tests.Gpu;

/// <summary>Softmax top-k routing on the CPU accelerator against <see cref="Router.SoftmaxTopK"/>, and the work list it writes.</summary>
[Collection(GpuCollection.Name)]
public class GpuRoutingKernelTests(GpuFixture gpu)
{
    // Logits [T, E] with repeated values (ties go to the lower id), one row of equal logits, one −∞.
    static float[] Logits(int tokens, int experts, int seed)
    {
        var rng = new Random(seed);
        var x = new float[tokens * experts];
        for (int i = 0; i < x.Length; i++) x[i] = rng.Next(-6, 7) * 0.5f;
        if (tokens > 1) Array.Fill(x, 0.25f, experts, experts);
        x[experts - 1] = float.NegativeInfinity;
        return x;
    }

    int[] Route(float[] logits, int tokens, int experts, int topK, bool renormalize, int lanes)
    {
        using var lb = gpu.Upload(logits);
        using var ib = gpu.Upload(new int[RoutingKernels.IndexLength(tokens * topK)]);
        gpu.WithLanes(lanes, 1, () => gpu.Kernels.SoftmaxTopK(gpu.Stream, lb.View, ib.View, tokens, experts, topK, renormalize));
        gpu.Stream.Synchronize();
        return ib.GetAsArray1D()[..RoutingKernels.IndexLength(tokens * topK)];
    }

    [Theory]
    [InlineData(1, 8, 2, true, 1)]
    [InlineData(1, 8, 2, true, 4)]
    [InlineData(3, 10, 3, false, 4)]
    [InlineData(3, 10, 3, true, 2)]
    [InlineData(2, 3, 3, false, 4)]     // K = E, fewer experts than lanes
    [InlineData(5, 64, 8, true, 4)]
    public void MatchesTheHostRouter(int tokens, int experts, int topK, bool renormalize, int lanes)
    {
        var logits = Logits(tokens, experts, tokens * 100 + experts);
        var index = Route(logits, tokens, experts, topK, renormalize, lanes);
        int p = tokens * topK;
        var ids = new int[topK];
        var weights = new float[topK];
        var probs = new float[experts];
        for (int t = 0; t < tokens; t++)
        {
            Router.SoftmaxTopK(logits.AsSpan(t * experts, experts), renormalize, ids, weights, probs);
            for (int j = 0; j < topK; j++)
            {
                int i = t * topK + j;
                string at = $"token {t} choice {j} (T={tokens} E={experts} K={topK} lanes={lanes})";
                Assert.True(ids[j] == index[5 * p + i], $"{at}: expert {index[5 * p + i]}, host {ids[j]}");
                float w = BitConverter.Int32BitsToSingle(index[6 * p + i]);
                Assert.True(Math.Abs(w - weights[j]) <= 2e-6f * Math.Max(1, weights[j]), $"{at}: weight {w}, host {weights[j]}");
                // One tile per position: order and pos are the identity, the tile names the expert, first = i, count 1.
                Assert.Equal(i, index[i]);
                Assert.Equal([ids[j], i, 1], index[(p + 3 * i)..(p + 3 * i + 3)]);
                Assert.Equal(i, index[4 * p + i]);
            }
        }
    }

    /// <summary>
    /// Top-k softmax (Granite-MoE, GPT-OSS: softmax over the K chosen logits) is the kernel renormalised
    /// (<see cref="RouterSpec.DeviceRenormalize"/>): the same experts as <see cref="Router.TopKSoftmax"/>,
    /// ties to the lower id, and its weights.
    /// </summary>
    [Theory]
    [InlineData(1, 32, 4, 4)]
    [InlineData(3, 10, 3, 2)]
    [InlineData(4, 8, 2, 1)]
    public void RenormalisedMatchesTheHostTopKSoftmax(int tokens, int experts, int topK, int lanes)
    {
        Assert.Equal(true, new RouterSpec.TopKSoftmax().DeviceRenormalize);
        var logits = Logits(tokens, experts, tokens * 31 + experts);
        var index = Route(logits, tokens, experts, topK, renormalize: true, lanes);
        int p = tokens * topK;
        var ids = new int[topK];
        var weights = new float[topK];
        for (int t = 0; t < tokens; t++)
        {
            Router.TopKSoftmax(logits.AsSpan(t * experts, experts), ids, weights);
            for (int j = 0; j < topK; j++)
            {
                int i = t * topK + j;
                Assert.True(ids[j] == index[5 * p + i], $"token {t} choice {j}: expert {index[5 * p + i]}, host {ids[j]}");
                float w = BitConverter.Int32BitsToSingle(index[6 * p + i]);
                Assert.True(Math.Abs(w - weights[j]) <= 2e-6f * Math.Max(1, weights[j]), $"token {t} choice {j}: weight {w}, host {weights[j]}");
            }
        }
    }

    [Fact]
    public void NaNLogitsPickValidExpertsAndPoisonTheWeights()
    {
        const int experts = 6, topK = 2;
        var logits = new[] { 1f, float.NaN, 3f, 2f, float.NaN, 0f };
        var index = Route(logits, 1, experts, topK, renormalize: true, lanes: 4);
        Assert.Equal([2, 3], index[(5 * topK)..(6 * topK)]);        // NaN never beats a number
        for (int j = 0; j < topK; j++) Assert.True(float.IsNaN(BitConverter.Int32BitsToSingle(index[6 * topK + j])));

        var allNaN = Enumerable.Repeat(float.NaN, experts).ToArray();
        index = Route(allNaN, 1, experts, topK, renormalize: false, lanes: 1);
        Assert.Equal([0, 1], index[(5 * topK)..(6 * topK)]);         // still ids in range: the output, not a read, goes bad
    }

    [Fact]
    public void RefusesMoreChoicesThanExperts()
    {
        using var lb = gpu.Upload(new float[4]);
        using var ib = gpu.Upload(new int[64]);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => gpu.Kernels.SoftmaxTopK(gpu.Stream, lb.View, ib.View, 1, 4, 5, true));
        Assert.Contains("[1, 4]", e.Message);
    }
}
