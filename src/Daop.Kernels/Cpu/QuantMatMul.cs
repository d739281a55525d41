using System.Runtime.Intrinsics;
using Daop.Kernels.Cpu.Amx;
using Daop.Kernels.Cpu.Gemm;
using Daop.Kernels.Cpu.Quant;
using Daop.Kernels.Quant;

namespace Daop.Kernels.Cpu;

/// <summary>
/// y = x · Wᵀ for block weights (<see cref="DType.Q8_0"/>, <see cref="DType.Q4_0"/>, <see cref="DType.MXFP4"/>, GGUF's
/// Q4_1, Q5_0 and Q5_1; the K-quants'
/// scalar twin is here too, their kernels are <see cref="KQuantGemm{TK}"/>), as
/// <see cref="MatMul.Forward"/> runs it: x is quantized to int8 blocks and the integer block dots run in register
/// tiles (decode's one token included); for Q8_0 from 32 tokens on, panels of W are widened to fp32 instead and the
/// outer-product GEMM runs (<see cref="OuterMinTokens"/>).
/// </summary>
public static unsafe class QuantMatMul
{
    /// <summary>
    /// From how many tokens on block weights of <paramref name="type"/> take the fp32 outer-product GEMM instead of
    /// the int8 tiles. Measured on the 2-core Zen 4 VM, Mixtral's 14336×4096, GFLOP/s int8 vs fp32 panels: Q4_0 8 tokens
    /// 119 vs 36, 64 tokens 117 vs 108, 256 tokens 118 vs 106 (MXFP4 alike), so the 4-bit formats stay on the int8
    /// tiles; Q8_0 (sign trick, no int16 folding) 8 tokens 75 vs 37, 32 tokens 76 vs 86, 64 tokens 75 vs 98, so it
    /// switches at 32. With AVX-VNNI the signed formats run biased (<see cref="Quad.Biased{TB}"/>); Zen 5 dev VM,
    /// 2026-12-07, two threads: Q8_0 16 tokens 241–251 vs 201–211, 32 tokens 245–261 vs 283, 64 tokens 247–258 vs
    /// 328–333, and IQ4_NL 16 tokens 270–285 vs 192–218, 32 tokens 269–281 vs 295, so both switch at 32 (IQ4_NL switched
    /// at 16 before, when its tile left dots as calls); the K-quants at <see cref="KOuterMin"/>. <c>DAOP_QUANT_OUTER_MIN</c> sets one threshold for all block formats, for tuning elsewhere.
    /// </summary>
    internal static int OuterMinTokens(DType type) => s_outerMin > 0 ? s_outerMin : type switch
    {
        DType.Q8_0 => 32,
        DType.IQ4_NL => 32,
        _ => type.IsKQuant() ? KOuterMin : int.MaxValue,
    };

    /// <summary>
    /// The K-quants' threshold. Dev VM (Zen 5, 2 threads), Mixtral expert, GFLOP/s int8 vs fp32 panels (exactly widened
    /// super-blocks). On 256-bit vectors (2026-12-06, two runs): q4_K 32 tokens 177–178 vs 124, 64 tokens 174–177 vs
    /// 156–158, 128 tokens 175–179 vs 183–186; q5_K and q6_K alike, so the panels take over from 96. With AVX-512BW
    /// (<see cref="KQuantGemm{TK}"/>'s two sub-blocks per register, two rows per pass) the int8 dots lead at every size:
    /// q4_K 128 tokens 238–242 vs 174–182, 256 tokens 232–246 vs 189–195; q6_K 211–219 vs 177–197.
    /// </summary>
    static int KOuterMin => KQuantPaths.Wide ? int.MaxValue : 96;

    static readonly int s_outerMin = int.TryParse(Environment.GetEnvironmentVariable("DAOP_QUANT_OUTER_MIN"), out int m) && m > 0 ? m : 0;

    /// <summary>y = x·Wᵀ for block format <typeparamref name="TB"/>: int8 tiles or, for large batches, fp32 panels.</summary>
    internal static void Forward<TB>(in WeightMatrix w, float* x, float* y, int tokens) where TB : struct, IBlockFormat
    {
        if (AmxBlockGemm<AmxBlocks<TB>>.Use(w, tokens)) AmxBlockGemm<AmxBlocks<TB>>.Forward(w, x, y, tokens);
        else if (tokens >= OuterMinTokens(TB.Type)) Outer<TB>(w, x, y, tokens);
        else Int8<TB>(w, x, y, tokens);
    }

    /// <summary>y = x·Wᵀ for the K-quant <typeparamref name="TK"/>: int8 dots or, for large batches, fp32 panels.</summary>
    internal static void ForwardK<TK>(in WeightMatrix w, float* x, float* y, int tokens) where TK : struct, IKQuantFormat
    {
        if (AmxBlockGemm<AmxKBlocks<TK>>.Use(w, tokens)) AmxBlockGemm<AmxKBlocks<TK>>.Forward(w, x, y, tokens);
        else if (tokens >= OuterMinTokens(TK.Type)) Outer<TK>(w, x, y, tokens);
        else KQuantGemm<TK>.Forward(w, x, y, tokens);
    }

    /// <summary>An expert's fused gate/up + SwiGLU for K-quant weights.</summary>
    internal static void GateUpK<TK>(in WeightMatrix gate, in WeightMatrix up, float* x, float* g, float* u, int tokens)
        where TK : struct, IKQuantFormat
    {
        if (AmxBlockGemm<AmxKBlocks<TK>>.Use(gate, up, tokens)) AmxBlockGemm<AmxKBlocks<TK>>.GateUp(gate, up, x, g, u, tokens);
        else if (tokens >= OuterMinTokens(TK.Type)) OuterGateUpOf<TK>(gate, up, x, g, u, tokens);
        else KQuantGateUp<TK>.Run(gate, up, x, g, u, tokens);
    }

    /// <summary>The int8 path at any batch size.</summary>
    internal static void Int8<TB>(in WeightMatrix w, float* x, float* y, int tokens) where TB : struct, IBlockFormat
    {
        QuantGemm<TB>.Forward(w, x, y, tokens);
    }

    /// <summary>The fp32 panel path at any batch size.</summary>
    internal static void Outer<TB>(in WeightMatrix w, float* x, float* y, int tokens) where TB : struct, IPanelFormat
    {
        if (Vector512.IsHardwareAccelerated) OuterGemm<TB, Simd512, Vector512<float>>.Forward(w, x, y, tokens);
        else if (Vector256.IsHardwareAccelerated) OuterGemm<TB, Simd256, Vector256<float>>.Forward(w, x, y, tokens);
        else OuterGemm<TB, SimdScalar, float>.Forward(w, x, y, tokens);
    }

    /// <summary>An expert's fused gate/up + SwiGLU for block weights (see <see cref="ExpertFfn.Forward"/>).</summary>
    internal static void GateUp<TB>(in WeightMatrix gate, in WeightMatrix up, float* x, float* g, float* u, int tokens)
        where TB : struct, IBlockFormat
    {
        if (AmxBlockGemm<AmxBlocks<TB>>.Use(gate, up, tokens)) AmxBlockGemm<AmxBlocks<TB>>.GateUp(gate, up, x, g, u, tokens);
        else if (tokens >= OuterMinTokens(TB.Type)) OuterGateUpOf<TB>(gate, up, x, g, u, tokens);
        else QuantGateUp<TB>.Run(gate, up, x, g, u, tokens);
    }

    static void OuterGateUpOf<TF>(in WeightMatrix gate, in WeightMatrix up, float* x, float* g, float* u, int tokens) where TF : struct, IPanelFormat
    {
        if (Vector512.IsHardwareAccelerated) OuterGateUp<TF, Simd512, Vector512<float>>.Run(gate, up, x, g, u, tokens);
        else if (Vector256.IsHardwareAccelerated) OuterGateUp<TF, Simd256, Vector256<float>>.Run(gate, up, x, g, u, tokens);
        else OuterGateUp<TF, SimdScalar, float>.Run(gate, up, x, g, u, tokens);
    }

    /// <summary>
    /// The K-quant part of <see cref="Scalar"/>: x quantized per super-block of 256 (<see cref="KActivations.QuantizeRow"/>,
    /// as llama.cpp's q8_K), each run of 16 weights read by <see cref="BlockQuant.KRun"/> (x = scale·q − min), and
    /// Σ_runs d_x·(scale·Σ q·x_q − min·Σ x_q) summed in double.
    /// </summary>
    static void ScalarK(in WeightMatrix w, ReadOnlySpan<float> x, Span<float> y, int tokens)
    {
        int cols = w.Cols, bb = w.Type.BlockBytes();
        var q = new sbyte[cols];
        var d = new float[cols / 256];
        var wq = new int[16];
        for (int t = 0; t < tokens; t++)
        {
            KActivations.QuantizeRow(x.Slice(t * cols, cols), q, d);
            for (int r = 0; r < w.Rows; r++)
            {
                var row = w.RowBytesSpan(r);
                double acc = 0;
                for (int c = 0; c < cols; c += 16)
                {
                    BlockQuant.KRun(w.Type, row.Slice(c / 256 * bb, bb), c % 256 / 16, wq, out float scale, out float min);
                    long dot = 0, sum = 0;
                    for (int i = 0; i < 16; i++)
                    {
                        dot += (long)wq[i] * q[c + i];
                        sum += q[c + i];
                    }
                    acc += d[c / 256] * ((double)scale * dot - (double)min * sum);
                }
                y[t * w.Rows + r] = (float)acc;
            }
        }
    }

    /// <summary>
    /// Scalar twin of the int8 path: quantize each token's x to blocks of 32 int8 with an fp32 scale
    /// (<see cref="QuantizedActivations"/>'s rule), take the exact integer dot of each weight block with its x block,
    /// and accumulate scale_w · d_x · dot (+ min_w · d_x · Σx_q for Q4_1 and Q5_1) in fp32, block by block. K-quants (<see cref="ScalarK"/>) quantize x per
    /// super-block of 256 instead, as their kernels and llama.cpp's q8_K do.
    /// </summary>
    /// <remarks>
    /// The fast paths compute the same integers and scales; they differ only in the order of the fp32 sums. Against
    /// fp32 math on the dequantized weights (<see cref="MatMul.Scalar"/>) the difference is x's quantization error:
    /// at most d_x/2 = amax/254 per element of each block.
    /// </remarks>
    public static void Scalar(in WeightMatrix w, ReadOnlySpan<float> x, Span<float> y, int tokens)
    {
        if (!w.Type.IsBlock()) throw new ArgumentException($"{w.Type.Name()} is not a block format", nameof(w));
        if (w.Type.IsKQuant())
        {
            ScalarK(w, x, y, tokens);
            return;
        }
        int cols = w.Cols, blocks = (cols + 31) / 32, bb = w.Type.BlockBytes();
        var q = new sbyte[blocks * 32];
        var d = new float[blocks];
        for (int t = 0; t < tokens; t++)
        {
            QuantizedActivations.QuantizeRow(x.Slice(t * cols, cols), q, d);
            for (int r = 0; r < w.Rows; r++)
            {
                var row = w.RowBytesSpan(r);
                float acc = 0;
                for (int b = 0; b < blocks; b++)
                {
                    var block = row.Slice(b * bb, bb);
                    int dot = 0, sum = 0;
                    for (int j = 0; j < 32; j++)
                    {
                        dot += BlockQuant.Integer(w.Type, block, j) * q[b * 32 + j];
                        sum += q[b * 32 + j];
                    }
                    acc += BlockQuant.BlockScale(w.Type, block) * d[b] * dot;
                    if (w.Type is DType.Q4_1 or DType.Q5_1) acc += BlockQuant.BlockMin(w.Type, block) * (d[b] * sum);
                }
                y[t * w.Rows + r] = acc;
            }
        }
    }
}
