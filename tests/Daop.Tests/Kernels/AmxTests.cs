using Daop.Kernels;
using Daop.Kernels.Cpu;
using Daop.Kernels.Cpu.Amx;
using Daop.Kernels.Cpu.Quant;

namespace Daop.Tests.Kernels;

/// <summary>
/// The AMX int8 path: the emitter's encodings against GNU as (binutils 2.40, <c>as</c> + <c>objdump -d</c>), and the
/// Q8_0 driver run on the tiles' scalar twin against the scalar GEMM. The machine code itself runs only on a CPU with
/// AMX (<c>daop bench kernels</c> checks it against the twin there).
/// </summary>
public unsafe class AmxTests
{
    static string Hex(Action<X64Emitter> emit)
    {
        var e = new X64Emitter();
        emit(e);
        return Convert.ToHexString(e.ToArray()).ToLowerInvariant();
    }

    [Theory]
    [InlineData("ldtilecfg [rax]", "c4e2784900")]
    [InlineData("ldtilecfg [r8]", "c4c2784900")]
    [InlineData("tilerelease", "c4e27849c0")]
    [InlineData("tilezero tmm0", "c4e27b49c0")]
    [InlineData("tilezero tmm3", "c4e27b49d8")]
    [InlineData("tilezero tmm7", "c4e27b49f8")]
    [InlineData("tileloadd tmm4, [rax+r9*1]", "c4a27b4b2408")]
    [InlineData("tileloadd tmm5, [r10+r9*1]", "c4827b4b2c0a")]
    [InlineData("tileloadd tmm6, [rcx+rsi*1]", "c4e27b4b3431")]
    [InlineData("tileloadd tmm7, [r11+rsi*1]", "c4c27b4b3c33")]
    [InlineData("tilestored [rdx+rsi*1], tmm0", "c4e27a4b0432")]
    [InlineData("tilestored [rdx+rsi*1+0x400], tmm1", "c4e27a4b8c3200040000")]
    [InlineData("tilestored [rdx+rsi*1+0xc00], tmm3", "c4e27a4b9c32000c0000")]
    [InlineData("tdpbssd tmm0, tmm4, tmm6", "c4e24b5ec4")]
    [InlineData("tdpbssd tmm3, tmm5, tmm7", "c4e2435edd")]
    [InlineData("tdpbf16ps tmm1, tmm4, tmm7", "c4e2425ccc")]
    [InlineData("mov rax, [rdi+8]", "488b4708")]
    [InlineData("mov r10, [rdi+24]", "4c8b5718")]
    [InlineData("mov rsi, [rdi]", "488b37")]
    [InlineData("add rax, rdi", "4801f8")]
    [InlineData("add r10, rdi", "4901fa")]
    [InlineData("add r11, 512", "4981c300020000")]
    [InlineData("add rdx, 4096", "4881c200100000")]
    [InlineData("dec r8", "49ffc8")]
    [InlineData("ret", "c3")]
    public void EncodingsMatchGnuAs(string instruction, string bytes)
    {
        Action<X64Emitter> emit = instruction switch
        {
            "ldtilecfg [rax]" => e => e.LdTileCfg(Gpr.Rax),
            "ldtilecfg [r8]" => e => e.LdTileCfg(Gpr.R8),
            "tilerelease" => e => e.TileRelease(),
            "tilezero tmm0" => e => e.TileZero(0),
            "tilezero tmm3" => e => e.TileZero(3),
            "tilezero tmm7" => e => e.TileZero(7),
            "tileloadd tmm4, [rax+r9*1]" => e => e.TileLoadD(4, Gpr.Rax, Gpr.R9),
            "tileloadd tmm5, [r10+r9*1]" => e => e.TileLoadD(5, Gpr.R10, Gpr.R9),
            "tileloadd tmm6, [rcx+rsi*1]" => e => e.TileLoadD(6, Gpr.Rcx, Gpr.Rsi),
            "tileloadd tmm7, [r11+rsi*1]" => e => e.TileLoadD(7, Gpr.R11, Gpr.Rsi),
            "tilestored [rdx+rsi*1], tmm0" => e => e.TileStoreD(Gpr.Rdx, Gpr.Rsi, 0, 0),
            "tilestored [rdx+rsi*1+0x400], tmm1" => e => e.TileStoreD(Gpr.Rdx, Gpr.Rsi, 0x400, 1),
            "tilestored [rdx+rsi*1+0xc00], tmm3" => e => e.TileStoreD(Gpr.Rdx, Gpr.Rsi, 0xc00, 3),
            "tdpbssd tmm0, tmm4, tmm6" => e => e.TdpBssd(0, 4, 6),
            "tdpbssd tmm3, tmm5, tmm7" => e => e.TdpBssd(3, 5, 7),
            "tdpbf16ps tmm1, tmm4, tmm7" => e => e.TdpBf16Ps(1, 4, 7),
            "mov rax, [rdi+8]" => e => e.MovLoad(Gpr.Rax, Gpr.Rdi, 8),
            "mov r10, [rdi+24]" => e => e.MovLoad(Gpr.R10, Gpr.Rdi, 24),
            "mov rsi, [rdi]" => e => e.MovLoad(Gpr.Rsi, Gpr.Rdi, 0),
            "add rax, rdi" => e => e.Add(Gpr.Rax, Gpr.Rdi),
            "add r10, rdi" => e => e.Add(Gpr.R10, Gpr.Rdi),
            "add r11, 512" => e => e.Add(Gpr.R11, 512),
            "add rdx, 4096" => e => e.Add(Gpr.Rdx, 4096),
            "dec r8" => e => e.Dec(Gpr.R8),
            _ => e => e.Ret(),
        };
        Assert.Equal(bytes, Hex(emit));
    }

    [Fact]
    public void LoopJumpsBackToItsStart()
    {
        // "jnz" at offset 0x86 to itself assembles to 75 fe (rel8); the emitter always writes rel32: 0f 85 fa ff ff ff.
        var e = new X64Emitter();
        int top = e.Position;
        e.Jnz(top);
        Assert.Equal("0f85faffffff", Convert.ToHexString(e.ToArray()).ToLowerInvariant());
        e = new X64Emitter();
        e.Dec(Gpr.R8);
        e.Jnz(0);
        Assert.Equal("49ffc80f85f7ffffff", Convert.ToHexString(e.ToArray()).ToLowerInvariant());
    }

    [Fact]
    public void RspIsNoIndexRegister()
    {
        Assert.Throws<ArgumentException>(() => new X64Emitter().TileLoadD(0, Gpr.Rax, Gpr.Rsp));
    }

    public static TheoryData<DType, int, int> Cases()
    {
        var data = new TheoryData<DType, int, int>();
        foreach (var (rows, cols) in new[] { (32, 32), (64, 256), (96, 288), (32, 4096) })
            data.Add(DType.Q8_0, rows, cols);
        foreach (var t in new[] { DType.Q4_0, DType.Q5_0, DType.Q4_1, DType.Q5_1, DType.IQ4_NL, DType.MXFP4 })
            foreach (var (rows, cols) in new[] { (32, 32), (64, 288) }) data.Add(t, rows, cols);
        return data;
    }

    static void Forward(in WeightMatrix w, float* x, float* y, int tokens)
    {
        switch (w.Type)
        {
            case DType.Q8_0: AmxBlockGemm<AmxBlocks<Q8_0Format>>.Forward(w, x, y, tokens, emulate: true); break;
            case DType.Q4_0: AmxBlockGemm<AmxBlocks<Q4_0Format>>.Forward(w, x, y, tokens, emulate: true); break;
            case DType.Q5_0: AmxBlockGemm<AmxBlocks<Q5_0Format>>.Forward(w, x, y, tokens, emulate: true); break;
            case DType.Q4_1: AmxBlockGemm<AmxBlocks<Q4_1Format>>.Forward(w, x, y, tokens, emulate: true); break;
            case DType.Q5_1: AmxBlockGemm<AmxBlocks<Q5_1Format>>.Forward(w, x, y, tokens, emulate: true); break;
            case DType.IQ4_NL: AmxBlockGemm<AmxBlocks<Iq4NlFormat>>.Forward(w, x, y, tokens, emulate: true); break;
            default: AmxBlockGemm<AmxBlocks<Mxfp4Format>>.Forward(w, x, y, tokens, emulate: true); break;
        }
    }

    /// <summary>
    /// The driver on the twin: the VNNI layout, the tails of 16-token tiles and 8-block calls, the scales; Q8_0's tiles
    /// on the weights as stored, the others on unpacked bytes (Q4_1 and Q5_1 with their mins).
    /// </summary>
    [Theory]
    [MemberData(nameof(Cases))]
    public void MatchesScalarGemm(DType type, int rows, int cols)
    {
        using var w = new BlockWeights(type, rows, cols, seed: rows + cols);
        foreach (int tokens in new[] { 1, 4, 15, 16, 17, 32, 33, 40, 129 })
        {
            var x = NativeWeights.Floats(tokens * cols, seed: tokens * 3 + 1);
            var expected = new float[tokens * rows];
            QuantMatMul.Scalar(w.W, x, expected, tokens);
            var actual = new float[tokens * rows];
            actual.AsSpan().Fill(float.NaN);
            fixed (float* px = x, py = actual) Forward(w.W, px, py, tokens);
            MatMulTests.AssertClose(expected, actual, QuantMatMulTests.Int8Magnitude(w.W, x, tokens), $"{type} {rows}x{cols} tokens={tokens}");
        }
    }

    /// <summary>
    /// The K-quants on the twin: Q4_K and Q5_K by sub-block of 32 (with mins), Q6_K and Q3_K by run of 16 (the half-block tiles). x is quantized per 32 here (per 256 on the AVX paths), so the reference is
    /// fp32 math on the dequantized weights, within x's quantization: Σ_c |w_c|·d_x(c)/2 (plus fp32 rounding).
    /// </summary>
    [Theory]
    [InlineData(DType.Q4_K, 32, 256)]
    [InlineData(DType.Q5_K, 64, 512)]
    [InlineData(DType.Q6_K, 32, 512)]
    [InlineData(DType.Q3_K, 64, 256)]
    public void KQuantsMatchDequantizedFp32(DType type, int rows, int cols)
    {
        using var w = KQuantMatMulTests.Random(type, rows, cols, seed: rows + cols);
        var wf = w.Dequantized();
        foreach (int tokens in new[] { 4, 17, 40 })
        {
            var x = NativeWeights.Floats(tokens * cols, seed: tokens + 11);
            var expected = new float[tokens * rows];
            MatMul.Scalar(w.W, x, expected, tokens);
            var actual = new float[tokens * rows];
            actual.AsSpan().Fill(float.NaN);
            fixed (float* px = x, py = actual)
            {
                switch (type)
                {
                    case DType.Q4_K: AmxBlockGemm<AmxKBlocks<Q4_KFormat>>.Forward(w.W, px, py, tokens, emulate: true); break;
                    case DType.Q5_K: AmxBlockGemm<AmxKBlocks<Q5_KFormat>>.Forward(w.W, px, py, tokens, emulate: true); break;
                    case DType.Q6_K: AmxBlockGemm<AmxKBlocks<Q6_KFormat>>.Forward(w.W, px, py, tokens, emulate: true); break;
                    default: AmxBlockGemm<AmxKBlocks<Q3_KFormat>>.Forward(w.W, px, py, tokens, emulate: true); break;
                }
            }
            var q = new sbyte[cols];
            var d = new float[cols / 32];
            for (int t = 0; t < tokens; t++)
            {
                QuantizedActivations.QuantizeRow(x.AsSpan(t * cols, cols), q, d);
                for (int r = 0; r < rows; r++)
                {
                    double bound = 0, mag = 0;
                    for (int c = 0; c < cols; c++)
                    {
                        bound += Math.Abs(wf[r * cols + c]) * d[c / 32] / 2;
                        mag += Math.Abs((double)wf[r * cols + c] * x[t * cols + c]);
                    }
                    float e = expected[t * rows + r], a = actual[t * rows + r];
                    Assert.True(Math.Abs(e - a) <= bound * 1.0001 + 2e-5 * mag + 1e-30, $"{type} t={t} r={r}: fp32 {e}, amx {a}, bound {bound}");
                }
            }
        }
    }

    [Fact]
    public void GateUpAppliesSwiGluToBothProducts()
    {
        const int inter = 64, hidden = 96, tokens = 19;
        using var gate = new BlockWeights(DType.Q8_0, inter, hidden, seed: 5);
        using var up = new BlockWeights(DType.Q8_0, inter, hidden, seed: 6);
        var x = NativeWeights.Floats(tokens * hidden, seed: 9);
        var eg = new float[tokens * inter];
        var eu = new float[tokens * inter];
        QuantMatMul.Scalar(gate.W, x, eg, tokens);
        QuantMatMul.Scalar(up.W, x, eu, tokens);
        var g = new float[tokens * inter];
        var u = new float[tokens * inter];
        fixed (float* px = x, pg = g, pu = u) AmxBlockGemm<AmxBlocks<Q8_0Format>>.GateUp(gate.W, up.W, px, pg, pu, tokens, emulate: true);
        MatMulTests.AssertClose(eu, u, QuantMatMulTests.Int8Magnitude(up.W, x, tokens), "up");
        var gm = QuantMatMulTests.Int8Magnitude(gate.W, x, tokens);
        for (int i = 0; i < g.Length; i++)
        {
            float silu = eg[i] / (1 + MathF.Exp(-eg[i]));
            // SiLU's slope is below 1.1, so the gate's error bound carries over, times |up|.
            float tol = 1e-5f * gm[i] * 1.1f * MathF.Abs(eu[i]) + 1e-5f * MathF.Abs(silu * eu[i]) + 1e-6f;
            Assert.True(MathF.Abs(silu * eu[i] - g[i]) <= tol, $"i={i}: {silu * eu[i]} vs {g[i]}");
        }
    }

    [Fact]
    public void OnlyWholePanelsOfQ8_0Fit()
    {
        using var odd = new BlockWeights(DType.Q8_0, 33, 64, seed: 1);
        using var narrow = new BlockWeights(DType.Q8_0, 32, 40, seed: 1);
        using var q4 = new BlockWeights(DType.Q4_0, 32, 64, seed: 1);
        Assert.False(AmxBlockGemm<AmxBlocks<Q8_0Format>>.Fits(odd.W));
        Assert.False(AmxBlockGemm<AmxBlocks<Q8_0Format>>.Fits(narrow.W));
        Assert.False(AmxBlockGemm<AmxBlocks<Q8_0Format>>.Fits(q4.W));
    }

    /// <summary>
    /// The bf16 driver on the twin equals fp32 math on the weights and x rounded to bf16 (up to summation order), and
    /// stays within x's rounding (2^-9 relative per element) of the fp32-activation GEMM.
    /// </summary>
    [Theory]
    [InlineData(32, 32)]
    [InlineData(64, 96)]
    [InlineData(96, 1024)]
    public void Bf16MatchesRoundedActivations(int rows, int cols)
    {
        var wf = NativeWeights.Floats(rows * cols, seed: rows + 2 * cols);
        var wb = new ushort[rows * cols];
        for (int i = 0; i < wb.Length; i++) { wb[i] = Bf16.FromFloat(wf[i]); wf[i] = Bf16.ToFloat(wb[i]); }
        foreach (int tokens in new[] { 4, 16, 17, 33, 48 })
        {
            var x = NativeWeights.Floats(tokens * cols, seed: tokens);
            var actual = new float[tokens * rows];
            actual.AsSpan().Fill(float.NaN);
            fixed (ushort* pw = wb)
            fixed (float* px = x, py = actual)
                AmxBf16Gemm.Forward(new WeightMatrix((byte*)pw, DType.BF16, rows, cols), px, py, tokens, emulate: true);
            Bf16GemmChecks.AssertRoundedProduct(wf, x, actual, rows, cols, tokens, 1.0 / 512, $"{rows}x{cols}");
        }
    }

    /// <summary>A NaN activation stays NaN through the vector rounding to bf16 (it must not round into an infinity or zero).</summary>
    [Fact]
    public void Bf16KeepsNaN()
    {
        const int rows = 32, cols = 64, tokens = 16;
        var wb = new ushort[rows * cols];
        for (int i = 0; i < wb.Length; i++) wb[i] = Bf16.FromFloat(0.5f);
        var x = new float[tokens * cols];
        x[3 * cols + 5] = BitConverter.Int32BitsToSingle(0x7FFFFFFF); // the NaN whose rounding would carry into the sign
        var y = new float[tokens * rows];
        fixed (ushort* pw = wb)
        fixed (float* px = x, py = y)
            AmxBf16Gemm.Forward(new WeightMatrix((byte*)pw, DType.BF16, rows, cols), px, py, tokens, emulate: true);
        for (int t = 0; t < tokens; t++)
            for (int r = 0; r < rows; r++) Assert.Equal(t == 3, float.IsNaN(y[t * rows + r]));
    }

    [Fact]
    public void Bf16GateUpAppliesSwiGlu() => Bf16GemmChecks.GateUpAppliesSwiGlu(inter: 32, hidden: 64, tokens: 5,
        (in WeightMatrix g, in WeightMatrix u, float* x, float* a, float* b, int t) => AmxBf16Gemm.GateUp(g, u, x, a, b, t, emulate: true),
        (in WeightMatrix w, float* x, float* y, int t) => AmxBf16Gemm.Forward(w, x, y, t, emulate: true));

    [Fact]
    public void Bf16EncodesItsLoop()
    {
        // The routine's tail for 2 x 2 tiles: four tdpbf16ps into t0..t3 from t4/t5 and t6/t7, then the stores.
        var e = new X64Emitter();
        AmxTiles.EmitBf16(e, 2, 2);
        string hex = Convert.ToHexString(e.ToArray()).ToLowerInvariant();
        foreach (var (c, a, b) in new[] { (0, 4, 6), (1, 4, 7), (2, 5, 6), (3, 5, 7) })
            Assert.Contains(Hex(x => x.TdpBf16Ps(c, a, b)), hex);
        Assert.EndsWith(Hex(x => { x.TileStoreD(Gpr.Rdx, Gpr.Rsi, 3 * 1024, 3); x.Ret(); }), hex);
    }

    /// <summary>Where AMX exists, the machine code gives the twin's integers exactly (elsewhere there is nothing to run).</summary>
    [Fact]
    public void NativeTilesEqualTheTwinWhereAmxExists()
    {
        if (!AmxTiles.Native) return;
        using var w = new BlockWeights(DType.Q8_0, 64, 512, seed: 3);
        var x = NativeWeights.Floats(32 * 512, seed: 4);
        var a = new float[32 * 64];
        var b = new float[32 * 64];
        fixed (float* px = x, pa = a, pb = b)
        {
            AmxBlockGemm<AmxBlocks<Q8_0Format>>.Forward(w.W, px, pa, 32, emulate: true);
            AmxBlockGemm<AmxBlocks<Q8_0Format>>.Forward(w.W, px, pb, 32, emulate: false);
        }
        Assert.Equal(a, b);
    }
}
