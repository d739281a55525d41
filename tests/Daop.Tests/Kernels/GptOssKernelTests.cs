using Daop.Kernels;
using Daop.Kernels.Cpu;
using Daop.Kernels.Quant;

namespace Daop.Tests.Kernels;

/// <summary>GPT-OSS's new kernels against their scalar twins: the clamped SwiGLU, the biased expert and the hub MXFP4 repack.</summary>
public unsafe class GptOssKernelTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(16)]
    [InlineData(33)]
    [InlineData(1025)]
    public void ClampedSwiGluMatchesScalar(int n)
    {
        // Values well past ±limit on both sides, so both clamps and the unclamped middle are exercised.
        var gate = NativeWeights.Floats(n, 1, 12f);
        var up = NativeWeights.Floats(n, 2, 12f);
        var expected = gate.ToArray();
        ClampedSwiGlu.Scalar(expected, up, 1.702f, 7f);
        var actual = gate.ToArray();
        ClampedSwiGlu.Forward(actual, up, 1.702f, 7f);
        for (int i = 0; i < n; i++) Assert.Equal(expected[i], actual[i], 2e-6f * MathF.Max(1, MathF.Abs(expected[i])));
        Assert.Equal(up, NativeWeights.Floats(n, 2, 12f));                                   // up is read only
    }

    [Fact]
    public void ClampedSwiGluClampsAsTransformers()
    {
        // gate clamps above only: min(g, 7); up both ways: clamp(u, −7, 7); h = (u + 1)·g·σ(1.702·g).
        float[] gate = [10f, -10f, 0f, 2f], up = [10f, -10f, 3f, -0.5f];
        ClampedSwiGlu.Forward(gate, up, 1.702f, 7f);
        static float H(float g, float u) => (u + 1) * g / (1 + MathF.Exp(-1.702f * g));
        Assert.Equal(H(7, 7), gate[0], 1e-5f);
        Assert.Equal(H(-10, -7), gate[1], 1e-5f);
        Assert.Equal(0f, gate[2]);
        Assert.Equal(H(2, -0.5f), gate[3], 1e-5f);
    }

    public static TheoryData<DType, int, int> Experts() => new()
    {
        { DType.BF16, 64, 64 }, { DType.F32, 33, 17 }, { DType.MXFP4, 64, 96 }, { DType.MXFP4, 128, 64 },
    };

    [Theory]
    [MemberData(nameof(Experts))]
    public void BiasedExpertMatchesScalar(DType type, int hidden, int inter)
    {
        using var gate = new NativeWeights(type, inter, hidden, 1, 0.2f);
        using var up = new NativeWeights(type, inter, hidden, 2, 0.2f);
        using var down = new NativeWeights(type, hidden, inter, 3, 0.2f);
        var bias = new ExpertBiases(NativeWeights.Floats(inter, 4), NativeWeights.Floats(inter, 5), NativeWeights.Floats(hidden, 6));
        foreach (int tokens in new[] { 1, 3, 9, 40 })
        {
            var x = NativeWeights.Floats(tokens * hidden, 10 + tokens, 3f);
            var expected = new float[tokens * hidden];
            var actual = new float[tokens * hidden];
            BiasedExpertFfn.Scalar(gate.W, up.W, down.W, bias, 1.702f, 7f, x, expected, tokens, new float[2 * tokens * inter]);
            BiasedExpertFfn.Forward(gate.W, up.W, down.W, bias, 1.702f, 7f, x, actual, tokens, new float[2 * tokens * inter]);
            // bf16 batches that round x to bf16 widen the error by their rounding (MatMulTests.ActivationRounding).
            float scale = MathF.Max(1, expected.Max(MathF.Abs)) * MathF.Max(MatMulTests.ActivationRounding(type, inter, hidden, tokens), MatMulTests.ActivationRounding(type, hidden, inter, tokens));
            for (int i = 0; i < expected.Length; i++)
                Assert.True(MathF.Abs(expected[i] - actual[i]) <= 1e-4f * scale, $"{type} tokens={tokens} [{i}]: {expected[i]} vs {actual[i]}");
        }
    }

    [Fact]
    public void HubMxfp4RepackDecodesAsTheHub()
    {
        var rng = new Random(7);
        var codes = new byte[3 * HubMxfp4.CodeBytes];
        rng.NextBytes(codes);
        byte[] scales = [127, 120, 131];                    // 1, 2^−7, 2^4
        var repacked = new byte[3 * 17];
        fixed (byte* c = codes, s = scales, d = repacked) HubMxfp4.Row(c, s, d, 3);
        var daop = new float[96];
        BlockQuant.DequantizeRow(DType.MXFP4, repacked, daop);
        var hub = new float[96];
        for (int b = 0; b < 3; b++) HubMxfp4.Dequantize(codes.AsSpan(b * 16, 16), scales[b], hub.AsSpan(b * 32, 32));
        Assert.Equal(hub, daop);
        Assert.Contains(hub, v => v != 0);
    }
}
