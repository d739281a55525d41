using System.Runtime.InteropServices;
using Daop.Kernels;
using Daop.Kernels.Cpu;

namespace Daop.Tests.Load.Gguf;

/// <summary>
/// A test of a block-format GGUF file on the CPU (class or method with <c>[Trait("Category", "GgufBlockKernels")]</c>: run
/// them with <c>--filter Category=GgufBlockKernels</c>). Skipped, with the kernel's message as the reason, exactly while the
/// CPU has no kernel for the format (it throws <see cref="NotSupportedException"/>); once the kernels are merged it runs.
/// </summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class GgufKernelFactAttribute : FactAttribute
{
    public GgufKernelFactAttribute(DType type)
    {
        if (GgufBlockKernels.Missing(type) is { } why) Skip = why;
    }
}

/// <summary>The theory form of <see cref="GgufKernelFactAttribute"/>.</summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class GgufKernelTheoryAttribute : TheoryAttribute
{
    public GgufKernelTheoryAttribute(DType type)
    {
        if (GgufBlockKernels.Missing(type) is { } why) Skip = why;
    }
}

/// <summary>Probes the CPU for a block format's kernels: a one-row linear over zero weights.</summary>
static unsafe class GgufBlockKernels
{
    /// <summary>Why <paramref name="type"/> cannot run on the CPU, or null when it can.</summary>
    public static string? Missing(DType type)
    {
        int n = Math.Max(32, type.BlockSize()); // one block (a K-quant super-block of 256)
        var p = (byte*)NativeMemory.AllocZeroed((nuint)type.RowBytes(n));
        try
        {
            MatMul.Forward(new WeightMatrix(p, type, 1, n), new float[n], new float[1], 1);
            return null;
        }
        catch (NotSupportedException e)
        {
            return $"no CPU kernel for {type.Name()} weights on this branch ({e.Message}); runs once the block-format kernels are merged";
        }
        finally { NativeMemory.Free(p); }
    }
}
