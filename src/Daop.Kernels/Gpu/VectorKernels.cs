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
    /// <summary>1: x += residual first (the residual add before the next norm, in the same pass).</summary>
    public int Residual;
}

/// <summary>Scalar arguments of <see cref="VectorKernels.Rope"/>.</summary>
public struct RopeArgs
{
    /// <summary>Tokens T.</summary>
    public int Tokens;
    /// <summary>Heads per token of x.</summary>
    public int Heads;
    /// <summary>Heads per token of the second tensor (k beside q), 0 for none.</summary>
    public int Heads2;
    /// <summary>Head width D.</summary>
    public int HeadDim;
    /// <summary>Rotated dims / 2 (cos/sin table width).</summary>
    public int Half;
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
    /// (x − mean) / √(var + eps). With Residual, x[row] += residual[row] first and is kept (the residual stream), so
    /// the add after a sublayer and the norm before the next are one launch. y may alias x.
    /// </summary>
    public static void Norm(ArrayView<float> x, ArrayView<float> y, ArrayView<float> weight, ArrayView<float> bias,
        ArrayView<float> residual, NormArgs a)
    {
        int lanes = a.Lanes, gtid = Grid.GlobalIndex.X;
        int team = gtid / lanes, lane = gtid - team * lanes, teams = Stride / lanes;
        int iters = (a.Rows + teams - 1) / teams;
        for (int it = 0; it < iters; it++)
        {
            int row = it * teams + team;
            int n = row < a.Rows ? a.N : 0;
            long o = (long)row * a.N;
            if (a.Residual != 0)                                    // each lane adds, then reads back, its own elements
                for (int i = lane; i < n; i += lanes) x[o + i] += residual[o + i];
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

    /// <summary>
    /// <see cref="Norm"/> with a whole group per row, for wide rows (the hidden state: a warp per row of 2048 floats
    /// waits on 64 loads in a row per pass, ~60 µs a decode step on an H100): each thread takes every Group.DimX-th
    /// element (whole Float4s when the row length is a multiple of 4: x4, y4, w4, b4, r4 are the same views as Float4),
    /// warps reduce by shuffles and the group through shared memory.
    /// </summary>
    public static void NormRows(ArrayView<float> x, ArrayView<float> y, ArrayView<float> weight, ArrayView<float> bias,
        ArrayView<float> residual, ArrayView<Float4> x4, ArrayView<Float4> y4, ArrayView<Float4> w4, ArrayView<Float4> b4,
        ArrayView<Float4> r4, NormArgs a)
    {
        var partial = SharedMemory.Allocate<float>(MaxWarps);
        int tid = Group.IdxX, g = Group.DimX, n = a.N;
        bool vec = (n & 3) == 0;
        int m = vec ? n >> 2 : n;                                   // items per row: Float4s or floats
        for (int row = Grid.IdxX; row < a.Rows; row += Grid.DimX)   // uniform within the group
        {
            long o = (long)row * m;
            float s1 = 0, s2 = 0;                                   // Σx (LayerNorm's mean), Σx² (RMSNorm)
            for (int i = tid; i < m; i += g)
            {
                if (vec)
                {
                    Float4 v = x4[o + i];
                    if (a.Residual != 0) { Float4 r = r4[o + i]; v.X += r.X; v.Y += r.Y; v.Z += r.Z; v.W += r.W; x4[o + i] = v; }
                    s1 += v.X + v.Y + v.Z + v.W;
                    s2 += v.X * v.X + v.Y * v.Y + v.Z * v.Z + v.W * v.W;
                }
                else
                {
                    float v = x[o + i];
                    if (a.Residual != 0) { v += residual[o + i]; x[o + i] = v; }
                    s1 += v;
                    s2 += v * v;
                }
            }
            float mean = 0, inv;
            if (a.Layer != 0)
            {
                mean = GroupSum(s1, partial) / n;
                float ss = 0;                                       // Σ(x − mean)²: the two-pass variance, as the CPU's
                for (int i = tid; i < m; i += g)
                {
                    if (vec)
                    {
                        Float4 v = x4[o + i];
                        float d0 = v.X - mean, d1 = v.Y - mean, d2 = v.Z - mean, d3 = v.W - mean;
                        ss += d0 * d0 + d1 * d1 + d2 * d2 + d3 * d3;
                    }
                    else
                    {
                        float d = x[o + i] - mean;
                        ss += d * d;
                    }
                }
                inv = 1f / MathF.Sqrt(GroupSum(ss, partial) / n + a.Eps);
            }
            else inv = 1f / MathF.Sqrt(GroupSum(s2, partial) / n + a.Eps);
            for (int i = tid; i < m; i += g)
            {
                if (vec)
                {
                    Float4 v = x4[o + i], w = w4[i];
                    Float4 r;
                    r.X = (v.X - mean) * inv * w.X;
                    r.Y = (v.Y - mean) * inv * w.Y;
                    r.Z = (v.Z - mean) * inv * w.Z;
                    r.W = (v.W - mean) * inv * w.W;
                    if (a.Layer != 0) { Float4 b = b4[i]; r.X += b.X; r.Y += b.Y; r.Z += b.Z; r.W += b.W; }
                    y4[o + i] = r;
                }
                else
                {
                    float r = (x[o + i] - mean) * inv * weight[i];
                    y[o + i] = a.Layer != 0 ? r + bias[i] : r;
                }
            }
        }
    }

    /// <summary>Most warps a group of <see cref="NormRows"/> may hold.</summary>
    public const int MaxWarps = 32;

    // Σ v over the group (every thread gets it): shuffles within each warp, then the warps' partials through shared memory.
    static float GroupSum(float v, ArrayView<float> partial)
    {
        v = GpuMath.TeamSum(v, Warp.WarpSize);
        if (Warp.LaneIdx == 0) partial[Warp.WarpIdx] = v;
        Group.Barrier();
        float t = 0;
        for (int w = 0; w < Group.DimX / Warp.WarpSize; w++) t += partial[w];
        Group.Barrier();                                            // partial is reused by the next sum
        return t;
    }

    /// <summary>
    /// Rotate-half RoPE in place (pairs i, i + Half) of x [T, Heads, D] and, in the same launch, of x2 [T, Heads2, D]
    /// (q and k), token t at its position in the step's token table at [T, <see cref="StepTokens.Fields"/>].
    /// </summary>
    public static void Rope(ArrayView<float> x, ArrayView<float> x2, ArrayView<float> cos, ArrayView<float> sin, ArrayView<int> at, RopeArgs a)
    {
        int heads = a.Heads + a.Heads2, n = a.Tokens * heads * a.Half;
        for (int i = Grid.GlobalIndex.X; i < n; i += Stride)
        {
            int f = i % a.Half, th = i / a.Half, t = th / heads, hh = th - t * heads;
            long c = (long)at[t * StepTokens.Fields + StepTokens.Position] * a.Half + f;
            float cs = cos[c], sn = sin[c];
            if (hh < a.Heads) RotatePair(x, ((long)t * a.Heads + hh) * a.HeadDim + f, a.Half, cs, sn);
            else RotatePair(x2, ((long)t * a.Heads2 + hh - a.Heads) * a.HeadDim + f, a.Half, cs, sn);
        }
    }

    static void RotatePair(ArrayView<float> x, long b, int half, float cs, float sn)
    {
        float x0 = x[b], x1 = x[b + half];
        x[b] = x0 * cs - x1 * sn;
        x[b + half] = x1 * cs + x0 * sn;
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

    /// <summary>x[t, c] *= scales[t] for t &lt; tokens, c &lt; width.</summary>
    public static void ScaleRows(ArrayView<float> x, ArrayView<float> scales, int tokens, int width)
    {
        int n = tokens * width;
        for (int i = Grid.GlobalIndex.X; i < n; i += Stride) x[i] *= scales[i / width];
    }

    /// <summary>x[i] *= factor for i &lt; n.</summary>
    public static void Scale(ArrayView<float> x, int n, float factor)
    {
        for (int i = Grid.GlobalIndex.X; i < n; i += Stride) x[i] *= factor;
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
