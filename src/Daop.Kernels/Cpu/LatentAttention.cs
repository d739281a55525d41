using System.Numerics.Tensors;

namespace Daop.Kernels.Cpu;

/// <summary>
/// Shape of one multi-head latent attention call (DeepSeek MLA with W_uk absorbed into the query): NH heads attend with
/// queries [r + dr] (absorbed nope part, roped part) over one cached latent per position [r + dr] (c, roped k_pe), and
/// read values as the latent's first r floats. Shared by the CPU and GPU kernels.
/// </summary>
/// <param name="Heads">NH.</param>
/// <param name="Rank">r: the latent c's width.</param>
/// <param name="RopeDim">dr: the rotated key/query part's width.</param>
/// <param name="QStride">Floats per head in the projected q the roped part is read from (dn + dr).</param>
/// <param name="QRopeOffset">Where in each head of q the roped part starts (dn).</param>
/// <param name="Scale">The score scale.</param>
/// <param name="Interleaved">RoPE pairs (2i, 2i+1) rather than (i, i + dr/2).</param>
public readonly record struct LatentShape(int Heads, int Rank, int RopeDim, int QStride, int QRopeOffset, float Scale, bool Interleaved)
{
    /// <summary>Floats per cached position and per absorbed query head: r + dr.</summary>
    public int Width => Rank + RopeDim;
}

/// <summary>
/// CPU kernels of multi-head latent attention: the per-head matmul that absorbs W_uk into q and applies W_uv after the
/// weighted sum, the RoPE-and-append step, and the attention over the compressed cache. Vectorised dots (the head
/// matmul has <see cref="HeadMatMulScalar"/> as its twin, the attention is tested against MLA expanded per head);
/// (token, head) items in parallel on <see cref="CpuWorkers"/> when there is enough work.
/// </summary>
public static class LatentAttention
{
    /// <summary>
    /// y[t, h·yStride + yOffset + i] = Σ_j w[h, i, j] · x[t, h·xStride + xOffset + j] for i &lt; rows, j &lt; cols:
    /// one [rows, cols] matrix per head applied to that head's slice of every token.
    /// </summary>
    /// <param name="w">[heads, rows, cols] fp32.</param>
    /// <param name="x">[T, heads·xStride].</param>
    /// <param name="xStride">Floats per head in x.</param>
    /// <param name="xOffset">Where each head's input starts.</param>
    /// <param name="y">[T, heads·yStride].</param>
    /// <param name="yStride">Floats per head in y.</param>
    /// <param name="yOffset">Where each head's output starts.</param>
    /// <param name="tokens">T.</param>
    /// <param name="heads">Heads.</param>
    /// <param name="rows">Outputs per head.</param>
    /// <param name="cols">Inputs per head.</param>
    public static unsafe void HeadMatMul(ReadOnlySpan<float> w, ReadOnlySpan<float> x, int xStride, int xOffset, Span<float> y, int yStride, int yOffset,
        int tokens, int heads, int rows, int cols)
    {
        Check(w, x, xStride, xOffset, y, yStride, yOffset, tokens, heads, rows, cols);
        fixed (float* pw = w, px = x, py = y)
        {
            var job = new HeadMatMulJob { W = pw, X = px, Y = py, Heads = heads, Rows = rows, Cols = cols, XStride = xStride, XOffset = xOffset, YStride = yStride, YOffset = yOffset };
            int items = tokens * heads;
            if ((long)items * rows * cols < 262144) job.Execute(0, items);
            else CpuWorkers.For(items, job);                                // each output is the same dot wherever it runs
        }
    }

    unsafe struct HeadMatMulJob : IParallelJob
    {
        public float* W, X, Y;
        public int Heads, Rows, Cols, XStride, XOffset, YStride, YOffset;

        public readonly void Execute(int start, int end)
        {
            for (int item = start; item < end; item++)
            {
                var xs = new ReadOnlySpan<float>(X + (long)item * XStride + XOffset, Cols);
                float* wh = W + (long)(item % Heads) * Rows * Cols;
                float* ys = Y + (long)item * YStride + YOffset;
                for (int i = 0; i < Rows; i++) ys[i] = TensorPrimitives.Dot(new ReadOnlySpan<float>(wh + (long)i * Cols, Cols), xs);
            }
        }
    }

    /// <summary>Scalar twin of <see cref="HeadMatMul"/>.</summary>
    public static void HeadMatMulScalar(ReadOnlySpan<float> w, ReadOnlySpan<float> x, int xStride, int xOffset, Span<float> y, int yStride,
        int yOffset, int tokens, int heads, int rows, int cols)
    {
        Check(w, x, xStride, xOffset, y, yStride, yOffset, tokens, heads, rows, cols);
        for (int t = 0; t < tokens; t++)
            for (int h = 0; h < heads; h++)
                for (int i = 0; i < rows; i++)
                {
                    float acc = 0;
                    for (int j = 0; j < cols; j++) acc += w[(h * rows + i) * cols + j] * x[(t * heads + h) * xStride + xOffset + j];
                    y[(t * heads + h) * yStride + yOffset + i] = acc;
                }
    }

    static void Check(ReadOnlySpan<float> w, ReadOnlySpan<float> x, int xStride, int xOffset, ReadOnlySpan<float> y, int yStride, int yOffset,
        int tokens, int heads, int rows, int cols)
    {
        if (xOffset + cols > xStride || yOffset + rows > yStride) throw new ArgumentException($"a head's {cols} inputs at {xOffset} or {rows} outputs at {yOffset} overrun its stride ({xStride}, {yStride})");
        if (w.Length < (long)heads * rows * cols) throw new ArgumentException($"w holds {w.Length} floats, need {heads}x{rows}x{cols}", nameof(w));
        if (x.Length < (long)tokens * heads * xStride || y.Length < (long)tokens * heads * yStride)
            throw new ArgumentException($"x ({x.Length}) or y ({y.Length}) is shorter than {tokens} tokens of {heads} heads");
    }

    /// <summary>
    /// For tokens t of positions startPos + t: qc[t, h, r ..] = RoPE(q[t, h·QStride + QRopeOffset ..], dr floats), each head
    /// (qc [T, NH·(r+dr)] already holds the absorbed q in each head's first r), and cache[startPos + t] = [c[t] (r), RoPE(kpe[t]) (dr)].
    /// </summary>
    /// <param name="q">[T, NH·QStride] projected queries.</param>
    /// <param name="qc">[T, NH·(r+dr)] absorbed queries, roped parts written.</param>
    /// <param name="c">[T, r] normalised latents.</param>
    /// <param name="kpe">[T, dr] unrotated shared keys.</param>
    /// <param name="cache">[capacity, r+dr].</param>
    /// <param name="cos">[positions, dr/2] RoPE cosines.</param>
    /// <param name="sin">[positions, dr/2] RoPE sines.</param>
    /// <param name="a">The shape.</param>
    /// <param name="tokens">T.</param>
    /// <param name="startPos">Position of the first token.</param>
    public static void Append(ReadOnlySpan<float> q, Span<float> qc, ReadOnlySpan<float> c, ReadOnlySpan<float> kpe, Span<float> cache,
        ReadOnlySpan<float> cos, ReadOnlySpan<float> sin, in LatentShape a, int tokens, int startPos)
    {
        int r = a.Rank, dr = a.RopeDim, w = a.Width, half = dr / 2;
        if (cache.Length < (long)(startPos + tokens) * w) throw new ArgumentException($"positions up to {startPos + tokens} exceed the cache", nameof(cache));
        if (cos.Length < (long)(startPos + tokens) * half) throw new ArgumentException($"positions up to {startPos + tokens} exceed the RoPE table", nameof(cos));
        for (int t = 0; t < tokens; t++)
        {
            int pos = startPos + t;
            var cs = cos.Slice(pos * half, half);
            var sn = sin.Slice(pos * half, half);
            for (int h = 0; h < a.Heads; h++)
                Rotate(q.Slice((t * a.Heads + h) * a.QStride + a.QRopeOffset, dr), qc.Slice((t * a.Heads + h) * w + r, dr), cs, sn, a.Interleaved);
            var row = cache.Slice(pos * w, w);
            c.Slice(t * r, r).CopyTo(row);
            Rotate(kpe.Slice(t * dr, dr), row.Slice(r, dr), cs, sn, a.Interleaved);
        }
    }

    /// <summary>
    /// y = x rotated by the angles of one position: pairs (2i, 2i+1) when interleaved, else (i, i + d/2); y keeps x's layout
    /// (q and k get the same, so their dot products are those of transformers' either layout).
    /// </summary>
    public static void Rotate(ReadOnlySpan<float> x, Span<float> y, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin, bool interleaved)
    {
        int half = cos.Length;
        for (int i = 0; i < half; i++)
        {
            int lo = interleaved ? 2 * i : i, hi = interleaved ? 2 * i + 1 : i + half;
            float u = x[lo], v = x[hi];
            y[lo] = u * cos[i] - v * sin[i];
            y[hi] = v * cos[i] + u * sin[i];
        }
    }

    /// <summary>
    /// o[t, h] [r] = Σ_j softmax_j(scale · qc[t, h]·cache[j]) · cache[j, :r] over positions j ≤ startPos + t (the cache
    /// already holds this call's tokens). o is [T, NH·r] and must not overlap qc. (token, head) items run in parallel on
    /// <see cref="CpuWorkers"/> when there is enough work; each keeps an online softmax over blocks of positions, so no
    /// buffer grows with the context.
    /// </summary>
    public static unsafe void Attend(ReadOnlySpan<float> qc, ReadOnlySpan<float> cache, Span<float> o, in LatentShape a, int tokens, int startPos)
    {
        int r = a.Rank, w = a.Width;
        if (o.Length < (long)tokens * a.Heads * r) throw new ArgumentException($"o holds {o.Length} floats, need {tokens}x{a.Heads}x{r}", nameof(o));
        if (qc.Length < (long)tokens * a.Heads * w) throw new ArgumentException($"qc holds {qc.Length} floats, need {tokens}x{a.Heads}x{w}", nameof(qc));
        if (cache.Length < (long)(startPos + tokens) * w) throw new ArgumentException($"positions up to {startPos + tokens} exceed the cache", nameof(cache));
        fixed (float* pq = qc, pc = cache, po = o)
        {
            var job = new AttendJob { Q = pq, Cache = pc, O = po, Heads = a.Heads, Rank = r, Width = w, StartPos = startPos, Scale = a.Scale };
            int items = tokens * a.Heads;
            long work = (long)items * (startPos + tokens) * w;
            if (work < 262144) job.Execute(0, items);
            else CpuWorkers.For(items, Math.Max(1, items / (4 * CpuWorkers.Threads)), job);
        }
    }

    // Positions scored at a time: the scores live on the stack.
    const int Block = 256;

    unsafe struct AttendJob : IParallelJob
    {
        public float* Q, Cache, O;
        public int Heads, Rank, Width, StartPos;
        public float Scale;

        // As CpuAttention's: o and the running sum are rescaled by exp(m_old − m_new) when a block raises the maximum m.
        public readonly void Execute(int start, int end)
        {
            int r = Rank, w = Width;
            float* sc = stackalloc float[Block];
            for (int item = start; item < end; item++)
            {
                int n = StartPos + item / Heads + 1;
                var qh = new ReadOnlySpan<float>(Q + (long)item * w, w);
                var oh = new Span<float>(O + (long)item * r, r);
                oh.Clear();
                float max = float.NegativeInfinity, sum = 0;
                for (int b = 0; b < n; b += Block)
                {
                    int m = Math.Min(Block, n - b);
                    var span = new Span<float>(sc, m);
                    for (int j = 0; j < m; j++) sc[j] = TensorPrimitives.Dot(qh, new ReadOnlySpan<float>(Cache + (long)(b + j) * w, w)) * Scale;
                    float newMax = MathF.Max(max, TensorPrimitives.Max(span));
                    if (newMax > max && b > 0)
                    {
                        float rescale = MathF.Exp(max - newMax);
                        sum *= rescale;
                        TensorPrimitives.Multiply(oh, rescale, oh);
                    }
                    max = newMax;
                    TensorPrimitives.Subtract(span, max, span);
                    TensorPrimitives.Exp(span, span);
                    sum += TensorPrimitives.Sum(span);
                    for (int j = 0; j < m; j++)
                        TensorPrimitives.MultiplyAdd(new ReadOnlySpan<float>(Cache + (long)(b + j) * w, r), sc[j], oh, oh);
                }
                TensorPrimitives.Multiply(oh, 1f / sum, oh);
            }
        }
    }
}
