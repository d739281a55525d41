using System.Runtime.Intrinsics;
using Daop.Kernels.Cpu;
using Daop.Kernels.Cpu.Gemm;

namespace Daop.Kernels.Generated;

/// <summary>
/// The expert kernel for one compile-time shape (<typeparamref name="TShape"/>, emitted by the source generator):
/// 1 to <see cref="MaxSpecialisedTokens"/> tokens run <see cref="ShapedExpertFfn{TShape, TF, TS, TV}"/>, whose loops
/// the JIT compiles with constant trip counts and token count; larger batches take the tuned generic path.
/// </summary>
/// <remarks>
/// Batches of 4 or more tokens delegate to <see cref="ExpertFfn.Forward"/>: its cache-blocked 4×4 register tiles
/// and outer-product GEMM already read each weight once per block of tokens, and constant dimensions measured no
/// faster there. Weights of another shape or dtype also take the generic path, so <see cref="Forward"/> is correct
/// for any expert; <see cref="Matches"/> tells whether the specialised path applies.
/// </remarks>
public sealed unsafe class ShapedExpertKernel<TShape> : IExpertKernel where TShape : struct, IExpertShape
{
    ShapedExpertKernel()
    {
    }

    /// <summary>The single instance (the kernel holds no state).</summary>
    public static ShapedExpertKernel<TShape> Instance { get; } = new();

    /// <inheritdoc/>
    public string Name { get; } = $"generated H{TShape.Hidden}xI{TShape.Inter} {TypeName(TShape.Type)}";

    /// <inheritdoc/>
    public ExpertKernelKind Kind => ExpertKernelKind.Generated;

    /// <summary>Model width the kernel is specialised for.</summary>
    public int Hidden => TShape.Hidden;

    /// <summary>Expert width the kernel is specialised for.</summary>
    public int Inter => TShape.Inter;

    /// <summary>Weight dtype the kernel is specialised for.</summary>
    public DType Type => TShape.Type;

    /// <summary>Whether the three matrices have exactly this shape and dtype, so the specialised path applies.</summary>
    public static bool Matches(in WeightMatrix gate, in WeightMatrix up, in WeightMatrix down) =>
        gate.Rows == TShape.Inter && gate.Cols == TShape.Hidden && gate.Type == TShape.Type &&
        up.Rows == TShape.Inter && up.Cols == TShape.Hidden && up.Type == TShape.Type &&
        down.Rows == TShape.Hidden && down.Cols == TShape.Inter && down.Type == TShape.Type;

    /// <summary>
    /// Most tokens the specialised path takes; larger batches use the generic blocked GEMM. At 2–3 tokens the
    /// generic path streams the weights once per token while this one streams them once; from 4 tokens on the
    /// generic 4×4 tiles read them once too and are as fast (bf16 4096×14336, 2 shared Zen cores: 2 tokens 16.5 vs
    /// 24.6 ms, 3 tokens 19.2 vs 32.5 ms, 4 tokens 19.5 vs 19.4 ms).
    /// </summary>
    public const int MaxSpecialisedTokens = 3;

    /// <summary>
    /// Fewest tokens the specialised path takes. A single token is bandwidth-bound and constant dimensions buy
    /// nothing there; on the 16-core H100 host the specialised single-token path was slower than the generic one
    /// (bf16, µs: 4096×14336 3329 vs 3137, 2048×768 120 vs 109, 2048×1024 254 vs 136, <c>daop bench kernels</c>),
    /// so one token goes to the generic GEMV.
    /// </summary>
    public const int MinSpecialisedTokens = 2;

    /// <inheritdoc/>
    public void Forward(in WeightMatrix gate, in WeightMatrix up, in WeightMatrix down,
        ReadOnlySpan<float> x, Span<float> y, int tokens, Span<float> scratch)
    {
        if (tokens < MinSpecialisedTokens || tokens > MaxSpecialisedTokens || !Matches(gate, up, down))
        {
            ExpertFfn.Forward(gate, up, down, x, y, tokens, scratch);
            return;
        }
        long io = (long)tokens * TShape.Hidden;
        if (x.Length < io) throw new ArgumentException($"x holds {x.Length} floats, need {tokens}x{TShape.Hidden}", nameof(x));
        if (y.Length < io) throw new ArgumentException($"y holds {y.Length} floats, need {tokens}x{TShape.Hidden}", nameof(y));
        if (scratch.Length < 2L * tokens * TShape.Inter)
            throw new ArgumentException($"scratch holds {scratch.Length} floats, need 2x{tokens}x{TShape.Inter}", nameof(scratch));
        fixed (float* px = x, py = y, ps = scratch)
        {
            switch (tokens)
            {
                case 1: Run<OneToken>(gate.Data, up.Data, down.Data, px, py, ps); break;
                case 2: Run<TwoTokens>(gate.Data, up.Data, down.Data, px, py, ps); break;
                default: Run<ThreeTokens>(gate.Data, up.Data, down.Data, px, py, ps); break;
            }
        }
    }

    static void Run<TT>(byte* gate, byte* up, byte* down, float* x, float* y, float* scratch) where TT : struct, ITokens
    {
        var op = new ShapedOp<TT> { Gate = gate, Up = up, Down = down, X = x, Y = y, Scratch = scratch };
        FormatDispatch.Run(TShape.Type, ref op);
    }

    struct ShapedOp<TT> : IFormatOp where TT : struct, ITokens
    {
        public byte* Gate, Up, Down;
        public float* X, Y, Scratch;

        public readonly void Invoke<TF>() where TF : struct, IWeightFormat
        {
            if (Vector512.IsHardwareAccelerated)
                ShapedExpertFfn<TShape, TF, Simd512, Vector512<float>>.Forward<TT>(Gate, Up, Down, X, Y, Scratch);
            else if (Vector256.IsHardwareAccelerated)
                ShapedExpertFfn<TShape, TF, Simd256, Vector256<float>>.Forward<TT>(Gate, Up, Down, X, Y, Scratch);
            else
                ShapedExpertFfn<TShape, TF, SimdScalar, float>.Forward<TT>(Gate, Up, Down, X, Y, Scratch);
        }

        // Shapes are generated for plain dtypes only, and Matches sends any other dtype to the generic path.
        public readonly void InvokeBlock<TB>() where TB : struct, Cpu.Quant.IBlockFormat =>
            throw new NotSupportedException($"generated expert kernels take plain weight types, not {TB.Type.Name()}");

        public readonly void InvokeKQuant<TK>() where TK : struct, Cpu.Quant.IKQuantFormat =>
            throw new NotSupportedException($"generated expert kernels take plain weight types, not {TK.Type.Name()}");
    }

    static string TypeName(DType t) => t switch { DType.BF16 => "bf16", DType.F16 => "f16", _ => "f32" };
}
