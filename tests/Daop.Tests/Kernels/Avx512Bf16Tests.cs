using Daop.Kernels;
using Daop.Kernels.Cpu;
using Daop.Kernels.Cpu.Amx;

namespace Daop.Tests.Kernels;

/// <summary>Runs only where the CPU has AVX512-BF16 (and Daop emitted its routines); says so where it is skipped.</summary>
public sealed class Avx512Bf16FactAttribute : FactAttribute
{
    /// <summary>
    /// Skips the test, naming why, where the <c>vdpbf16ps</c> routines are not machine code here, or, with
    /// <paramref name="withoutAmx"/>, where AMX-BF16 takes the batches instead.
    /// </summary>
    public Avx512Bf16FactAttribute(bool withoutAmx = false)
    {
        if (!DpBf16Kernels.Native)
            Skip = $"vdpbf16ps routines not emitted here ({DpBf16Kernels.Reason ?? "DAOP_AVX512BF16=emulate"}); the twin-path tests cover the driver";
        else if (withoutAmx && AmxSupport.Bf16) Skip = "AMX-BF16 takes bf16 batches here";
        else if (withoutAmx && !DpBf16Kernels.Enabled)
            Skip = "DAOP_AVX512BF16=0 (TestDefaults sets it unless given): run with DAOP_AVX512BF16=1 to check MatMul's routing";
    }
}

/// <summary>
/// The AVX512-BF16 path: the emitter's EVEX encodings against GNU as (binutils 2.40, <c>as -msyntax=intel</c> +
/// <c>objdump -d</c>), the driver on the routines' scalar twin against fp32 math on x rounded to bf16 (odd row counts,
/// token tails, column counts the routines cannot take), and the machine code against the twin where the CPU has it.
/// </summary>
public unsafe class Avx512Bf16Tests
{
    static string Hex(Action<X64Emitter> emit)
    {
        var e = new X64Emitter();
        emit(e);
        return Convert.ToHexString(e.ToArray()).ToLowerInvariant();
    }

    [Theory]
    [InlineData("vdpbf16ps zmm17, zmm31, zmm29", "6282064052cd")]
    [InlineData("vdpbf16ps zmm8, zmm30, zmm29", "62120e4052c5")]
    [InlineData("vpbroadcastd zmm29, dword ptr [r9+rcx*1+0x8]", "62427d48586c0902")]
    [InlineData("vpbroadcastd zmm29, dword ptr [rbx+rdx*4]", "62627d48582c93")]
    [InlineData("vmovups zmm30, zmmword ptr [rsi+0x40]", "62617c48107601")]
    [InlineData("vmovups zmm31, zmmword ptr [rsi+r11*1+0xc0]", "62217c48107c1e03")]
    [InlineData("vmovups zmm23, zmmword ptr [r8+0x5c0]", "62c17c48107817")]
    [InlineData("vmovups zmmword ptr [r8+0x5c0], zmm22", "62c17c48117017")]
    [InlineData("vmovups zmmword ptr [r8], zmm0", "62d17c481100")]
    [InlineData("lea rcx, [rdx+rdx*2]", "488d0c52")]
    [InlineData("lea r9, [rax+rdx*4]", "4c8d0c90")]
    [InlineData("lea rbx, [r10+rdx*4]", "498d1c92")]
    [InlineData("push rbx", "53")]
    [InlineData("pop rbx", "5b")]
    [InlineData("push r12", "4154")]
    [InlineData("pop r12", "415c")]
    [InlineData("vzeroupper", "c5f877")]
    public void EncodingsMatchGnuAs(string instruction, string bytes)
    {
        Action<X64Emitter> emit = instruction switch
        {
            "vdpbf16ps zmm17, zmm31, zmm29" => e => e.VDpBf16Ps(17, 31, 29),
            "vdpbf16ps zmm8, zmm30, zmm29" => e => e.VDpBf16Ps(8, 30, 29),
            "vpbroadcastd zmm29, dword ptr [r9+rcx*1+0x8]" => e => e.VPBroadcastD(29, Gpr.R9, Gpr.Rcx, 1, 8),
            "vpbroadcastd zmm29, dword ptr [rbx+rdx*4]" => e => e.VPBroadcastD(29, Gpr.Rbx, Gpr.Rdx, 4, 0),
            "vmovups zmm30, zmmword ptr [rsi+0x40]" => e => e.VMovUpsLoad(30, Gpr.Rsi, 0x40),
            "vmovups zmm31, zmmword ptr [rsi+r11*1+0xc0]" => e => e.VMovUpsLoad(31, Gpr.Rsi, 0xc0, Gpr.R11),
            "vmovups zmm23, zmmword ptr [r8+0x5c0]" => e => e.VMovUpsLoad(23, Gpr.R8, 0x5c0),
            "vmovups zmmword ptr [r8+0x5c0], zmm22" => e => e.VMovUpsStore(Gpr.R8, 0x5c0, 22),
            "vmovups zmmword ptr [r8], zmm0" => e => e.VMovUpsStore(Gpr.R8, 0, 0),
            "lea rcx, [rdx+rdx*2]" => e => e.Lea(Gpr.Rcx, Gpr.Rdx, Gpr.Rdx, 2),
            "lea r9, [rax+rdx*4]" => e => e.Lea(Gpr.R9, Gpr.Rax, Gpr.Rdx, 4),
            "lea rbx, [r10+rdx*4]" => e => e.Lea(Gpr.Rbx, Gpr.R10, Gpr.Rdx, 4),
            "push rbx" => e => e.Push(Gpr.Rbx),
            "pop rbx" => e => e.Pop(Gpr.Rbx),
            "push r12" => e => e.Push(Gpr.R12),
            "pop r12" => e => e.Pop(Gpr.R12),
            _ => e => e.VZeroUpper(),
        };
        Assert.Equal(bytes, Hex(emit));
    }

    [Fact]
    public void ScaleMustBeOneTwoFourOrEight()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new X64Emitter().VPBroadcastD(29, Gpr.Rax, Gpr.Rdx, 3, 0));
    }

    [Fact]
    public void RoutineShapesOutsideTheRegistersAreRefused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => DpBf16Kernels.Emit(new X64Emitter(), 25, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => DpBf16Kernels.Emit(new X64Emitter(), 13, 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => DpBf16Kernels.Emit(new X64Emitter(), 0, 1));
    }

    /// <summary>
    /// The 24-row routine reads row 5g + j of its block from base g (rax, r9, r10, rbx, r11) at 0, s, 2s, 3s (rcx) or 4s,
    /// each weight pair broadcast once into zmm29; the two-tile one feeds both tiles from it (12 rows: accumulators 0–23).
    /// </summary>
    [Fact]
    public void RoutinesAddressEveryRowOnce()
    {
        var one = new X64Emitter();
        DpBf16Kernels.Emit(one, 24, 1);
        string hex = Convert.ToHexString(one.ToArray()).ToLowerInvariant();
        Assert.Contains(Hex(e => { e.VPBroadcastD(29, Gpr.Rax, null, 1, 0); e.VDpBf16Ps(0, 30, 29); }), hex);
        Assert.Contains(Hex(e => { e.VPBroadcastD(29, Gpr.R9, Gpr.Rcx, 1, 12); e.VDpBf16Ps(8, 30, 29); }), hex);
        Assert.Contains(Hex(e => { e.VPBroadcastD(29, Gpr.Rbx, Gpr.Rdx, 4, 4); e.VDpBf16Ps(19, 30, 29); }), hex);
        Assert.Contains(Hex(e => { e.VPBroadcastD(29, Gpr.R11, Gpr.Rcx, 1, 8); e.VDpBf16Ps(23, 30, 29); }), hex);
        Assert.EndsWith(Hex(e => { e.VMovUpsStore(Gpr.R8, 23 * 64, 23); e.VZeroUpper(); e.Pop(Gpr.Rbx); e.Ret(); }), hex);
        var two = new X64Emitter();
        DpBf16Kernels.Emit(two, 12, 2);
        hex = Convert.ToHexString(two.ToArray()).ToLowerInvariant();
        Assert.Contains(Hex(e => { e.VPBroadcastD(29, Gpr.R10, Gpr.Rdx, 1, 4); e.VDpBf16Ps(11, 30, 29); e.VDpBf16Ps(23, 31, 29); }), hex);
        Assert.DoesNotContain(Hex(e => e.VDpBf16Ps(24, 31, 29)), hex);
    }

    static (ushort[] Bits, float[] Values) Weights(int rows, int cols, int seed)
    {
        var f = NativeWeights.Floats(rows * cols, seed);
        var b = new ushort[f.Length];
        for (int i = 0; i < b.Length; i++) { b[i] = Bf16.FromFloat(f[i]); f[i] = Bf16.ToFloat(b[i]); }
        return (b, f);
    }

    // x rounded to bf16 costs up to 2^-8 relative per element (half an ulp of bf16's 8-bit significand).
    static void AssertRoundedProduct(float[] wf, float[] x, float[] actual, int rows, int cols, int tokens, string what) =>
        Bf16GemmChecks.AssertRoundedProduct(wf, x, actual, rows, cols, tokens, 1.0 / 256, what);

    /// <summary>Row counts around the 24-row block and the 12-row two-tile calls, tokens 1–40 (one tile, two, three), columns from one loop of 8 up.</summary>
    [Theory]
    [InlineData(1, 8)]
    [InlineData(5, 40)]
    [InlineData(13, 64)]
    [InlineData(23, 72)]
    [InlineData(24, 32)]
    [InlineData(37, 96)]
    [InlineData(64, 1024)]
    public void TwinDriverMatchesRoundedActivations(int rows, int cols)
    {
        var (wb, wf) = Weights(rows, cols, seed: rows + 2 * cols);
        foreach (int tokens in new[] { 1, 4, 15, 16, 17, 31, 32, 33, 40 })
        {
            var x = NativeWeights.Floats(tokens * cols, seed: tokens);
            var actual = new float[tokens * rows];
            actual.AsSpan().Fill(float.NaN);
            fixed (ushort* pw = wb)
            fixed (float* px = x, py = actual)
                Avx512Bf16Gemm.Forward(new WeightMatrix((byte*)pw, DType.BF16, rows, cols), px, py, tokens, emulate: true);
            AssertRoundedProduct(wf, x, actual, rows, cols, tokens, $"{rows}x{cols} tokens={tokens}");
        }
    }

    [Fact]
    public void GateUpAppliesSwiGlu() => Bf16GemmChecks.GateUpAppliesSwiGlu(inter: 29, hidden: 48, tokens: 21,
        (in WeightMatrix g, in WeightMatrix u, float* x, float* a, float* b, int t) => Avx512Bf16Gemm.GateUp(g, u, x, a, b, t, emulate: true),
        (in WeightMatrix w, float* x, float* y, int t) => Avx512Bf16Gemm.Forward(w, x, y, t, emulate: true));

    /// <summary>Columns not a multiple of 8 (and other dtypes) do not fit; MatMul then takes the fp32-activation path, which equals the scalar GEMM.</summary>
    [Fact]
    public void OtherShapesFallBack()
    {
        const int rows = 30, cols = 36, tokens = 20;
        var (wb, _) = Weights(rows, cols, seed: 7);
        fixed (ushort* pw = wb)
        {
            var w = new WeightMatrix((byte*)pw, DType.BF16, rows, cols);
            Assert.False(Avx512Bf16Gemm.Fits(w));
            Assert.False(Avx512Bf16Gemm.Use(w, tokens));
            Assert.False(Avx512Bf16Gemm.Fits(new WeightMatrix((byte*)pw, DType.F16, rows, 32)));
            Assert.True(Avx512Bf16Gemm.Fits(new WeightMatrix((byte*)pw, DType.BF16, rows, 32)));
            Assert.Throws<ArgumentException>(() => Avx512Bf16Gemm.Forward(w, null, null, tokens, emulate: true));
            var x = NativeWeights.Floats(tokens * cols, seed: 8);
            var expected = new float[tokens * rows];
            var actual = new float[tokens * rows];
            MatMul.Scalar(w, x, expected, tokens);
            MatMul.Forward(w, x, actual, tokens);
            for (int i = 0; i < expected.Length; i++)
                Assert.True(MathF.Abs(expected[i] - actual[i]) <= 1e-5f * (MathF.Abs(expected[i]) + 1), $"i={i}: {expected[i]} vs {actual[i]}");
        }
    }

    /// <summary>
    /// The machine code against its twin through the driver (24-row blocks of one tile, 12-row calls of two, remainders
    /// of 23, 11 and 12 rows): bit-identical, as measured on AMD Zen 5, so the twin's order (the odd product added, then
    /// the even one, each rounded, as the SDM's pseudo-code) is the hardware's; and within x's rounding of fp32.
    /// </summary>
    [Avx512Bf16Fact]
    public void NativeRoutinesMatchTheTwin()
    {
        foreach (var (rows, cols) in new[] { (24, 512), (47, 88), (12, 8) })
        {
            var (wb, wf) = Weights(rows, cols, seed: rows);
            foreach (int tokens in new[] { 3, 16, 29, 40 })
            {
                var x = NativeWeights.Floats(tokens * cols, seed: tokens + rows);
                var a = new float[tokens * rows];
                var b = new float[tokens * rows];
                fixed (ushort* pw = wb)
                fixed (float* px = x, pa = a, pb = b)
                {
                    var w = new WeightMatrix((byte*)pw, DType.BF16, rows, cols);
                    Avx512Bf16Gemm.Forward(w, px, pa, tokens, emulate: false);
                    Avx512Bf16Gemm.Forward(w, px, pb, tokens, emulate: true);
                }
                for (int t = 0; t < tokens; t++)
                    for (int r = 0; r < rows; r++)
                    {
                        int i = t * rows + r;
                        Assert.True(a[i] == b[i], $"{rows}x{cols} tokens={tokens} t={t} r={r}: native {a[i]}, twin {b[i]}");
                    }
                AssertRoundedProduct(wf, x, a, rows, cols, tokens, $"native {rows}x{cols} tokens={tokens}");
            }
        }
    }

    /// <summary>Where the CPU has AVX512-BF16 (and no AMX-BF16), MatMul takes the routines from the threshold on (x rounded to bf16: not the fp32 path's result).</summary>
    [Avx512Bf16Fact(withoutAmx: true)]
    public void MatMulTakesTheRoutinesFromTheThreshold()
    {
        const int rows = 48, cols = 64;
        int tokens = Math.Max(Avx512Bf16Gemm.MinTokens, 5);
        var (wb, wf) = Weights(rows, cols, seed: 11);
        var x = NativeWeights.Floats(tokens * cols, seed: 12);
        x[3] = 1 + 1f / 1024; // rounds to 1 in bf16: the fp32 path and the bf16 one differ on every row of token 0
        var actual = new float[tokens * rows];
        var expected = new float[tokens * rows];
        var fp32 = new float[tokens * rows];
        fixed (ushort* pw = wb)
        fixed (float* px = x, pe = expected)
        {
            var w = new WeightMatrix((byte*)pw, DType.BF16, rows, cols);
            Avx512Bf16Gemm.Forward(w, px, pe, tokens, emulate: false);
            MatMul.Forward(w, x, actual, tokens);
            MatMul.Scalar(w, x, fp32, tokens);
        }
        Assert.Equal(expected, actual);
        AssertRoundedProduct(wf, x, actual, rows, cols, tokens, "MatMul");
        Assert.NotEqual(fp32.AsSpan(0, rows).ToArray(), actual.AsSpan(0, rows).ToArray());
    }
}
