using Daop.Kernels.Cpu.Amx;
using Daop.Kernels.Cpu.Quant;

namespace Daop.Kernels.Cpu;

/// <summary>
/// Intel AMX (Advanced Matrix Extensions) on this machine: whether Daop's batched (prefill) products use its tiles, and
/// a check of the tile routines against their scalar twins. The tiles are used automatically where the CPU has them and
/// Linux grants their state; <c>DAOP_AMX=0</c> turns them off, <c>DAOP_AMX_BF16=0</c> only the bf16 ones. Without
/// AMX-BF16, bf16 batches use AVX512-BF16's <c>vdpbf16ps</c> where the CPU has it (<c>DAOP_AVX512BF16=0</c> turns it off).
/// </summary>
public static unsafe class AmxInfo
{
    /// <summary>Whether batches (prefill) run on AMX tiles or AVX512-BF16 routines here, and if not why: a line for benchmarks and logs.</summary>
    public static string Status => (!AmxSupport.Int8 ? $"no AMX tiles ({AmxSupport.Reason})"
        : $"AMX tiles{(AmxSupport.Hardware ? "" : " (emulated)")} for batches of {AmxSupport.MinTokens}+ tokens: int8 for the 32-block " +
          $"formats (q8_0, q4_0, q5_0, q4_1, q5_1, iq4_nl, mxfp4){(AmxSupport.KQuants ? " and the K-quants q3_K..q6_K" : "")}" +
          $"{(AmxSupport.Bf16 ? ", bf16 for bf16 weights (x rounded to bf16)" : "")}")
        + (AmxSupport.Bf16 ? "" : DpBf16Kernels.Enabled
            ? $"; AVX512-BF16 vdpbf16ps{(DpBf16Kernels.Native ? "" : " (emulated)")} for bf16 weights in batches of {Avx512Bf16Gemm.MinTokens}+ tokens (x rounded to bf16)"
            : $"; no AVX512-BF16 kernels ({DpBf16Kernels.Reason})");

    /// <summary>
    /// Where AMX is used, runs 64×512 products of 32 tokens on the tiles and on their scalar twins: Q8_0 (tiles on the
    /// weights as stored), Q4_0 (on unpacked bytes), Q4_1 and Q4_K (with mins) and Q6_K (16-column blocks) must be
    /// bit-identical (the integer products are exact on both), bf16 within 1e-6 of each output's magnitude (the hardware
    /// flushes subnormals). Returns null when all agree or AMX is not used, else what differed.
    /// </summary>
    public static string? Check()
    {
        if (!AmxSupport.Hardware) return null;
        if (!Int8<Q8_0Format>()) return "q8_0 tiles differ from their scalar twin";
        if (!Int8<Q4_0Format>()) return "q4_0 tiles differ from their scalar twin";
        if (!Int8<Q4_1Format>()) return "q4_1 tiles differ from their scalar twin";
        if (!Int8K<Q4_KFormat>(0, 2)) return "q4_K tiles differ from their scalar twin";
        if (!Int8K<Q6_KFormat>(208, 208)) return "q6_K tiles (16-column blocks) differ from their scalar twin";
        return AmxSupport.Bf16 && Bf16Error() is var e and > 1e-6 ? $"bf16 tiles differ from their scalar twin by {e:G3} of the magnitude" : null;
    }

    static bool Int8<TB>() where TB : struct, IBlockFormat
    {
        const int rows = 64, cols = 512, tokens = 32;
        int bb = TB.BlockBytes;
        var rng = new Random(1);
        var w = new byte[rows * (int)TB.Type.RowBytes(cols)];
        rng.NextBytes(w);
        for (int i = 0; i < w.Length; i += bb) { w[i] = 0x00; w[i + 1] = 0x20; } // d = 2^-7: a finite scale
        if (TB.HasMin) for (int i = 0; i < w.Length; i += bb) { w[i + 2] = 0x00; w[i + 3] = 0xA0; } // min = -2^-7
        return Same<AmxBlocks<TB>>(w, TB.Type, rows, cols, tokens);
    }

    /// <summary>A K-quant of random bytes whose fp16 super-block scales (at <paramref name="d"/>, <paramref name="dmin"/>) are made finite.</summary>
    static bool Int8K<TK>(int d, int dmin) where TK : struct, IKQuantFormat
    {
        const int rows = 64, cols = 512, tokens = 32;
        int bb = TK.BlockBytes;
        var rng = new Random(3);
        var w = new byte[rows * cols / 256 * bb];
        rng.NextBytes(w);
        for (int i = 0; i < w.Length; i += bb) { w[i + d] = 0; w[i + d + 1] = 0x20; w[i + dmin] = 0; w[i + dmin + 1] = 0x20; }
        return Same<AmxKBlocks<TK>>(w, TK.Type, rows, cols, tokens);
    }

    static bool Same<TU>(byte[] w, DType type, int rows, int cols, int tokens) where TU : struct, IAmxWeights
    {
        var rng = new Random(4);
        var x = new float[tokens * cols];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
        var a = new float[tokens * rows];
        var b = new float[tokens * rows];
        fixed (byte* pw = w)
        fixed (float* px = x, pa = a, pb = b)
        {
            var m = new WeightMatrix(pw, type, rows, cols);
            AmxBlockGemm<TU>.Forward(m, px, pa, tokens, emulate: false);
            AmxBlockGemm<TU>.Forward(m, px, pb, tokens, emulate: true);
        }
        return a.AsSpan().SequenceEqual(b);
    }

    static double Bf16Error()
    {
        const int rows = 64, cols = 512, tokens = 32;
        var rng = new Random(2);
        var w = new ushort[rows * cols];
        for (int i = 0; i < w.Length; i++) w[i] = Cpu.Bf16.FromFloat((float)(rng.NextDouble() * 2 - 1));
        var x = new float[tokens * cols];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
        var a = new float[tokens * rows];
        var b = new float[tokens * rows];
        fixed (ushort* pw = w)
        fixed (float* px = x, pa = a, pb = b)
        {
            var m = new WeightMatrix((byte*)pw, DType.BF16, rows, cols);
            AmxBf16Gemm.Forward(m, px, pa, tokens, emulate: false);
            AmxBf16Gemm.Forward(m, px, pb, tokens, emulate: true);
        }
        double worst = 0;
        for (int i = 0; i < a.Length; i++) worst = Math.Max(worst, Math.Abs(a[i] - b[i]) / cols);
        return worst;
    }
}
