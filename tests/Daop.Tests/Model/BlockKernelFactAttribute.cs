using System.Runtime.InteropServices;
using Daop.Kernels;
using Daop.Kernels.Cpu;
using Daop.Kernels.Gpu;

namespace Daop.Tests.Model;

/// <summary>
/// A test of quantized weights through the block-format compute kernels of the CPU, the ILGPU path or both. Its class
/// carries <c>[Trait("Category", "BlockKernels")]</c> (run them with <c>--filter Category=BlockKernels</c>). It is
/// skipped, with the kernel's own message as the reason, exactly while a kernel it needs for the format throws
/// <see cref="NotSupportedException"/>; once the kernels exist the test runs and must pass.
/// </summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class BlockKernelFactAttribute : FactAttribute
{
    /// <summary>A test that needs <paramref name="type"/>'s kernels on <paramref name="needs"/>.</summary>
    public BlockKernelFactAttribute(DType type, Backends needs = Backends.Cpu)
    {
        if (needs.HasFlag(Backends.Cpu) && BlockKernels.Missing(type, gpu: false) is { } cpu) Skip = cpu;
        else if (needs.HasFlag(Backends.Gpu) && BlockKernels.Missing(type, gpu: true) is { } gpu) Skip = gpu;
    }
}

/// <summary>Where a <see cref="BlockKernelFactAttribute"/> test computes.</summary>
[Flags]
public enum Backends
{
    /// <summary>The CPU kernels (Daop.Kernels.Cpu).</summary>
    Cpu = 1,
    /// <summary>The ILGPU kernels (Daop.Kernels.Gpu), here on the CPU accelerator.</summary>
    Gpu = 2,
}

/// <summary>Probes whether a backend has kernels for a block format: one tiny call that throws <see cref="NotSupportedException"/> if not.</summary>
static unsafe class BlockKernels
{
    /// <summary>The reason the kernels are missing, or null when they run.</summary>
    public static string? Missing(DType type, bool gpu)
    {
        try
        {
            if (gpu) Formats.With(type, new Probe());
            else Cpu(type);
            return null;
        }
        catch (NotSupportedException e)
        {
            return $"no {(gpu ? "GPU" : "CPU")} kernel for {type.Name()} weights yet ({e.Message}); this test runs once there is one";
        }
    }

    // A one-row linear and a 32-wide expert FFN on zero weights: each reaches the CPU's format dispatch.
    static void Cpu(DType type)
    {
        const int n = 32;
        long rowBytes = type.RowBytes(n);
        var p = (byte*)NativeMemory.AllocZeroed((nuint)(n * rowBytes));
        try
        {
            var row = new WeightMatrix(p, type, 1, n);
            var square = new WeightMatrix(p, type, n, n);
            MatMul.Forward(row, new float[n], new float[1], 1);
            ExpertFfn.Forward(square, square, square, new float[n], new float[n], 1, new float[2 * n]);
        }
        finally { NativeMemory.Free(p); }
    }

    readonly struct Probe : Formats.IFunc<int>
    {
        public int Invoke<TW>() where TW : struct, IWeightFormat => 0;
    }
}
