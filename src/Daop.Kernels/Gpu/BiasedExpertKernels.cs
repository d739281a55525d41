using ILGPU;

namespace Daop.Kernels.Gpu;

/// <summary>
/// The element-wise pieces of a GPT-OSS expert on the device (<see cref="Cpu.BiasedExpertFfn"/>'s twins; the biased
/// projections are the Linear kernels): gather an expert's rows, the clamped SwiGLU, and the weighted scatter-add of its
/// outputs. Positions are slots t·K + k of a [T, K] routing, grouped by expert in <c>order</c>.
/// </summary>
public static class BiasedExpertKernels
{
    static int Stride => Grid.DimX * Group.DimX;

    /// <summary>xs[j, c] = x[order[start + j] / topK, c] for j &lt; n, c &lt; width: the expert's input rows, packed.</summary>
    public static void Gather(ArrayView<float> x, ArrayView<float> xs, ArrayView<int> order, int start, int n, int width, int topK)
    {
        long total = (long)n * width;
        for (long i = Grid.GlobalIndex.X; i < total; i += Stride)
        {
            long j = i / width, c = i - j * width;
            xs[i] = x[(long)(order[start + (int)j] / topK) * width + c];
        }
    }

    /// <summary>g[i] = (clamp(u[i], ±limit) + 1) · min(g[i], limit)·σ(α·min(g[i], limit)) for i &lt; n (<see cref="Cpu.ClampedSwiGlu"/>).</summary>
    public static void ClampedSwiGlu(ArrayView<float> g, ArrayView<float> u, int n, float alpha, float limit)
    {
        for (int i = Grid.GlobalIndex.X; i < n; i += Stride)
        {
            float x = MathF.Min(g[i], limit), v = MathF.Min(MathF.Max(u[i], -limit), limit);
            g[i] = x / (1f + GpuMath.Exp(-alpha * x)) * (v + 1f);
        }
    }

    /// <summary>
    /// y[order[start + j] / topK, c] += weights[order[start + j]] · o[j, c]: an expert's outputs into their tokens' rows.
    /// A token routes to an expert at most once, so no two j of one launch write the same row.
    /// </summary>
    public static void ScatterAdd(ArrayView<float> y, ArrayView<float> o, ArrayView<int> order, ArrayView<float> weights, int start, int n,
        int width, int topK)
    {
        long total = (long)n * width;
        for (long i = Grid.GlobalIndex.X; i < total; i += Stride)
        {
            long j = i / width, c = i - j * width;
            int slot = order[start + (int)j];
            y[(long)(slot / topK) * width + c] += weights[slot] * o[i];
        }
    }
}
