using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Daop.Kernels.Cpu.Amx;
using Daop.Kernels.Cpu.Gemm;
using Daop.Kernels.Cpu.Quant;

namespace Daop.Kernels.Cpu;

/// <summary>
/// y = x · Wᵀ for a stored-dtype weight W [rows, cols] and fp32 activations x [tokens, cols] → y [tokens, rows].
/// The workhorse of every linear layer.
/// </summary>
public static unsafe class MatMul
{
    /// <summary>Computes y[t, r] = Σ_c x[t, c]·W[r, c] for every token t.</summary>
    /// <remarks>
    /// Parallel over rows on <see cref="CpuWorkers"/>, fp32 accumulation, no heap allocation once warm.
    /// One token is a GEMV that streams W once; several tokens run a register-tiled GEMM that reads each
    /// weight block once per group of four tokens. Results differ from <see cref="Scalar"/> only by summation order.
    /// K-quants (Q2_K .. Q6_K) take the int8 path (<see cref="KQuantGemm{TK}"/>), or exactly widened fp32 panels from
    /// <see cref="QuantMatMul.OuterMinTokens"/> (96 tokens on 256-bit vectors, never with AVX-512BW). The 32-blocks (Q8_0,
    /// Q4_0, MXFP4, Q4_1, Q5_0, Q5_1, IQ4_NL) go through <see cref="QuantMatMul"/>: below its batch threshold x is
    /// quantized to int8 blocks (results as <see cref="QuantMatMul.Scalar"/> up to summation order), above it the
    /// weights are widened exactly and the results are <see cref="Scalar"/>'s up to summation order. Where the CPU has AMX,
    /// batches from <see cref="AmxInfo"/>'s threshold on run on its tiles instead (the 32-block formats in int8 with x
    /// quantized as above; bf16 with x rounded to bf16).
    /// </remarks>
    public static void Forward(in WeightMatrix w, ReadOnlySpan<float> x, Span<float> y, int tokens)
    {
        Check(w, x, y, tokens);
        if (tokens <= 0 || w.Rows == 0) return;
        fixed (float* px = x, py = y)
        {
            var op = new LinearOp { W = w, X = px, Y = py, Tokens = tokens };
            FormatDispatch.Run(w.Type, ref op);
        }
    }

    struct LinearOp : IFormatOp
    {
        public WeightMatrix W;
        public float* X, Y;
        public int Tokens;

        public readonly void Invoke<TF>() where TF : struct, IWeightFormat
        {
            if (typeof(TF) == typeof(Bf16Format) && AmxBf16Gemm.Use(W, Tokens)) AmxBf16Gemm.Forward(W, X, Y, Tokens);
            else if (typeof(TF) == typeof(Bf16Format) && Avx512Bf16Gemm.Use(W, Tokens)) Avx512Bf16Gemm.Forward(W, X, Y, Tokens);
            else if (Vector512.IsHardwareAccelerated) Gemm<TF, Simd512, Vector512<float>>.Forward(W, X, Y, Tokens);
            else if (Vector256.IsHardwareAccelerated) Gemm<TF, Simd256, Vector256<float>>.Forward(W, X, Y, Tokens);
            else Gemm<TF, SimdScalar, float>.Forward(W, X, Y, Tokens);
        }

        public readonly void InvokeBlock<TB>() where TB : struct, IBlockFormat => QuantMatMul.Forward<TB>(W, X, Y, Tokens);

        public readonly void InvokeKQuant<TK>() where TK : struct, IKQuantFormat => QuantMatMul.ForwardK<TK>(W, X, Y, Tokens);
    }

    /// <summary>Scalar twin of <see cref="Forward"/>: the reference every fast path is tested against.</summary>
    public static void Scalar(in WeightMatrix w, ReadOnlySpan<float> x, Span<float> y, int tokens)
    {
        Check(w, x, y, tokens);
        var row = new float[w.Cols];
        for (int r = 0; r < w.Rows; r++)
        {
            WidenRow(w, r, row);
            for (int t = 0; t < tokens; t++)
            {
                var xt = x.Slice(t * w.Cols, w.Cols);
                float acc = 0;
                for (int c = 0; c < w.Cols; c++) acc += xt[c] * row[c];
                y[t * w.Rows + r] = acc;
            }
        }
    }

    /// <summary>Widens row <paramref name="r"/> of <paramref name="w"/> to fp32.</summary>
    public static void WidenRow(in WeightMatrix w, int r, Span<float> dst)
    {
        if (dst.Length < w.Cols) throw new ArgumentException($"dst holds {dst.Length} floats, need {w.Cols}", nameof(dst));
        fixed (float* d = dst)
        {
            var op = new WidenOp { Row = w.Data + (long)r * w.RowBytes, Dst = d, Cols = w.Cols };
            FormatDispatch.Run(w.Type, ref op);
        }
    }

    struct WidenOp : IFormatOp
    {
        public byte* Row;
        public float* Dst;
        public int Cols;

        public readonly void Invoke<TF>() where TF : struct, IWeightFormat => TF.WidenRow(Row, new Span<float>(Dst, Cols));

        public readonly void InvokeBlock<TB>() where TB : struct, IBlockFormat => TB.WidenRow(Row, new Span<float>(Dst, Cols));

        public readonly void InvokeKQuant<TK>() where TK : struct, IKQuantFormat => KWidening.Row<TK>(Row, new Span<float>(Dst, Cols));
    }

    static void Check(in WeightMatrix w, ReadOnlySpan<float> x, Span<float> y, int tokens)
    {
        if (x.Length < (long)tokens * w.Cols) throw new ArgumentException($"x holds {x.Length} floats, need {tokens}x{w.Cols}");
        if (y.Length < (long)tokens * w.Rows) throw new ArgumentException($"y holds {y.Length} floats, need {tokens}x{w.Rows}");
    }
}
