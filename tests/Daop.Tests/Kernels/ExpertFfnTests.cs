using Daop.Kernels;
using Daop.Kernels.Cpu;

namespace Daop.Tests.Kernels;

public class ExpertFfnTests
{
    public static TheoryData<DType, int, int> Cases()
    {
        var data = new TheoryData<DType, int, int>();
        foreach (var t in new[] { DType.BF16, DType.F16, DType.F32 })
            foreach (var (h, i) in new[] { (33, 17), (80, 136), (64, 128), (128, 352) }) data.Add(t, h, i);
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void ForwardMatchesScalar(DType type, int hidden, int inter)
    {
        using var gate = new NativeWeights(type, inter, hidden, 1);
        using var up = new NativeWeights(type, inter, hidden, 2);
        using var down = new NativeWeights(type, hidden, inter, 3);
        foreach (int tokens in hidden <= 64 ? new[] { 1, 3, 4, 9, 40, 270 } : new[] { 1, 3, 4, 9, 40 })
        {
            var x = NativeWeights.Floats(tokens * hidden, 10 + tokens);
            var expected = new float[tokens * hidden];
            var actual = new float[tokens * hidden];
            var scratch = new float[2 * tokens * inter];
            ExpertFfn.Scalar(gate.W, up.W, down.W, x, expected, tokens, scratch);
            // Scale of the down projection's rounding, from the reference activations.
            var h = scratch.AsSpan(0, tokens * inter).ToArray();
            var mag = MatMulTests.Magnitude(down, h, tokens);
            // h itself carries the gate/up rounding (≈ 2e-5 of their own scale, amplified by at most ~1.1 by
            // SiLU' and by |up|, |gate| ≤ O(Σ|x·w|)), which passes through down; 5x the matmul tolerance covers it.
            // bf16 batches that round x to bf16 (gate/up and down) widen it by their rounding.
            float rounding = MathF.Max(MatMulTests.ActivationRounding(type, inter, hidden, tokens), MatMulTests.ActivationRounding(type, hidden, inter, tokens));
            for (int i = 0; i < mag.Length; i++) mag[i] *= 5 * MathF.Max(1, MathF.Sqrt(hidden) / 4) * rounding;
            scratch.AsSpan().Fill(float.NaN);
            actual.AsSpan().Fill(float.NaN);
            ExpertFfn.Forward(gate.W, up.W, down.W, x, actual, tokens, scratch);
            MatMulTests.AssertClose(expected, actual, mag, $"{type} hidden={hidden} inter={inter} tokens={tokens}");
        }
    }

    [Fact]
    public void MixedGateUpTypesFallBack()
    {
        using var gate = new NativeWeights(DType.BF16, 40, 64, 1);
        using var up = new NativeWeights(DType.F16, 40, 64, 2);
        using var down = new NativeWeights(DType.F32, 64, 40, 3);
        var x = NativeWeights.Floats(2 * 64, 4);
        var expected = new float[2 * 64];
        var actual = new float[2 * 64];
        ExpertFfn.Scalar(gate.W, up.W, down.W, x, expected, 2, new float[2 * 2 * 40]);
        ExpertFfn.Forward(gate.W, up.W, down.W, x, actual, 2, new float[2 * 2 * 40]);
        for (int i = 0; i < expected.Length; i++) Assert.Equal(expected[i], actual[i], 1e-3f);
    }
}
