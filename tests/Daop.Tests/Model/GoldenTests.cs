using Daop.Engine.Load.Config;
using Daop.Engine.Load.Safetensors;
using Daop.Engine.Model;
using Daop.Engine.Model.Layers;

namespace Daop.Tests.Model;

/// <summary>
/// End-to-end goldens against transformers 5.17 (fp32 forward over the same bf16 weights): logits, router
/// logits and KV-cached greedy continuations of every fixture family and the embedded model.
/// Tolerance: max |ours − ref| ≤ 1e-4 · max(1, max |ref|) per tensor. Both sides compute in fp32 from
/// identical bf16 weights; what differs is summation order, which at these widths (≤ 4096) moves results
/// by a few ulps of the largest partial sums — far inside 1e-4 relative.
/// </summary>
public class GoldenTests
{
    [Theory]
    [MemberData(nameof(TestPaths.HfFixtures), MemberType = typeof(TestPaths))]
    public void LogitsAndRouterLogitsMatchTransformers(string fixture) =>
        CheckLogits(TestPaths.Fixture(fixture), "reference.safetensors");

    [Fact]
    public void EmbeddedModelLogitsMatchTransformers() =>
        CheckLogits(TestPaths.DefaultModel, "reference.safetensors");

    static void CheckLogits(string dir, string refFile)
    {
        using var reference = TensorStore.OpenFile(Path.Combine(dir, refFile));
        using var model = MoeModel.Load(dir);
        var (ids, idShape) = reference.Int64s("input_ids");
        var (refLogits, _) = reference.Floats("logits");
        int rows = (int)idShape[0], len = (int)idShape[1], v = model.Config.VocabSize, e = model.Config.NumExperts;
        for (int b = 0; b < rows; b++)
        {
            var rec = new RoutingRecorder(model.Config.NumLayers, e, model.Config.TopK, keepLogits: true);
            model.Observer = rec;
            var tokens = ids.Skip(b * len).Take(len).Select(x => (int)x).ToArray();
            var logits = new float[len * v];
            model.Forward(tokens, 0, model.NewCache(), logits, allLogits: true);
            // router_logits.{i} is the i-th routed MoE layer's (dense layers, and dense models' single experts, have no router).
            var moeLayers = Enumerable.Range(0, model.Config.NumLayers)
                .Where(l => model.Config.Layers[l].Ffn is FfnSpec.Moe { Router: not RouterSpec.Single }).ToArray();
            Assert.Equal(moeLayers.Length, Enumerable.Range(0, moeLayers.Length + 1).TakeWhile(i => reference.Contains($"router_logits.{i}")).Count());
            foreach (var (l, i) in moeLayers.Select((l, i) => (l, i)))
            {
                var (refRouter, _) = reference.Floats($"router_logits.{i}");
                LogitsAssert.Close(refRouter.AsSpan(b * len * e, len * e), Enumerable.Range(0, len).SelectMany(p => rec.Logits(l, p).ToArray()).ToArray(), $"{Path.GetFileName(dir)} row {b} router_logits.{l}");
                // The recorded experts are what the family's router picks from transformers' own logits.
                var k = model.Config.TopK;
                int[] want = new int[k];
                float[] wts = new float[k], probs = new float[e];
                for (int p = 0; p < len; p++)
                {
                    Router.Route(model.Config.Router, refRouter.AsSpan((b * len + p) * e, e), (model.Weights.Layers[l].Ffn as MoeBlock)?.ScoreBias, want, wts, probs);
                    Assert.Equal(want.Order(), rec.Ids(l, p).ToArray().Order());
                }
            }
            LogitsAssert.Close(refLogits.AsSpan(b * len * v, len * v), logits, $"{Path.GetFileName(dir)} row {b} logits");
        }
    }

    [Theory]
    [MemberData(nameof(TestPaths.HfFixtures), MemberType = typeof(TestPaths))]
    public void GreedyContinuationMatchesWithKvCache(string fixture)
    {
        string dir = TestPaths.Fixture(fixture);
        using var reference = TensorStore.OpenFile(Path.Combine(dir, "reference.safetensors"));
        using var model = MoeModel.Load(dir);
        var (prompts, pShape) = reference.Int64s("greedy_prompt_ids");
        var (expected, eShape) = reference.Int64s("greedy_new_ids");
        for (int b = 0; b < pShape[0]; b++)
        {
            var prompt = prompts.Skip(b * (int)pShape[1]).Take((int)pShape[1]).Select(x => (int)x).ToArray();
            var want = expected.Skip(b * (int)eShape[1]).Take((int)eShape[1]).Select(x => (int)x).ToArray();
            Assert.Equal(want, Greedy(model, prompt, want.Length));
        }
    }

    /// <summary>Prefill the prompt, then decode one token at a time through the KV cache, taking the arg-max.</summary>
    internal static int[] Greedy(MoeModel model, int[] prompt, int n)
    {
        var cache = model.NewCache();
        var logits = new float[model.Config.VocabSize];
        model.Forward(prompt, 0, cache, logits);
        var outIds = new int[n];
        int pos = prompt.Length;
        for (int i = 0; i < n; i++)
        {
            outIds[i] = System.Numerics.Tensors.TensorPrimitives.IndexOfMax(logits);
            if (i + 1 < n) model.Forward([outIds[i]], pos++, cache, logits);
        }
        return outIds;
    }
}
