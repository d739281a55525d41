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
    public void TransposedEqualsPlain(int tokens, int startPos, int heads, int kvHeads, int d, int window)
    {
        int cap = startPos + tokens + 3, stride = cap + 5, kvDim = kvHeads * d;
        var rnd = new Random(tokens * 31 + startPos);
        float R() => (float)(rnd.NextDouble() * 2 - 1);
        var q = Enumerable.Range(0, tokens * heads * d).Select(_ => R()).ToArray();
        var k = Enumerable.Range(0, cap * kvDim).Select(_ => R()).ToArray();
        var v = Enumerable.Range(0, cap * kvDim).Select(_ => R()).ToArray();
        var kt = new float[stride * kvDim];
        for (int p = 0; p < cap; p++) for (int i = 0; i < kvDim; i++) kt[i * stride + p] = k[p * kvDim + i];
        var want = new float[tokens * heads * d];
        var got = new float[want.Length];
        int? w = window > 0 ? window : null;
        CpuAttention.Causal(q, k, v, want, tokens, startPos, heads, kvHeads, d, w);
        CpuAttention.CausalTransposed(q, kt, stride, v, got, tokens, startPos, heads, kvHeads, d, w);
        for (int i = 0; i < want.Length; i++) Assert.True(Math.Abs(want[i] - got[i]) <= 1e-5f, $"{i}: {want[i]} vs {got[i]}");
    }
}
