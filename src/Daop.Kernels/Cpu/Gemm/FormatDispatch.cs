namespace Daop.Kernels.Cpu.Gemm;

/// <summary>An operation written once for any stored weight format (its <see cref="IWeightFormat"/> struct).</summary>
internal interface IFormatOp
{
    /// <summary>Runs the operation specialised for <typeparamref name="TF"/>.</summary>
    void Invoke<TF>() where TF : struct, IWeightFormat;
}

/// <summary>
/// The one place a CPU op turns a runtime <see cref="DType"/> into its format struct: a new format adds a case here and
/// its <see cref="IWeightFormat"/>, and every op (linear, expert gate/up, generated experts, row widening) reaches it.
/// </summary>
internal static class FormatDispatch
{
    /// <summary>Calls <paramref name="op"/>.Invoke with the format struct of <paramref name="type"/>.</summary>
    public static void Run<TOp>(DType type, ref TOp op) where TOp : struct, IFormatOp
    {
        switch (type)
        {
            case DType.BF16: op.Invoke<Bf16Format>(); break;
            case DType.F16: op.Invoke<F16Format>(); break;
            case DType.F32: op.Invoke<F32Format>(); break;
            default: throw new NotSupportedException($"weight type {type} has no CPU kernel");
        }
    }
}
