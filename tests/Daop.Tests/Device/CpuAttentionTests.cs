using Daop.Engine.Device.Cpu;

namespace Daop.Tests.Device;

/// <summary>The transposed-key attention kernel the CPU device uses equals its plain-layout twin.</summary>
public class CpuAttentionTests
{
    [Theory]
    [InlineData(1, 0, 4, 2, 32, 0)]
    [InlineData(1, 200, 8, 2, 32, 0)]
    [InlineData(5, 17, 5, 1, 16, 0)]
    [InlineData(3, 40, 4, 4, 8, 7)]
    [InlineData(33, 0, 2, 1, 6, 0)]
    [InlineData(2, 700, 4, 2, 16, 0, 1)]       // several 256-position blocks
    [InlineData(3, 600, 2, 1, 8, 300, 1)]      // a window that starts inside a block
    [InlineData(1, 520, 2, 2, 8, 0, 40)]       // scores in the hundreds: the running max moves between blocks
    [InlineData(9, 3, 4, 2, 16, 0, 1, 4)]      // chunks of 4: queries on both sides of two chunk starts
    [InlineData(3, 600, 2, 1, 8, 300, 1, 512)] // a window inside a chunk of 512 that starts at 512
    public void TransposedEqualsPlain(int tokens, int startPos, int heads, int kvHeads, int d, int window, float amplitude = 1, int chunk = 0)
    {
        int cap = startPos + tokens + 3, stride = cap + 5, kvDim = kvHeads * d;
        var rnd = new Random(tokens * 31 + startPos);
        float R() => (float)(rnd.NextDouble() * 2 - 1);
        var q = Enumerable.Range(0, tokens * heads * d).Select(_ => amplitude * R()).ToArray();
        // Keys grow with position, so a later block holds a larger maximum than the earlier ones.
        var k = Enumerable.Range(0, cap * kvDim).Select(i => R() + (amplitude > 1 ? i / kvDim / (float)cap : 0)).ToArray();
        var v = Enumerable.Range(0, cap * kvDim).Select(_ => R()).ToArray();
        var kt = new float[stride * kvDim];
        for (int p = 0; p < cap; p++) for (int i = 0; i < kvDim; i++) kt[i * stride + p] = k[p * kvDim + i];
        var want = new float[tokens * heads * d];
        var got = new float[want.Length];
        int? w = window > 0 ? window : null;
        CpuAttention.Causal(q, k, v, want, tokens, startPos, heads, kvHeads, d, w, chunk: chunk);
        CpuAttention.CausalTransposed(q, kt, stride, v, got, tokens, startPos, heads, kvHeads, d, w, chunk: chunk);
        for (int i = 0; i < want.Length; i++) Assert.True(Math.Abs(want[i] - got[i]) <= 1e-5f * Math.Max(1, Math.Abs(want[i])), $"{i}: {want[i]} vs {got[i]}");
    }

    [Fact]
    public void ChunkedAttentionIsEachQueryOverItsOwnChunk()
    {
        // Llama-4's chunked mask: the query at p sees keys p − p mod C .. p, i.e. a window of p mod C + 1 for that query.
        const int tokens = 11, startPos = 2, heads = 2, d = 8, chunk = 4;
        var rnd = new Random(7);
        var q = Enumerable.Range(0, tokens * heads * d).Select(_ => (float)rnd.NextDouble() - 0.5f).ToArray();
        var k = Enumerable.Range(0, (startPos + tokens) * d).Select(_ => (float)rnd.NextDouble() - 0.5f).ToArray();
        var v = Enumerable.Range(0, (startPos + tokens) * d).Select(_ => (float)rnd.NextDouble() - 0.5f).ToArray();
        var chunked = new float[tokens * heads * d];
        CpuAttention.Causal(q, k, v, chunked, tokens, startPos, heads, 1, d, null, chunk: chunk);
        for (int t = 0; t < tokens; t++)
        {
            int pos = startPos + t;
            var one = new float[heads * d];
            CpuAttention.Causal(q[(t * heads * d)..((t + 1) * heads * d)], k, v, one, 1, pos, heads, 1, d, pos % chunk + 1);
            Assert.Equal(one, chunked[(t * heads * d)..((t + 1) * heads * d)]);
        }
        var full = new float[chunked.Length];
        CpuAttention.Causal(q, k, v, full, tokens, startPos, heads, 1, d, null);
        Assert.NotEqual(full, chunked);
    }
}

/// <summary>Attention sinks (GPT-OSS) in the CPU kernel against the scalar twin, and against the softmax they define.</summary>
public class CpuSinkAttentionTests
{
    [Theory]
    [InlineData(1, 0, 4, 1, 16, 0, 0.5f)]
    [InlineData(5, 17, 4, 2, 8, 0, -3f)]
    [InlineData(3, 40, 4, 4, 8, 7, 2f)]
    [InlineData(2, 600, 2, 1, 8, 0, 1f)]       // several 256-position blocks
    [InlineData(2, 3, 2, 1, 8, 0, 60f)]        // a sink far above every score: it becomes the max
    public void SinksMatchTheTwin(int tokens, int startPos, int heads, int kvHeads, int d, int window, float sinkScale)
    {
        int cap = startPos + tokens + 3, stride = cap + 5, kvDim = kvHeads * d;
        var rnd = new Random(tokens * 7 + startPos);
        float R() => (float)(rnd.NextDouble() * 2 - 1);
        var q = Enumerable.Range(0, tokens * heads * d).Select(_ => R()).ToArray();
        var k = Enumerable.Range(0, cap * kvDim).Select(_ => R()).ToArray();
        var v = Enumerable.Range(0, cap * kvDim).Select(_ => R()).ToArray();
        var sinks = Enumerable.Range(0, heads).Select(h => sinkScale * (h + 1) / heads).ToArray();
        var kt = new float[stride * kvDim];
        for (int p = 0; p < cap; p++) for (int i = 0; i < kvDim; i++) kt[i * stride + p] = k[p * kvDim + i];
        int? w = window > 0 ? window : null;
        var want = new float[tokens * heads * d];
        var got = new float[want.Length];
        var plain = new float[want.Length];
        CpuAttention.Causal(q, k, v, want, tokens, startPos, heads, kvHeads, d, w, sinks);
        CpuAttention.CausalTransposed(q, kt, stride, v, got, tokens, startPos, heads, kvHeads, d, w, sinks: sinks);
        CpuAttention.Causal(q, k, v, plain, tokens, startPos, heads, kvHeads, d, w);
        for (int i = 0; i < want.Length; i++) Assert.True(Math.Abs(want[i] - got[i]) <= 1e-5f * Math.Max(1, Math.Abs(want[i])), $"{i}: {want[i]} vs {got[i]}");

        // The sink only adds to the denominator: o = plain · Σ e^a / (Σ e^a + e^s), a scale in (0, 1) per (token, head).
        for (int t = 0; t < tokens; t++)
            for (int h = 0; h < heads; h++)
            {
                int pos = startPos + t, first = w is { } win ? Math.Max(0, pos - win + 1) : 0, g = h / (heads / kvHeads);
                var a = Enumerable.Range(first, pos - first + 1).Select(j =>
                    Enumerable.Range(0, d).Sum(c => (double)q[(t * heads + h) * d + c] * k[j * kvDim + g * d + c]) / Math.Sqrt(d)).ToArray();
                double m = Math.Max(a.Max(), sinks[h]), sum = a.Sum(x => Math.Exp(x - m));
                double scale = sum / (sum + Math.Exp(sinks[h] - m));
                for (int c = 0; c < d; c++)
                {
                    int i = (t * heads + h) * d + c;
                    Assert.True(Math.Abs(plain[i] * scale - got[i]) <= 1e-5, $"t={t} h={h} c={c}: {plain[i] * scale} vs {got[i]}");
                }
            }
    }
}
