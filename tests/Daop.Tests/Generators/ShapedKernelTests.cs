using System.Runtime.Intrinsics;
using Daop.Kernels;
using Daop.Kernels.Cpu;
using Daop.Kernels.Cpu.Gemm;
using Daop.Kernels.Generated;
using Daop.Tests.Kernels;

namespace Daop.Tests.Generators;

/// <summary>
/// Generated (shape-specialised), generic (<see cref="ExpertFfn.Forward"/>) and scalar (<see cref="ExpertFfn.Scalar"/>)
/// experts agree.
/// </summary>
/// <remarks>
/// Tolerance: as in <see cref="ExpertFfnTests"/>: each output may differ from the scalar reference by
/// 2e-5 · Σ|W_down·h| · 5·max(1, √hidden / 4). The fast paths sum the same exact products in another order (with FMA),
/// and h carries the gate/up rounding into down; one wrong or missing term is still far outside it.
/// </remarks>
// Serial: its allocation test must not find the worker pool busy with another test (see SerialAllocationCollection).
[Collection("serial-allocation")]
public unsafe class ShapedKernelTests
{
    sealed class Expert : IDisposable
    {
        public readonly NativeWeights Gate, Up, Down;
        public readonly int Hidden, Inter;

        public Expert(DType type, int hidden, int inter)
        {
            Hidden = hidden;
            Inter = inter;
            Gate = new NativeWeights(type, inter, hidden, 1);
            Up = new NativeWeights(type, inter, hidden, 2);
            Down = new NativeWeights(type, hidden, inter, 3);
        }

        public void Dispose()
        {
            Gate.Dispose();
            Up.Dispose();
            Down.Dispose();
        }

        /// <summary>Scalar reference output and the per-output tolerance for <paramref name="x"/>.</summary>
        public (float[] Expected, float[] Tolerance) Reference(float[] x, int tokens)
        {
            var expected = new float[tokens * Hidden];
            var scratch = new float[2 * tokens * Inter];
            ExpertFfn.Scalar(Gate.W, Up.W, Down.W, x, expected, tokens, scratch);
            var mag = MatMulTests.Magnitude(Down, scratch.AsSpan(0, tokens * Inter).ToArray(), tokens);
            for (int i = 0; i < mag.Length; i++) mag[i] *= 5 * MathF.Max(1, MathF.Sqrt(Hidden) / 4);
            return (expected, mag);
        }

        public float[] Run(IExpertKernel k, float[] x, int tokens)
        {
            var y = new float[tokens * Hidden];
            var scratch = new float[2 * tokens * Inter];
            y.AsSpan().Fill(float.NaN);
            scratch.AsSpan().Fill(float.NaN);
            k.Forward(Gate.W, Up.W, Down.W, x, y, tokens, scratch);
            return y;
        }
    }

    static void AllAgree(IExpertKernel kernel, DType type, int hidden, int inter)
    {
        using var e = new Expert(type, hidden, inter);
        // 1–3 tokens run the specialised kernel (for a matching shape), 7 the generic blocked path it delegates to.
        foreach (int tokens in new[] { 1, 2, 3, 7 })
        {
            var x = NativeWeights.Floats(tokens * hidden, 100 + tokens);
            var (expected, tol) = e.Reference(x, tokens);
            string what = $"{kernel.Name} {hidden}x{inter} {type} tokens={tokens}";
            var generated = e.Run(kernel, x, tokens);
            var generic = e.Run(GenericExpertKernel.Instance, x, tokens);
            MatMulTests.AssertClose(expected, generated, tol, what + " vs scalar");
            MatMulTests.AssertClose(expected, generic, tol, "generic " + what + " vs scalar");
            MatMulTests.AssertClose(generic, generated, tol, what + " vs generic");
        }
    }

    [Fact]
    public void EmbeddedModelShapeIsGeneratedAndAgrees()
    {
        var k = ExpertKernelRegistry.Select(256, 256, DType.BF16);
        Assert.IsType<ShapedExpertKernel<ExpertShape_H256_I256_Bf16>>(k);
        AllAgree(k, DType.BF16, 256, 256);
    }

    [Fact]
    public void OddShapeRunsGenericAndAgrees()
    {
        var k = ExpertKernelRegistry.Select(80, 136, DType.BF16);
        Assert.Equal(ExpertKernelKind.Generic, k.Kind);
        AllAgree(k, DType.BF16, 80, 136);
    }

    [Fact]
    public void SpecialisedKernelHandlesTailsAndOddRowCounts()
    {
        AllAgree(ShapedExpertKernel<Odd80x136Bf16>.Instance, DType.BF16, 80, 136);
        AllAgree(ShapedExpertKernel<Odd33x17F16>.Instance, DType.F16, 33, 17);
        AllAgree(ShapedExpertKernel<Even64x128F32>.Instance, DType.F32, 64, 128);
    }

    [Fact]
    public void MatchesOnlyItsOwnShapeAndDType()
    {
        using var e = new Expert(DType.BF16, 80, 136);
        Assert.True(ShapedExpertKernel<Odd80x136Bf16>.Matches(e.Gate.W, e.Up.W, e.Down.W));
        Assert.False(ShapedExpertKernel<Tiny256x256Bf16>.Matches(e.Gate.W, e.Up.W, e.Down.W));
        using var f16 = new Expert(DType.F16, 80, 136);
        Assert.False(ShapedExpertKernel<Odd80x136Bf16>.Matches(f16.Gate.W, f16.Up.W, f16.Down.W));

        // A mismatched expert still gets the right answer, from the generic path.
        var x = NativeWeights.Floats(80, 5);
        var (expected, tol) = f16.Reference(x, 1);
        MatMulTests.AssertClose(expected, f16.Run(ShapedExpertKernel<Odd80x136Bf16>.Instance, x, 1), tol, "mismatched dtype");
    }

    public static TheoryData<int> Widths() => new() { 256, 1 };

    /// <summary>The AVX2 and scalar instantiations, which this machine's dispatch may never pick.</summary>
    [Theory]
    [MemberData(nameof(Widths))]
    public void NarrowWidthsAgree(int width)
    {
        if (width == 256 && !Vector256.IsHardwareAccelerated) return;
        Narrow<Odd80x136Bf16, Bf16Format>(width, DType.BF16, 80, 136);
        Narrow<Odd33x17F16, F16Format>(width, DType.F16, 33, 17);
        Narrow<Even64x128F32, F32Format>(width, DType.F32, 64, 128);
        Narrow<Tiny256x256Bf16, Bf16Format>(width, DType.BF16, 256, 256);
    }

    static void Narrow<TShape, TF>(int width, DType type, int hidden, int inter)
        where TShape : struct, IExpertShape where TF : struct, IWeightFormat
    {
        Narrow<TShape, TF, OneToken>(width, type, hidden, inter);
        Narrow<TShape, TF, TwoTokens>(width, type, hidden, inter);
        Narrow<TShape, TF, ThreeTokens>(width, type, hidden, inter);
    }

    static void Narrow<TShape, TF, TT>(int width, DType type, int hidden, int inter)
        where TShape : struct, IExpertShape where TF : struct, IWeightFormat where TT : struct, ITokens
    {
        int tokens = TT.Count;
        using var e = new Expert(type, hidden, inter);
        var x = NativeWeights.Floats(tokens * hidden, 42);
        var (expected, tol) = e.Reference(x, tokens);
        var y = new float[tokens * hidden];
        var scratch = new float[2 * tokens * inter];
        y.AsSpan().Fill(float.NaN);
        fixed (float* px = x, py = y, ps = scratch)
        {
            byte* g = e.Gate.W.Data, u = e.Up.W.Data, d = e.Down.W.Data;
            if (width == 256) ShapedExpertFfn<TShape, TF, Simd256, Vector256<float>>.Forward<TT>(g, u, d, px, py, ps);
            else ShapedExpertFfn<TShape, TF, SimdScalar, float>.Forward<TT>(g, u, d, px, py, ps);
        }
        MatMulTests.AssertClose(expected, y, tol, $"width {width} {hidden}x{inter} {type} tokens={tokens}");
    }

    [Fact]
    public void SpecialisedPathAllocatesNothingOnceWarm()
    {
        using var e = new Expert(DType.BF16, 256, 256);
        var k = ExpertKernelRegistry.Select(256, 256, DType.BF16);
        var x = NativeWeights.Floats(3 * 256, 9);
        var y = new float[3 * 256];
        var scratch = new float[2 * 3 * 256];
        for (int tokens = 1; tokens <= 3; tokens++)
            for (int i = 0; i < 3; i++) k.Forward(e.Gate.W, e.Up.W, e.Down.W, x, y, tokens, scratch);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 10; i++)
            for (int tokens = 1; tokens <= 3; tokens++) k.Forward(e.Gate.W, e.Up.W, e.Down.W, x, y, tokens, scratch);
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    [Fact]
    public void ShortBuffersThrow()
    {
        using var e = new Expert(DType.BF16, 80, 136);
        var k = ShapedExpertKernel<Odd80x136Bf16>.Instance;
        Assert.Throws<ArgumentException>(() => k.Forward(e.Gate.W, e.Up.W, e.Down.W, new float[79], new float[80], 1, new float[272]));
        Assert.Throws<ArgumentException>(() => k.Forward(e.Gate.W, e.Up.W, e.Down.W, new float[80], new float[79], 1, new float[272]));
        Assert.Throws<ArgumentException>(() => k.Forward(e.Gate.W, e.Up.W, e.Down.W, new float[80], new float[80], 1, new float[271]));
        Assert.Throws<ArgumentException>(() => k.Forward(e.Gate.W, e.Up.W, e.Down.W, new float[160], new float[160], 2, new float[543]));
    }
}
