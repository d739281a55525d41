using ILGPU;

namespace Daop.Kernels.Gpu;

/// <summary>Scalar arguments of <see cref="VectorKernels.Norm"/>.</summary>
public struct NormArgs
{
    /// <summary>Rows to normalise.</summary>
    public int Rows;
    /// <summary>Row length (= weight length).</summary>
    public int N;
    /// <summary>Epsilon inside the square root.</summary>
    public float Eps;
    /// <summary>1 for LayerNorm (mean-centred, with bias), 0 for RMSNorm.</summary>
    public int Layer;
    /// <summary>Threads per row team (power of two ≤ warp size).</summary>
    public int Lanes;
}

/// <summary>Scalar arguments of <see cref="VectorKernels.Rope"/>.</summary>
public struct RopeArgs
{
    /// <summary>Tokens T.</summary>
    public int Tokens;
    /// <summary>Heads per token.</summary>
    public int Heads;
    /// <summary>Head width D.</summary>
    public int HeadDim;
    /// <summary>Rotated dims / 2 (cos/sin table width).</summary>
    public int Half;
    /// <summary>Position of token 0.</summary>
    public int StartPos;
}

/// <summary>
/// Row-wise and element-wise kernels: norms (a team per row), RoPE, embedding gather, residual add, clamp,
/// sigmoid-gated add, expert-output combine. All grid-stride.
/// </summary>
public static class VectorKernels
{
    static int Stride => Grid.DimX * Group.DimX;

    /// <summary>
    /// y[row] = norm(x[row]) · weight (+ bias) for every row: RMSNorm x / √(mean x² + eps), or LayerNorm
    /// (x − mean) / √(var + eps). y may alias x.
    /// </summary>
    public static void Norm(ArrayView<float> x, ArrayView<float> y, ArrayView<float> weight, ArrayView<float> bias, NormArgs a)
    {
        int lanes = a.Lanes, gtid = Grid.GlobalIndex.X;
        int team = gtid / lanes, lane = gtid - team * lanes, teams = Stride / lanes;
        int iters = (a.Rows + teams - 1) / teams;
        for (int it = 0; it < iters; it++)
        {
            int row = it * teams + team;
            int n = row < a.Rows ? a.N : 0;
            long o = (long)row * a.N;
            float mean = 0;
            if (a.Layer != 0)
            {
                float s = 0;
                for (int i = lane; i < n; i += lanes) s += x[o + i];
                mean = GpuMath.TeamSum(s, lanes) / a.N;
            }
            float ss = 0;
            for (int i = lane; i < n; i += lanes)
            {
                float d = x[o + i] - mean;
                ss += d * d;
            }
            ss = GpuMath.TeamSum(ss, lanes);
            float inv = 1f / MathF.Sqrt(ss / a.N + a.Eps);
            for (int i = lane; i < n; i += lanes)
            {
                if (a.Layer != 0) y[o + i] = (x[o + i] - mean) * inv * weight[i] + bias[i];
                else y[o + i] = x[o + i] * inv * weight[i];
            }
        }
    }

    /// <summary>Rotate-half RoPE of x [T, heads, D] in place for positions StartPos.. (pairs i, i + Half).</summary>
    public static void Rope(ArrayView<float> x, ArrayView<float> cos, ArrayView<float> sin, RopeArgs a)
    {
        int n = a.Tokens * a.Heads * a.Half;
        for (int i = Grid.GlobalIndex.X; i < n; i += Stride)
        {
            int f = i % a.Half, th = i / a.Half, t = th / a.Heads;
            long b = (long)th * a.HeadDim + f;
            long c = (long)(a.StartPos + t) * a.Half + f;
            float x0 = x[b], x1 = x[b + a.Half], cs = cos[c], sn = sin[c];
            x[b] = x0 * cs - x1 * sn;
            x[b + a.Half] = x1 * cs + x0 * sn;
        }
    }

    /// <summary>
    /// x[t, c] = table[tokens[t], c] widened to fp32 (table rows of rowChunks 16-byte chunks; block formats dequantized as
    /// the row kernels read them).
    /// </summary>
    public static void Embed(ArrayView<Chunk16> table, ArrayView<int> tokens, ArrayView<float> x, int tokenCount, int cols,
        int rowChunks, int type)
    {
        int n = tokenCount * cols, per = GpuMath.PerChunk(type);
        for (int i = Grid.GlobalIndex.X; i < n; i += Stride)
        {
            int t = i / cols, c = i - t * cols;
            long row = (long)tokens[t] * rowChunks;
            if (type == GpuMath.Q8_0) x[i] = BlockDots.Element<Q8_0Format>(table, row, cols, c);
            else if (type == GpuMath.Q4_0) x[i] = BlockDots.Element<Q4_0Format>(table, row, cols, c);
            else if (type == GpuMath.MXFP4) x[i] = BlockDots.Element<Mxfp4Format>(table, row, cols, c);
            else if (type == GpuMath.Q4_K) x[i] = BlockDots.Element<Q4_KFormat>(table, row, cols, c);
            else
            {
                int chunk = c / per;
                x[i] = GpuMath.Element(table[row + chunk], type, c - chunk * per);
            }
        }
    }

    /// <summary>acc[i] += x[i] for i &lt; n.</summary>
    public static void Add(ArrayView<float> acc, ArrayView<float> x, int n)
    {
        for (int i = Grid.GlobalIndex.X; i < n; i += Stride) acc[i] += x[i];
    }

    /// <summary>x[i] = clamp(x[i], −limit, limit) for i &lt; n.</summary>
    public static void Clamp(ArrayView<float> x, int n, float limit)
    {
        for (int i = Grid.GlobalIndex.X; i < n; i += Stride) x[i] = MathF.Min(MathF.Max(x[i], -limit), limit);
    }

    /// <summary>acc[t, c] += sigmoid(gate[t]) · x[t, c] for t &lt; tokens, c &lt; width.</summary>
    public static void AddSigmoidScaled(ArrayView<float> acc, ArrayView<float> x, ArrayView<float> gate, int tokens, int width)
    {
        int n = tokens * width;
        for (int i = Grid.GlobalIndex.X; i < n; i += Stride)
        {
            float s = 1f / (1f + GpuMath.Exp(-gate[i / width]));
            acc[i] += x[i] * s;
        }
    }

    /// <summary>y[t, c] = Σ_j yk[t·topK + j, c]: the routed experts' (already weighted) outputs per token.</summary>
    public static void Combine(ArrayView<float> yk, ArrayView<float> y, int tokens, int topK, int width)
    {
        int n = tokens * width;
        for (int i = Grid.GlobalIndex.X; i < n; i += Stride)
        {
            int t = i / width, c = i - t * width;
            float s = 0;
            for (int j = 0; j < topK; j++) s += yk[(long)(t * topK + j) * width + c];
            y[i] = s;
        }
    }
}
