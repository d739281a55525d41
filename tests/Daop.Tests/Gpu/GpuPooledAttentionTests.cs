using Daop.Engine.Device.Cpu;
using Daop.Kernels.Gpu;
using Daop.Tests.Kernels;

namespace Daop.Tests.Gpu;

/// <summary>
/// One attention launch for a step of several sequences in a KV pool (<see cref="AttentionKernel.Causal"/> over the
/// <see cref="StepTokens"/> table), and RoPE at per-token positions: against <see cref="CpuAttention"/> sequence by
/// sequence, and bit for bit against one launch per sequence; each slot's appended rows exact, slots outside the step untouched.
/// </summary>
[Collection(GpuCollection.Name)]
public class GpuPooledAttentionTests(GpuFixture gpu)
{
    // b from element `offset` on, as the kernels take it.
    static GpuView<float> Rows(ILGPU.Runtime.MemoryBuffer1D<float, ILGPU.Stride1D.Dense> b, long offset) => ((GpuView<float>)b.View).SubView(offset);

    // "slot:start:tokens" per segment, in row order.
    static (int Slot, int StartPos, int Tokens, int Pool)[] Parse(string segments) =>
        [.. segments.Split(',').Select(s => s.Split(':').Select(int.Parse).ToArray()).Select(f => (f[0], f[1], f[2], 0))];

    [Theory]
    [InlineData("0:7:1", 4, 2, 16, 0, 0, false, 1, 1)]                       // one sequence decoding
    [InlineData("2:3:1,0:9:1,1:0:1", 4, 2, 16, 0, 0, false, 1, 2)]           // three decodes at different positions, slots out of order
    [InlineData("1:0:4,0:5:1,3:2:3", 4, 2, 16, 0, 0, false, 4, 1)]           // a prompt chunk first, a decode, a later chunk
    [InlineData("0:6:1,2:0:5", 4, 2, 16, 3, 0, false, 1, 3)]                 // sliding window
    [InlineData("0:6:3,1:2:1", 4, 2, 16, 0, 4, false, 1, 2)]                 // chunked attention across a chunk start
    [InlineData("1:4:2,0:10:1", 4, 2, 16, 5, 0, true, 4, 2)]                 // sinks with a window
    [InlineData("0:3:2,1:8:1,2:0:1", 3, 1, 16, 0, 0, false, 1, 1)]           // one KV head
    [InlineData("0:5:1,1:1:3", 5, 1, 6, 0, 0, true, 4, 1)]                   // head dim not a multiple of 4, sinks
    [InlineData("0:2:2,1:7:1", 2, 2, 6, 3, 2, false, 1, 3)]                  // D = 6 with window and chunks
    public void OneLaunchMatchesEachSequence(string segs, int heads, int kvHeads, int d, int window, int chunk, bool withSinks, int lanes, int teams)
    {
        var segments = Parse(segs);
        int tokens = segments.Sum(g => g.Tokens), slots = segments.Max(g => g.Slot) + 2; // one slot the step leaves alone
        int cap = segments.Max(g => g.StartPos + g.Tokens) + 2, kvDim = kvHeads * d, qDim = heads * d;
        var q = NativeWeights.Floats(tokens * qDim, 1, 2f);
        var k = NativeWeights.Floats(tokens * kvDim, 2);
        var v = NativeWeights.Floats(tokens * kvDim, 3);
        var kc = NativeWeights.Floats(slots * cap * kvDim, 4);
        var vc = NativeWeights.Floats(slots * cap * kvDim, 5);
        float[]? sinks = withSinks ? NativeWeights.Floats(heads, 6, 3f) : null;
        foreach (var g in segments)                                             // past each sequence's last position: never read
            for (int i = (g.Slot * cap + g.StartPos + g.Tokens) * kvDim; i < (g.Slot + 1) * cap * kvDim; i++) { kc[i] = float.NaN; vc[i] = float.NaN; }

        // The CPU reference, sequence by sequence over its slot.
        var wantK = (float[])kc.Clone();
        var wantV = (float[])vc.Clone();
        var want = new float[tokens * qDim];
        int row = 0;
        foreach (var g in segments)
        {
            Array.Copy(k, row * kvDim, wantK, (g.Slot * cap + g.StartPos) * kvDim, g.Tokens * kvDim);
            Array.Copy(v, row * kvDim, wantV, (g.Slot * cap + g.StartPos) * kvDim, g.Tokens * kvDim);
            var slotK = wantK.AsSpan(g.Slot * cap * kvDim, cap * kvDim).ToArray();
            var slotV = wantV.AsSpan(g.Slot * cap * kvDim, cap * kvDim).ToArray();
            var o = new float[g.Tokens * qDim];
            CpuAttention.Causal(q.AsSpan(row * qDim, g.Tokens * qDim).ToArray(), slotK, slotV, o, g.Tokens, g.StartPos, heads, kvHeads, d,
                window > 0 ? window : null, sinks, chunk);
            o.CopyTo(want, row * qDim);
            row += g.Tokens;
        }

        using var qb = gpu.Upload(q);
        using var kb = gpu.Upload(k);
        using var vb = gpu.Upload(v);
        using var sb = gpu.Upload(sinks ?? [0f]);
        using var kcb = gpu.Upload(kc);
        using var vcb = gpu.Upload(vc);
        using var ob = gpu.Zeros(tokens * qDim);
        using (var at = gpu.UploadStep(segments))
            gpu.WithLanes(1, lanes, () => gpu.Kernels.Attention(gpu.Stream, qb.View, kb.View, vb.View, kcb.View, vcb.View, ob.View, at.View,
                tokens, cap, heads, kvHeads, d, window, withSinks ? sb.View : null, chunk), teams);
        var (oneK, oneV, oneO) = (gpu.Read(kcb, kc.Length), gpu.Read(vcb, vc.Length), gpu.Read(ob, tokens * qDim));
        for (int i = 0; i < want.Length; i++)
            Assert.True(Math.Abs(want[i] - oneO[i]) <= 1e-5 * Math.Max(1, Math.Abs(want[i])), $"o[{i}] {segs}: {want[i]} vs {oneO[i]}");
        Assert.Equal(wantK.Select(BitConverter.SingleToInt32Bits), oneK.Select(BitConverter.SingleToInt32Bits)); // NaNs compare as bits
        Assert.Equal(wantV.Select(BitConverter.SingleToInt32Bits), oneV.Select(BitConverter.SingleToInt32Bits));

        // One launch per sequence (its table alone, its rows of q, k, v and o) gives the same bits.
        using var eachK = gpu.Upload(kc);
        using var eachV = gpu.Upload(vc);
        using var eachO = gpu.Zeros(tokens * qDim);
        row = 0;
        foreach (var g in segments)
        {
            using var at = gpu.UploadStep((g.Slot, g.StartPos, g.Tokens, 0));
            int r = row;
            gpu.WithLanes(1, lanes, () => gpu.Kernels.Attention(gpu.Stream, Rows(qb, r * qDim), Rows(kb, r * kvDim), Rows(vb, r * kvDim),
                eachK.View, eachV.View, Rows(eachO, r * qDim), at.View, g.Tokens, cap, heads, kvHeads, d, window, withSinks ? sb.View : null, chunk), teams);
            row += g.Tokens;
        }
        Assert.Equal(gpu.Read(eachO, tokens * qDim), oneO);
    }

    /// <summary>Tokens of another pool are left alone: their rows of o and of the pool stay as they were.</summary>
    [Fact]
    public void ALaunchServesItsPoolOnly()
    {
        int heads = 2, kvHeads = 1, d = 8, cap = 6, kvDim = kvHeads * d, qDim = heads * d;
        var q = NativeWeights.Floats(3 * qDim, 1);
        var k = NativeWeights.Floats(3 * kvDim, 2);
        var v = NativeWeights.Floats(3 * kvDim, 3);
        var kc = NativeWeights.Floats(cap * kvDim, 4);
        using var qb = gpu.Upload(q);
        using var kb = gpu.Upload(k);
        using var vb = gpu.Upload(v);
        using var kcb = gpu.Upload(kc);
        using var vcb = gpu.Upload(kc);
        using var ob = gpu.Zeros(3 * qDim);
        using var at = gpu.UploadStep((0, 2, 1, 1), (0, 0, 2, 0));            // row 0 in pool 1, rows 1-2 in pool 0
        gpu.Kernels.Attention(gpu.Stream, qb.View, kb.View, vb.View, kcb.View, vcb.View, ob.View, at.View, 3, cap, heads, kvHeads, d, 0);
        var o = gpu.Read(ob, 3 * qDim);
        Assert.All(o.Take(qDim), x => Assert.Equal(0f, x));
        Assert.Contains(o.Skip(qDim), x => x != 0);
        var gotK = gpu.Read(kcb, cap * kvDim);
        Assert.Equal(k.Skip(kvDim), gotK.Take(2 * kvDim));                      // pool 0's sequence appended at 0, 1
        Assert.Equal(kc.Skip(2 * kvDim), gotK.Skip(2 * kvDim));                 // position 2 is pool 1's, not written here
    }

    /// <summary>One RoPE launch over sequences at different positions equals a launch per sequence.</summary>
    [Theory]
    [InlineData("0:7:1,1:0:3,2:4:1", 4, 2, 16, 8)]
    [InlineData("0:2:2,1:9:1", 3, 1, 6, 3)]                                     // partial rotary, odd head dim
    public void RopeReadsEachTokensPosition(string segs, int heads, int kvHeads, int headDim, int half)
    {
        var segments = Parse(segs);
        int tokens = segments.Sum(g => g.Tokens);
        using var r = gpu.Rope(segments.Max(g => g.StartPos + g.Tokens), half, tokens, heads, kvHeads, headDim);
        using (var at = gpu.UploadStep(segments))
            gpu.Kernels.Rope(gpu.Stream, r.Q1.View, r.Cos.View, r.Sin.View, tokens, heads, headDim, half, at.View, r.K1.View, kvHeads);
        int row = 0;
        foreach (var g in segments)
        {
            using var at = gpu.UploadStep((g.Slot, g.StartPos, g.Tokens, 0));
            gpu.Kernels.Rope(gpu.Stream, Rows(r.Q2, row * heads * headDim), r.Cos.View, r.Sin.View, g.Tokens, heads, headDim, half, at.View,
                Rows(r.K2, row * kvHeads * headDim), kvHeads);
            row += g.Tokens;
        }
        r.AssertSame();
    }
}
