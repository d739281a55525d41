using Daop.Engine.Model.Layers;
using Daop.Kernels;
using Daop.Kernels.Gpu;
using ILGPU.Runtime;

namespace Daop.Bench.Gpu;

public static partial class GpuOpsCheck
{
    /// <summary>
    /// Softmax top-k routing on the device against <see cref="Router.SoftmaxTopK"/>: the chosen experts exactly (a wrong
    /// id counts as an infinite error) and their weights within 2e-6, for the expert counts of real models.
    /// </summary>
    static GpuOpCheck Routing(GpuContext acc)
    {
        var k = GpuKernels.For(acc);
        var worst = new Worst("routing");
        foreach (var (experts, topK, tokens) in new[] { (8, 2, 1), (8, 2, 2), (64, 8, 1), (128, 8, 1), (128, 8, 2), (60, 4, 1), (256, 8, 2) })
            foreach (bool renormalize in new[] { false, true })
            {
                var logits = RandomWeights.Floats(tokens * experts, (uint)(experts * 7 + topK), 3f);
                int p = tokens * topK;
                using var lb = Upload(acc, logits);
                using var ib = acc.Allocate1D<int>(RoutingKernels.IndexLength(p));
                k.SoftmaxTopK(acc.DefaultStream, lb.View, ib.View, tokens, experts, topK, renormalize);
                acc.Synchronize();
                var index = ib.GetAsArray1D();
                var ids = new int[topK];
                var weights = new float[topK];
                var probs = new float[experts];
                var got = new float[2 * p];
                var want = new double[2 * p];
                var tol = new double[2 * p];
                for (int t = 0; t < tokens; t++)
                {
                    Router.SoftmaxTopK(logits.AsSpan(t * experts, experts), renormalize, ids, weights, probs);
                    for (int j = 0; j < topK; j++)
                    {
                        int i = t * topK + j;
                        (got[i], want[i], tol[i]) = (index[5 * p + i], ids[j], 0);
                        (got[p + i], want[p + i], tol[p + i]) = (BitConverter.Int32BitsToSingle(index[6 * p + i]), weights[j], 2e-6);
                    }
                }
                worst.Compare($"E={experts} K={topK} T={tokens}{(renormalize ? " renormalised" : "")}", got, want, tol);
            }
        return worst.Result;
    }

    /// <summary>q, k and v of one token in one launch (<see cref="GpuKernels.Gemv3"/>) against three GEMVs: the same bits.</summary>
    static GpuOpCheck Gemv3(GpuContext acc)
    {
        var k = GpuKernels.For(acc);
        var worst = new Worst("gemv3");
        foreach (var type in Types)
            foreach (var (q, kv, cols) in new[] { (4096, 1024, 4096), (4096, 512, 2048), (40, 8, 136) })
                foreach (bool bias in new[] { false, true })
                {
                    int[] rows = [q, kv, kv];
                    var mats = rows.Select((r, i) => Upload(acc, RandomWeights.Matrix(type, r, cols, (uint)(i + 1)))).ToArray();
                    var biases = rows.Select((r, i) => Upload(acc, RandomWeights.Floats(r, (uint)(i + 5)))).ToArray();
                    var ones = rows.Select(r => acc.Allocate1D<float>(r)).ToArray();
                    var fused = rows.Select(r => acc.Allocate1D<float>(r)).ToArray();
                    using var xb = Upload(acc, RandomWeights.Floats(cols, 9));
                    for (int i = 0; i < 3; i++) k.Gemv(acc.DefaultStream, mats[i].Matrix, xb.View, ones[i].View, 1, bias ? biases[i].View : null);
                    k.Gemv3(acc.DefaultStream, mats[0].Matrix, mats[1].Matrix, mats[2].Matrix, xb.View, fused[0].View, fused[1].View, fused[2].View, 1,
                        bias ? biases[0].View : null, bias ? biases[1].View : null, bias ? biases[2].View : null);
                    for (int i = 0; i < 3; i++)
                    {
                        var want = Read(acc, ones[i], rows[i]).Select(v => (double)v).ToArray();
                        worst.Compare($"{Name(type)} {q}+{kv}+{kv}x{cols}{(bias ? " bias" : "")} matrix {i}", Read(acc, fused[i], rows[i]), want,
                            new double[rows[i]]);
                    }
                    foreach (var b in biases.Concat(ones).Concat(fused)) b.Dispose();
                    foreach (var m in mats) m.Buffer.Dispose();
                }
        return worst.Result;
    }
}
