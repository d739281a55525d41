using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Daop.Kernels.Cpu;

namespace Daop.Engine.Device.Cpu;

/// <summary>
/// Causal grouped-query attention over a fp32 KV cache: o = softmax(q·Kᵀ / √D) · V per head, with query
/// head h reading kv head h / (NH / NKV). (token, head) pairs run in parallel on <see cref="CpuWorkers"/> when
/// there is enough work; the inner loops are hand-vectorised because head dims are short (32–128) and a
/// library call per cached position would cost more than the arithmetic.
/// </summary>
public static unsafe class CpuAttention
{
    /// <summary>Scalar twin of <see cref="CausalTransposed"/> over the plain [capacity, NKV·D] key layout (the tests' reference).</summary>
    /// <param name="q">[T, NH·D] queries of positions startPos..startPos+T−1.</param>
    /// <param name="k">[capacity, NKV·D] keys, filled up to startPos+T.</param>
    /// <param name="v">[capacity, NKV·D] values.</param>
    /// <param name="o">[T, NH·D] output.</param>
    /// <param name="tokens">T.</param>
    /// <param name="startPos">Position of the first query.</param>
    /// <param name="heads">NH.</param>
    /// <param name="kvHeads">NKV.</param>
    /// <param name="d">D.</param>
    /// <param name="window">Sliding window, if any.</param>
    /// <param name="sinks">[NH] sink logits joining each head's softmax denominator (GPT-OSS), if any.</param>
    /// <param name="chunk">Aligned chunk length C (a query at p sees keys from p − p mod C on), or 0.</param>
    public static void Causal(float[] q, float[] k, float[] v, float[] o, int tokens, int startPos, int heads, int kvHeads, int d,
        int? window, float[]? sinks = null, int chunk = 0)
    {
        int group = heads / kvHeads, qDim = heads * d, kvDim = kvHeads * d;
        double scale = 1 / Math.Sqrt(d);
        var p = new double[startPos + tokens];
        for (int t = 0; t < tokens; t++)
            for (int h = 0; h < heads; h++)
            {
                int pos = startPos + t, first = window is { } w ? Math.Max(0, pos - w + 1) : 0, kv = (h / group) * d;
                if (chunk > 0) first = Math.Max(first, pos - pos % chunk);
                double max = double.NegativeInfinity, sum = 0;
                for (int j = first; j <= pos; j++)
                {
                    double x = 0;
                    for (int c = 0; c < d; c++) x += q[t * qDim + h * d + c] * k[j * kvDim + kv + c];
                    p[j] = x * scale;
                    max = Math.Max(max, p[j]);
                }
                if (sinks != null) max = Math.Max(max, sinks[h]);
                for (int j = first; j <= pos; j++) sum += p[j] = Math.Exp(p[j] - max);
                if (sinks != null) sum += Math.Exp(sinks[h] - max);
                for (int c = 0; c < d; c++)
                {
                    double acc = 0;
                    for (int j = first; j <= pos; j++) acc += p[j] * v[j * kvDim + kv + c];
                    o[t * qDim + h * d + c] = (float)(acc / sum);
                }
            }
    }

    /// <summary>
    /// Same as <see cref="Causal"/> with keys stored transposed, <paramref name="kt"/> [NKV·D, capacity] with rows
    /// <paramref name="capacity"/> floats apart: the scores of
    /// 16 consecutive positions are then 16 vertical fused multiply-adds per head dimension, with no horizontal sums.
    /// This is the CPU device's cache layout; <see cref="Causal"/> is its twin over the plain layout. q and o are read
    /// and written from row <paramref name="row"/> on; <paramref name="sinks"/> [NH], if given, join the denominators.
    /// </summary>
    public static void CausalTransposed(float[] q, float[] kt, int capacity, float[] v, float[] o, int tokens, int startPos, int heads,
        int kvHeads, int d, int? window, int row = 0, float[]? sinks = null, int chunk = 0)
    {
        if (sinks != null && sinks.Length < heads) throw new ArgumentException($"sinks holds {sinks.Length} logits, need {heads}", nameof(sinks));
        if ((long)(row + tokens) * heads * d > Math.Min(q.Length, o.Length))
            throw new ArgumentException($"rows {row}..{row + tokens - 1} of {heads}x{d} do not fit q ({q.Length}) or o ({o.Length})");
        fixed (float* pq = q, pk = kt, pv = v, po = o, ps = sinks)
        {
            long first = (long)row * heads * d;                                  // q and o from row `row` on
            var job = new TransposedJob
            {
                Q = pq + first, Kt = pk, V = pv, O = po + first, Sinks = ps, Capacity = capacity, StartPos = startPos, Heads = heads,
                KvHeads = kvHeads, D = d, Window = window ?? 0, Chunk = chunk,
            };
            int items = tokens * heads;
            long work = (long)items * (startPos + tokens) * d;
            if (work < 262144) job.Execute(0, items);
            else CpuWorkers.For(items, Math.Max(1, items / (4 * CpuWorkers.Threads)), job);
        }
    }

    // Positions scored at a time: the scores live on the stack, so no buffer depends on the context or the thread.
    const int Block = 256;

    struct TransposedJob : IParallelJob
    {
        public float* Q, Kt, V, O, Sinks;                                   // Sinks [NH] or null
        public int Capacity, StartPos, Heads, KvHeads, D, Window, Chunk;

        // Online softmax over blocks of positions (as flash attention does): o and the running sum are rescaled by
        // exp(m_old − m_new) when a block raises the running maximum m, so every exponent is ≤ 0 for any finite scores.
        public readonly void Execute(int start, int end)
        {
            int d = D, group = Heads / KvHeads, qDim = Heads * d, kvDim = KvHeads * d;
            float scale = 1f / MathF.Sqrt(d);
            float* sc = stackalloc float[Block];
            for (int item = start; item < end; item++)
            {
                int t = item / Heads, h = item - t * Heads, g = h / group;
                int pos = StartPos + t;
                int first = Window > 0 ? Math.Max(0, pos - Window + 1) : 0;
                if (Chunk > 0) first = Math.Max(first, pos - pos % Chunk);
                int n = pos - first + 1;
                float* qh = Q + t * qDim + h * d;
                float* oh = O + t * qDim + h * d;
                var o = new Span<float>(oh, d);
                o.Clear();
                float max = float.NegativeInfinity, sum = 0;
                for (int b = 0; b < n; b += Block)
                {
                    int m = Math.Min(Block, n - b);
                    Scores(qh, Kt + (long)g * d * Capacity + first + b, Capacity, d, scale, sc, m);
                    var span = new Span<float>(sc, m);
                    float newMax = MathF.Max(max, TensorPrimitives.Max(span));
                    if (newMax > max && b > 0)
                    {
                        float rescale = MathF.Exp(max - newMax);
                        sum *= rescale;
                        TensorPrimitives.Multiply(o, rescale, o);
                    }
                    max = newMax;
                    TensorPrimitives.Subtract(span, max, span);
                    TensorPrimitives.Exp(span, span);
                    sum += TensorPrimitives.Sum(span);
                    float* vh = V + (long)(first + b) * kvDim + g * d;
                    for (int j = 0; j < m; j++) Axpy(sc[j], vh + (long)j * kvDim, oh, d);
                }
                // The sink adds exp(s − max) to the denominator only; past the running max it is the new max
                // (o and sum rescaled as for a block), so the exponent stays ≤ 0.
                if (Sinks != null)
                {
                    float sink = Sinks[h];
                    if (sink > max)
                    {
                        float rescale = MathF.Exp(max - sink);
                        sum *= rescale;
                        TensorPrimitives.Multiply(o, rescale, o);
                        max = sink;
                    }
                    sum += MathF.Exp(sink - max);
                }
                TensorPrimitives.Multiply(o, 1f / sum, o);
            }
        }
    }

    // sc[j] = scale · q·k_j for m consecutive positions; kg points at position 0 of head dimension 0, rows capacity apart.
    static void Scores(float* qh, float* kg, int capacity, int d, float scale, float* sc, int m)
    {
        int j = 0;
        if (Vector512.IsHardwareAccelerated)
            for (; j + 16 <= m; j += 16)
            {
                var acc = Vector512<float>.Zero;
                for (int c = 0; c < d; c++) acc = Vector512.FusedMultiplyAdd(Vector512.Create(qh[c]), Vector512.Load(kg + (long)c * capacity + j), acc);
                (acc * scale).Store(sc + j);
            }
        else if (Vector256.IsHardwareAccelerated)
            for (; j + 8 <= m; j += 8)
            {
                var acc = Vector256<float>.Zero;
                for (int c = 0; c < d; c++) acc = Vector256.FusedMultiplyAdd(Vector256.Create(qh[c]), Vector256.Load(kg + (long)c * capacity + j), acc);
                (acc * scale).Store(sc + j);
            }
        for (; j < m; j++)
        {
            float x = 0;
            for (int c = 0; c < d; c++) x += qh[c] * kg[(long)c * capacity + j];
            sc[j] = x * scale;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Axpy(float alpha, float* x, float* y, int d)
    {
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var va = Vector256.Create(alpha);
            for (; i + 8 <= d; i += 8) Vector256.FusedMultiplyAdd(va, Vector256.Load(x + i), Vector256.Load(y + i)).Store(y + i);
        }
        for (; i < d; i++) y[i] += alpha * x[i];
    }
}
