using Daop.Engine.Device.Gpu;
using Daop.Engine.Device.Cpu;
using Daop.Kernels;
using Daop.Kernels.Cpu;
using Daop.Kernels.Gpu;
using ILGPU.Runtime;

namespace Daop.Bench.Gpu;

public static partial class GpuOpsCheck
{
    /// <summary>RMSNorm and LayerNorm (in place) against the scalar CPU kernels within 2e-5 · (|y| + (|x| + |mean|)·inv·|w|).</summary>
    static GpuOpCheck Norms(GpuContext acc, GpuKernelOptions options, string label, bool small)
    {
        var k = GpuKernels.For(acc, options);
        var worst = new Worst($"norm [{label}]");
        (int Rows, int N)[] shapes = small ? [(1, 1), (3, 7), (5, 136)] : [(1, 1), (3, 7), (5, 136), (33, 4096), (7, 6144)];
        foreach (var (rows, n) in shapes)
            foreach (bool layer in new[] { false, true })
            {
                var x = RandomWeights.Floats(rows * n, (uint)(n + rows), 3f);
                for (int i = 0; i < x.Length; i++) x[i] += 0.5f; // a non-zero mean
                var w = RandomWeights.Floats(n, 2);
                var b = RandomWeights.Floats(n, 4);
                var want = new float[rows * n];
                for (int r = 0; r < rows; r++)
                    if (layer) LayerNorm.Scalar(x.AsSpan(r * n, n), w, b, 1e-5f, want.AsSpan(r * n, n));
                    else RmsNorm.Scalar(x.AsSpan(r * n, n), w, 1e-5f, want.AsSpan(r * n, n));
                using var xb = Upload(acc, x);
                using var wb = Upload(acc, w);
                using var bb = Upload(acc, b);
                k.Norm(acc.DefaultStream, xb.View, xb.View, wb.View, layer ? bb.View : null, rows, n, 1e-5f);
                var got = Read(acc, xb, rows * n);
                var tol = new double[rows * n];
                for (int r = 0; r < rows; r++)
                {
                    var xr = x.AsSpan(r * n, n);
                    double mean = 0, var = 0;
                    if (layer) { foreach (float v in xr) mean += v; mean /= n; }
                    foreach (float v in xr) var += (v - mean) * (v - mean);
                    double inv = 1 / Math.Sqrt(var / n + 1e-5);
                    for (int i = 0; i < n; i++)
                        tol[r * n + i] = 2e-5 * (Math.Abs(want[r * n + i]) + (Math.Abs(xr[i]) + Math.Abs(mean)) * inv * Math.Abs(w[i]))
                            + (layer ? 1e-6 * Math.Abs(b[i]) : 0) + 1e-30;
                }
                worst.Compare($"{rows}x{n} {(layer ? "layer" : "rms")}", got, want.Select(v => (double)v).ToArray(), tol);
            }
        return worst.Result;
    }

    /// <summary>
    /// Causal GQA with the fused K/V append against the CPU attention, per attention lane width (1 and the warp) and team
    /// count: outputs within 1e-5 (2e-5 past 64 cached positions), cache rows appended exactly. A case is a step of one
    /// or several sequences in a KV pool (one launch; each sequence checked against the CPU over its own slot).
    /// </summary>
    static GpuOpCheck Attention(GpuContext acc, bool small)
    {
        var worst = new Worst("attention");
        // (slot, start, tokens) per sequence, in row order.
        static (int Slot, int Start, int T)[] One(int tokens, int start) => [(0, start, tokens)];
        ((int Slot, int Start, int T)[] Seqs, int Heads, int KvHeads, int D, int Window)[] cases =
        [
            (One(1, 0), 4, 2, 16, 0), (One(1, 6), 4, 2, 16, 0), (One(3, 0), 5, 1, 16, 0), (One(4, 6), 4, 2, 16, 3), (One(5, 2), 2, 2, 6, 0),
            (One(1, 9), 4, 2, 16, 4), ([(2, 3, 1), (0, 9, 1), (1, 0, 4)], 4, 2, 16, 0), ([(1, 5, 2), (0, 2, 1)], 2, 2, 6, 3),
        ];
        if (!small)
            cases = [.. cases, (One(1, 300), 32, 8, 128, 0), (One(33, 0), 32, 8, 128, 0), (One(2, 700), 16, 4, 64, 256), (One(9, 40), 8, 8, 256, 0),
                ([.. Enumerable.Range(0, 16).Select(i => (15 - i, 37 * i + 5, 1))], 32, 8, 128, 0),  // 16 decodes, slots and positions apart
                ([(0, 0, 20), (3, 500, 1), (1, 64, 11)], 32, 8, 128, 0)];                             // prompt chunks beside a decode
        foreach (int lanes in new[] { 1, acc.WarpSize })
            foreach (int teams in new[] { 1, 3, AttentionKernel.MaxTeams })
            {
                var k = GpuKernels.For(acc, new GpuKernelOptions { AttentionLanes = lanes, AttentionTeams = teams });
                foreach (var (seqs, heads, kvHeads, d, window) in cases)
                {
                    int tokens = seqs.Sum(x => x.T), slots = seqs.Max(x => x.Slot) + 1, cap = seqs.Max(x => x.Start + x.T) + 2;
                    int kvDim = kvHeads * d, qDim = heads * d;
                    var q = RandomWeights.Floats(tokens * qDim, 1, 2f);
                    var kk = RandomWeights.Floats(tokens * kvDim, 2);
                    var v = RandomWeights.Floats(tokens * kvDim, 3);
                    var kc = RandomWeights.Floats(slots * cap * kvDim, 4);
                    var vc = RandomWeights.Floats(slots * cap * kvDim, 5);
                    var table = new int[tokens * StepTokens.Fields];
                    var wantK = (float[])kc.Clone();
                    var wantV = (float[])vc.Clone();
                    var want = new float[tokens * qDim];
                    int row = 0;
                    foreach (var (slot, start, t) in seqs)
                    {
                        StepTokens.WriteSegment(table, row, t, start, slot);
                        int at = slot * cap * kvDim;
                        for (int i = at + (start + t) * kvDim; i < at + cap * kvDim; i++) { kc[i] = wantK[i] = float.NaN; vc[i] = wantV[i] = float.NaN; } // never read
                        Array.Copy(kk, row * kvDim, wantK, at + start * kvDim, t * kvDim);
                        Array.Copy(v, row * kvDim, wantV, at + start * kvDim, t * kvDim);
                        var o = new float[t * qDim];
                        CpuAttention.Causal(q.AsSpan(row * qDim, t * qDim).ToArray(), wantK.AsSpan(at, cap * kvDim).ToArray(),
                            wantV.AsSpan(at, cap * kvDim).ToArray(), o, t, start, heads, kvHeads, d, window > 0 ? window : null);
                        o.CopyTo(want, row * qDim);
                        row += t;
                    }
                    using var qb = Upload(acc, q);
                    using var kb = Upload(acc, kk);
                    using var vb = Upload(acc, v);
                    using var kcb = Upload(acc, kc);
                    using var vcb = Upload(acc, vc);
                    using var ob = Upload(acc, new float[tokens * qDim]);
                    using var tb = Upload(acc, table);
                    k.Attention(acc.DefaultStream, qb.View, kb.View, vb.View, kcb.View, vcb.View, ob.View, tb.View, tokens, cap, heads, kvHeads, d, window);
                    string name = $"{string.Join(' ', seqs.Take(3).Select(x => $"[slot {x.Slot}: T={x.T} start={x.Start}]"))}{(seqs.Length > 3 ? $" +{seqs.Length - 3}" : "")} " +
                        $"H={heads}/{kvHeads} D={d} window={window} lanes={lanes} teams={teams}";
                    double tol = cap > 66 ? 2e-5 : 1e-5;
                    worst.Compare(name, Read(acc, ob, want.Length), want.Select(x => (double)x).ToArray(), Enumerable.Repeat(tol, want.Length).ToArray());
                    var gotCache = Read(acc, kcb, kc.Length).Concat(Read(acc, vcb, vc.Length)).ToArray();
                    var wantCache = wantK.Concat(wantV).ToArray();
                    for (int i = 0; i < wantCache.Length; i++)
                        if (float.IsNaN(wantCache[i])) { wantCache[i] = 0; gotCache[i] = float.IsNaN(gotCache[i]) ? 0 : float.NaN; } // unwritten rows stay NaN
                    worst.Compare(name + " cache", gotCache, wantCache.Select(x => (double)x).ToArray(), new double[wantCache.Length]);
                }
            }
        return worst.Result;
    }

    /// <summary>Rotate-half RoPE (full and partial rotary) against the scalar CPU kernel within 1e-6 · (|y| + 2).</summary>
    static GpuOpCheck Rope(GpuContext acc)
    {
        var k = GpuKernels.For(acc);
        var worst = new Worst("rope");
        foreach (var (tokens, heads, headDim, half, start) in new[] { (1, 4, 16, 8, 0), (3, 2, 16, 8, 5), (2, 5, 16, 4, 7), (4, 1, 6, 3, 1), (5, 32, 128, 64, 300) })
        {
            int positions = start + tokens;
            var cos = RandomWeights.Floats(positions * half, 1);
            var sin = RandomWeights.Floats(positions * half, 2);
            var x = RandomWeights.Floats(tokens * heads * headDim, 3);
            var want = (float[])x.Clone();
            for (int t = 0; t < tokens; t++)
                Daop.Kernels.Cpu.Rope.Scalar(want.AsSpan(t * heads * headDim, heads * headDim), cos.AsSpan((start + t) * half, half),
                    sin.AsSpan((start + t) * half, half), heads, headDim);
            using var xb = Upload(acc, x);
            using var cb = Upload(acc, cos);
            using var sb = Upload(acc, sin);
            using var tb = Upload(acc, OneSequence(tokens, start));
            k.Rope(acc.DefaultStream, xb.View, cb.View, sb.View, tokens, heads, headDim, half, tb.View);
            worst.Compare($"T={tokens} H={heads} D={headDim} half={half} start={start}", Read(acc, xb, x.Length),
                want.Select(v => (double)v).ToArray(), want.Select(v => 1e-6 * (Math.Abs(v) + 2)).ToArray());
        }
        return worst.Result;
    }

    // The step's token table of one sequence (slot 0) at positions start...
    static int[] OneSequence(int tokens, int start)
    {
        var table = new int[tokens * StepTokens.Fields];
        StepTokens.WriteSegment(table, 0, tokens, start, 0);
        return table;
    }

    /// <summary>Embedding rows widened to fp32, exactly.</summary>
    static GpuOpCheck Embed(GpuContext acc) =>
        Embed(acc, "embed", [(DType.BF16, 33, 7), (DType.F16, 33, 80), (DType.F32, 5, 7), (DType.BF16, 389, 4096)]);

    static GpuOpCheck Embed(GpuContext acc, string name, (DType Type, int Rows, int Cols)[] tables)
    {
        var k = GpuKernels.For(acc);
        var worst = new Worst(name);
        foreach (var (type, rows, cols) in tables)
        {
            using var w = BenchMatrix.Random(type, rows, cols, (uint)rows, 1f);
            int[] ids = [0, rows - 1, rows / 2, 1 % rows];
            var (tb, table) = Upload(acc, w.W);
            using var _ = tb;
            using var ib = Upload(acc, ids);
            using var xb = Upload(acc, new float[ids.Length * cols]);
            k.Embed(acc.DefaultStream, table, ib.View, xb.View, ids.Length);
            var want = ids.SelectMany(w.Row).Select(v => (double)v).ToArray();
            worst.Compare($"{Name(type)} {rows}x{cols}", Read(acc, xb, ids.Length * cols), want, new double[want.Length]);
        }
        return worst.Result;
    }

    /// <summary>Add, Clamp and Combine exactly; AddSigmoidScaled within 1e-6 · (|acc| + |x|).</summary>
    static GpuOpCheck Elementwise(GpuContext acc)
    {
        var k = GpuKernels.For(acc);
        var worst = new Worst("add, clamp, sigmoid-scaled add, combine");
        var s = acc.DefaultStream;
        foreach (int n in new[] { 1, 7, 33, 1000, 100_003 })
        {
            var a = RandomWeights.Floats(n, 1, 4f);
            var x = RandomWeights.Floats(n, 2, 4f);
            using var ab = Upload(acc, a);
            using var xb = Upload(acc, x);
            k.Add(s, ab.View, xb.View, n);
            worst.Compare($"add n={n}", Read(acc, ab, n), a.Zip(x, (p, q) => (double)(p + q)).ToArray(), new double[n]);
            k.Clamp(s, xb.View, n, 1.5f);
            worst.Compare($"clamp n={n}", Read(acc, xb, n), x.Select(v => (double)Math.Clamp(v, -1.5f, 1.5f)).ToArray(), new double[n]);

            int tokens = n >= 2 ? 2 : 1, width = n / tokens;
            float[] gate = [0.3f, -2f];
            using var accb = Upload(acc, a);
            using var xs = Upload(acc, x);
            using var gb = Upload(acc, gate);
            k.AddSigmoidScaled(s, accb.View, xs.View, gb.View, tokens, width);
            var want = new double[n];
            var tol = new double[n];
            for (int i = 0; i < n; i++)
            {
                float sg = i < tokens * width ? 1f / (1f + MathF.Exp(-gate[i / width])) : 0f;
                want[i] = a[i] + sg * x[i];
                tol[i] = 1e-6 * (Math.Abs(a[i]) + Math.Abs(x[i])) + 1e-30;
            }
            worst.Compare($"sigmoid-scaled add n={n}", Read(acc, accb, n), want, tol);
        }
        foreach (var (tokens, topK, width) in new[] { (3, 3, 5), (1, 8, 4096), (17, 2, 2048) })
        {
            var yk = RandomWeights.Floats(tokens * topK * width, 9);
            using var ykb = Upload(acc, yk);
            using var yb = Upload(acc, new float[tokens * width]);
            k.Combine(s, ykb.View, yb.View, tokens, topK, width);
            var want = new double[tokens * width];
            for (int t = 0; t < tokens; t++)
                for (int c = 0; c < width; c++)
                {
                    float sum = 0;
                    for (int j = 0; j < topK; j++) sum += yk[(t * topK + j) * width + c];
                    want[t * width + c] = sum;
                }
            worst.Compare($"combine T={tokens} K={topK} width={width}", Read(acc, yb, tokens * width), want, new double[want.Length]);
        }
        return worst.Result;
    }
}
