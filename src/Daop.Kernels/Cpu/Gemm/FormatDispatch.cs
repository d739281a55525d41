using Daop.Kernels.Cpu.Quant;

namespace Daop.Kernels.Cpu.Gemm;

/// <summary>An operation written once for any stored weight format (its <see cref="IWeightFormat"/>, <see cref="IBlockFormat"/> or
/// <see cref="IKQuantFormat"/> struct).</summary>
internal interface IFormatOp
{
    /// <summary>Runs the operation specialised for the plain format <typeparamref name="TF"/>.</summary>
    void Invoke<TF>() where TF : struct, IWeightFormat;

    /// <summary>Runs the operation specialised for the block format <typeparamref name="TB"/>.</summary>
    void InvokeBlock<TB>() where TB : struct, IBlockFormat;

    /// <summary>Runs the operation specialised for the K-quant <typeparamref name="TK"/>.</summary>
    void InvokeKQuant<TK>() where TK : struct, IKQuantFormat;
}

/// <summary>
/// The one place a CPU op turns a runtime <see cref="DType"/> into its format struct: a new format adds a case here and
/// its <see cref="IWeightFormat"/> (or <see cref="IBlockFormat"/>), and every op (linear, expert gate/up, generated
/// experts, row widening) reaches it.
/// </summary>
internal static class FormatDispatch
{
    /// <summary>Calls <paramref name="op"/>.Invoke or InvokeBlock with the format struct of <paramref name="type"/>.</summary>
    public static void Run<TOp>(DType type, ref TOp op) where TOp : struct, IFormatOp
    {
        switch (type)
        {
            case DType.BF16: op.Invoke<Bf16Format>(); break;
            case DType.F16: op.Invoke<F16Format>(); break;
            case DType.F32: op.Invoke<F32Format>(); break;
            case DType.Q8_0: op.InvokeBlock<Q8_0Format>(); break;
            case DType.Q4_0: op.InvokeBlock<Q4_0Format>(); break;
            case DType.MXFP4: op.InvokeBlock<Mxfp4Format>(); break;
            case DType.Q4_K: op.InvokeKQuant<Q4_KFormat>(); break;
            case DType.Q5_K: op.InvokeKQuant<Q5_KFormat>(); break;
            case DType.Q6_K: op.InvokeKQuant<Q6_KFormat>(); break;
            case DType.Q3_K: op.InvokeKQuant<Q3_KFormat>(); break;
            case DType.Q2_K: op.InvokeKQuant<Q2_KFormat>(); break;
            case DType.Q4_1: op.InvokeBlock<Q4_1Format>(); break;
            case DType.Q5_0: op.InvokeBlock<Q5_0Format>(); break;
            case DType.Q5_1: op.InvokeBlock<Q5_1Format>(); break;
            case DType.IQ4_NL: op.InvokeBlock<Iq4NlFormat>(); break;
            default: throw new NotSupportedException($"weight type {type} has no CPU kernel");
        }
    }
}
