using System.Runtime.Intrinsics;
using Daop.Kernels.Cpu;
using Daop.Kernels.Cpu.Gemm;

namespace Daop.Kernels.Generated;

/// <summary>
/// The expert kernel for one compile-time shape (<typeparamref name="TShape"/>, emitted by the source generator):
/// a single token runs <see cref="ShapedExpertFfn{TShape, TF, TS, TV}"/>, whose loops the JIT compiles with
/// constant trip counts; batches take the tuned generic path.
/// </summary>
/// <remarks>
/// Batched calls (tokens &gt; 1) delegate to <see cref="ExpertFfn.Forward"/>: its 4×4 register tiles and the outer-
/// product GEMM are compute-bound on cache-blocked weights, where constant dimensions save nothing measurable,
/// whereas the single-token GEMV is the decode hot path. Weights of another shape or dtype also take the generic
/// path, so <see cref="Forward"/> is correct for any expert; <see cref="Matches"/> tells whether it specialises.
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

    /// <inheritdoc/>
    public void Forward(in WeightMatrix gate, in WeightMatrix up, in WeightMatrix down,
        ReadOnlySpan<float> x, Span<float> y, int tokens, Span<float> scratch)
    {
        if (tokens != 1 || !Matches(gate, up, down))
        {
            ExpertFfn.Forward(gate, up, down, x, y, tokens, scratch);
            return;
        }
        if (x.Length < TShape.Hidden) throw new ArgumentException($"x holds {x.Length} floats, need {TShape.Hidden}", nameof(x));
        if (y.Length < TShape.Hidden) throw new ArgumentException($"y holds {y.Length} floats, need {TShape.Hidden}", nameof(y));
        if (scratch.Length < 2L * TShape.Inter)
            throw new ArgumentException($"scratch holds {scratch.Length} floats, need 2x{TShape.Inter}", nameof(scratch));
        fixed (float* px = x, py = y, ps = scratch)
        {
            // TShape.Type is a JIT-time constant: the switch folds to one case.
            switch (TShape.Type)
            {
                case DType.BF16: Run<Bf16Format>(gate.Data, up.Data, down.Data, px, py, ps); break;
                case DType.F16: Run<F16Format>(gate.Data, up.Data, down.Data, px, py, ps); break;
                case DType.F32: Run<F32Format>(gate.Data, up.Data, down.Data, px, py, ps); break;
                default: throw new NotSupportedException($"weight type {TShape.Type}");
            }
        }
    }

    static void Run<TF>(byte* gate, byte* up, byte* down, float* x, float* y, float* scratch) where TF : struct, IWeightFormat
    {
        if (Vector512.IsHardwareAccelerated)
            ShapedExpertFfn<TShape, TF, Simd512, Vector512<float>>.Gemv(gate, up, down, x, y, scratch);
        else if (Vector256.IsHardwareAccelerated)
            ShapedExpertFfn<TShape, TF, Simd256, Vector256<float>>.Gemv(gate, up, down, x, y, scratch);
        else
            ShapedExpertFfn<TShape, TF, SimdScalar, float>.Gemv(gate, up, down, x, y, scratch);
    }

    static string TypeName(DType t) => t switch { DType.BF16 => "bf16", DType.F16 => "f16", _ => "f32" };
}
