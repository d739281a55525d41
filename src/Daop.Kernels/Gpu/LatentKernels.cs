using ILGPU;
using ILGPU.Runtime;

namespace Daop.Kernels.Gpu;

/// <summary>Scalar arguments of the latent-attention kernels (<see cref="Cpu.LatentShape"/> plus the call's tokens).</summary>
public struct LatentArgs
{
    /// <summary>Tokens T (positions StartPos ..).</summary>
    public int Tokens;
    /// <summary>Position of the first token.</summary>
    public int StartPos;
    /// <summary>NH.</summary>
    public int Heads;
    /// <summary>r.</summary>
    public int Rank;
    /// <summary>dr.</summary>
    public int RopeDim;
    /// <summary>Floats per head of q (dn + dr).</summary>
    public int QStride;
    /// <summary>Where the roped part starts in a head of q (dn).</summary>
    public int QRopeOffset;
    /// <summary>1: RoPE pairs (2i, 2i+1); 0: (i, i + dr/2).</summary>
    public int Interleaved;
    /// <summary>Score scale.</summary>
    public float Scale;
}

/// <summary>Scalar arguments of <see cref="LatentKernels.HeadMatMul"/>.</summary>
public struct HeadMatMulArgs
{
    /// <summary>T.</summary>
    public int Tokens;
    /// <summary>Heads.</summary>
    public int Heads;
    /// <summary>Outputs per head.</summary>
    public int Rows;
    /// <summary>Inputs per head.</summary>
    public int Cols;
    /// <summary>Floats per head in x and where each head's input starts.</summary>
    public int XStride, XOffset;
    /// <summary>Floats per head in y and where each head's output starts.</summary>
    public int YStride, YOffset;
}

/// <summary>
/// ILGPU kernels of multi-head latent attention, twins of <see cref="Cpu.LatentAttention"/>: one thread per output
/// element (head matmul), per rotated pair or latent float (append), and a group per (token, head) (attention). A first
/// version: the attention's parallelism is the group within one (token, head), so decode over long contexts would want
/// positions split across groups (flash-decoding) as well.
/// </summary>
public static class LatentKernels
{
    static int Stride => Grid.DimX * Group.DimX;

    /// <summary>y[t, h·YStride + YOffset + i] = Σ_j w[h, i, j] · x[t, h·XStride + XOffset + j].</summary>
    public static void HeadMatMul(ArrayView<float> w, ArrayView<float> x, ArrayView<float> y, HeadMatMulArgs a)
    {
        int n = a.Tokens * a.Heads * a.Rows;
        for (int e = Grid.GlobalIndex.X; e < n; e += Stride)
        {
            int item = e / a.Rows, i = e - item * a.Rows, h = item % a.Heads;
            long xo = (long)item * a.XStride + a.XOffset, wo = ((long)h * a.Rows + i) * a.Cols;
            float acc = 0;
            for (int j = 0; j < a.Cols; j++) acc += w[wo + j] * x[xo + j];
            y[(long)item * a.YStride + a.YOffset + i] = acc;
        }
    }

    /// <summary>
    /// Per token t: qc[t, h, r + ..] = RoPE(q[t, h·QStride + QRopeOffset ..]) for every head, and cache[StartPos + t] =
    /// [c[t], RoPE(kpe[t])]; one thread per rotated pair (NH + 1 per token) or latent float.
    /// </summary>
    public static void Append(ArrayView<float> q, ArrayView<float> qc, ArrayView<float> c, ArrayView<float> kpe, ArrayView<float> cache,
        ArrayView<float> cos, ArrayView<float> sin, LatentArgs a)
    {
        int half = a.RopeDim / 2, w = a.Rank + a.RopeDim, perToken = (a.Heads + 1) * half + a.Rank;
        int n = a.Tokens * perToken;
        for (int e = Grid.GlobalIndex.X; e < n; e += Stride)
        {
            int t = e / perToken, k = e - t * perToken, pos = a.StartPos + t;
            if (k >= (a.Heads + 1) * half)
            {
                int i = k - (a.Heads + 1) * half;
                cache[(long)pos * w + i] = c[(long)t * a.Rank + i];
                continue;
            }
            int h = k / half, p = k - h * half;                            // h == Heads: the shared key
            int lo = a.Interleaved != 0 ? 2 * p : p, hi = a.Interleaved != 0 ? 2 * p + 1 : p + half;
            float cs = cos[(long)pos * half + p], sn = sin[(long)pos * half + p];
            long src = h < a.Heads ? ((long)t * a.Heads + h) * a.QStride + a.QRopeOffset : (long)t * a.RopeDim;
            float u = h < a.Heads ? q[src + lo] : kpe[src + lo], v = h < a.Heads ? q[src + hi] : kpe[src + hi];
            float ru = u * cs - v * sn, rv = v * cs + u * sn;
            if (h < a.Heads)
            {
                long dst = ((long)t * a.Heads + h) * w + a.Rank;
                qc[dst + lo] = ru;
                qc[dst + hi] = rv;
            }
            else
            {
                long dst = (long)pos * w + a.Rank;
                cache[dst + lo] = ru;
                cache[dst + hi] = rv;
            }
        }
    }

    /// <summary>Largest latent width r <see cref="Attend"/> takes (its accumulators live in shared memory).</summary>
    public const int MaxRank = 1024;
    /// <summary>Largest group <see cref="Attend"/> takes (one score per thread in shared memory).</summary>
    public const int MaxGroup = 1024;

    /// <summary>
    /// o[t, h] [r] = Σ_j softmax_j(Scale · qc[t, h]·cache[j]) · cache[j, :r] over j ≤ StartPos + t. One group per
    /// (token, head): each thread scores one position of a block of Group.DimX (a dot over r + dr), then the block's
    /// probabilities update the shared accumulators with the threads over the r dims (coalesced reads of the latents),
    /// rescaled by an online softmax as the running maximum grows.
    /// </summary>
    public static void Attend(ArrayView<float> qc, ArrayView<float> cache, ArrayView<float> o, LatentArgs a)
    {
        var sc = SharedMemory.Allocate<float>(MaxGroup);
        var acc = SharedMemory.Allocate<float>(MaxRank);
        int tid = Group.IdxX, g = Group.DimX, w = a.Rank + a.RopeDim, items = a.Tokens * a.Heads;
        for (int item = Grid.IdxX; item < items; item += Grid.DimX)     // one item per group: uniform within it
        {
            int pos = a.StartPos + item / a.Heads;
            long qo = (long)item * w;
            for (int i = tid; i < a.Rank; i += g) acc[i] = 0;
            float m = float.NegativeInfinity, l = 0;                     // the same in every thread of the group
            for (int b = 0; b <= pos; b += g)
            {
                int n = pos + 1 - b < g ? pos + 1 - b : g;
                if (tid < n)
                {
                    long ko = (long)(b + tid) * w;
                    float dot = 0;
                    for (int i = 0; i < w; i++) dot += qc[qo + i] * cache[ko + i];
                    sc[tid] = dot * a.Scale;
                }
                Group.Barrier();
                float bm = m;
                for (int j = 0; j < n; j++) bm = MathF.Max(bm, sc[j]);
                Group.Barrier();                                         // every thread has read the scores
                if (tid < n) sc[tid] = GpuMath.Exp(sc[tid] - bm);
                Group.Barrier();
                float corr = GpuMath.Exp(m - bm), s = 0;
                for (int j = 0; j < n; j++) s += sc[j];
                l = l * corr + s;
                for (int i = tid; i < a.Rank; i += g)
                {
                    float x = acc[i] * corr;
                    for (int j = 0; j < n; j++) x += sc[j] * cache[(long)(b + j) * w + i];
                    acc[i] = x;
                }
                m = bm;
                Group.Barrier();                                         // the next block rewrites the scores
            }
            float inv = 1f / l;
            for (int i = tid; i < a.Rank; i += g) o[(long)item * a.Rank + i] = acc[i] * inv;
            Group.Barrier();                                             // the next item clears the accumulators
        }
    }
}

/// <summary>Launchers of <see cref="LatentKernels"/>.</summary>
internal sealed class LatentOps(GpuLaunch launch)
{
    readonly Action<GpuStream, KernelConfig, GpuView<float>, GpuView<float>, GpuView<float>, HeadMatMulArgs> _headMatMul =
        launch.Loader.Load("HeadMatMul", a => a.Bind<GpuView<float>, GpuView<float>, GpuView<float>, HeadMatMulArgs>(LatentKernels.HeadMatMul));
    readonly Action<GpuStream, KernelConfig, GpuView<float>, GpuView<float>, GpuView<float>, GpuView<float>, GpuView<float>,
        GpuView<float>, GpuView<float>, LatentArgs> _append =
        launch.Loader.Load("LatentAppend", a => a.Bind<GpuView<float>, GpuView<float>, GpuView<float>, GpuView<float>, GpuView<float>,
            GpuView<float>, GpuView<float>, LatentArgs>(LatentKernels.Append));
    readonly Action<GpuStream, KernelConfig, GpuView<float>, GpuView<float>, GpuView<float>, LatentArgs> _attend =
        launch.Loader.Load("LatentAttend", a => a.Bind<GpuView<float>, GpuView<float>, GpuView<float>, LatentArgs>(LatentKernels.Attend));

    public void HeadMatMul(GpuStream s, GpuView<float> w, GpuView<float> x, GpuView<float> y, HeadMatMulArgs a)
    {
        long n = (long)a.Tokens * a.Heads * a.Rows;
        if (n > 0) _headMatMul(s, launch.Elementwise(n), w, x, y, a);
    }

    public void Append(GpuStream s, GpuView<float> q, GpuView<float> qc, GpuView<float> c, GpuView<float> kpe, GpuView<float> cache,
        GpuView<float> cos, GpuView<float> sin, LatentArgs a)
    {
        long n = (long)a.Tokens * ((a.Heads + 1) * (a.RopeDim / 2) + a.Rank);
        if (n > 0) _append(s, launch.Elementwise(n), q, qc, c, kpe, cache, cos, sin, a);
    }

    public void Attend(GpuStream s, GpuView<float> qc, GpuView<float> cache, GpuView<float> o, LatentArgs a)
    {
        long items = (long)a.Tokens * a.Heads;
        if (items <= 0) return;
        if (a.Rank > LatentKernels.MaxRank) throw new NotSupportedException($"latent width {a.Rank} > {LatentKernels.MaxRank}");
        int group = Math.Min(launch.GroupSize, LatentKernels.MaxGroup);
        int groups = (int)Math.Min(items, launch.IsCpu ? launch.MaxGroups : int.MaxValue);
        launch.Count();
        _attend(s, new KernelConfig(groups, group), qc, cache, o, a);
    }
}
