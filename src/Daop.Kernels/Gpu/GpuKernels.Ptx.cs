using System.Reflection;
using ILGPU;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace Daop.Kernels.Gpu;

public sealed partial class GpuKernels
{
    /// <summary>
    /// Every kernel entry point by name (all explicitly grouped); generic row kernels by their bf16 instantiation, and
    /// <c>Gemv1.F16</c>, <c>Gemv1.F32</c> for the other dtypes' decode GEMV; the block formats' instantiations as
    /// <c>&lt;kernel&gt;.Q8_0</c>, <c>.Q4_0</c>, <c>.MXFP4</c>, <c>.Q4_K</c> (the row kernels for each, the tile and tensor-core kernels for some). The generated expert kernels are listed by
    /// <see cref="Generated.GeneratedGpuExpert"/>.
    /// </summary>
    public static IReadOnlyDictionary<string, MethodInfo> KernelMethods { get; } = new Dictionary<string, MethodInfo>
    {
        ["Gemv"] = M(RowKernels.Gemv<Bf16Format>),
        ["Gemv1"] = M(GemvKernels.Gemv1<Bf16Format, Unroll4>),
        ["Gemv1.F16"] = M(GemvKernels.Gemv1<F16Format, Unroll4>),
        ["Gemv1.F32"] = M(GemvKernels.Gemv1<F32Format, Unroll4>),
        ["Gemv3"] = M(GemvKernels.Gemv3<Bf16Format, Unroll4>),
        ["GateUp"] = M(RowKernels.GateUp<Bf16Format, Bf16Format>),
        ["Down"] = M(RowKernels.Down<Bf16Format>),
        ["DownCombine"] = M(RowKernels.DownCombine<Bf16Format>),
        ["TileLinear"] = M(TileKernels.Linear<Bf16Format>),
        ["TileGateUp"] = M(TileKernels.GateUp<Bf16Format, Bf16Format>),
        ["TileDown"] = M(TileKernels.Down<Bf16Format>),
        ["MmaSplit"] = typeof(MmaKernels).GetMethod(nameof(MmaKernels.Split))!,
        ["MmaLinear"] = M(MmaKernels.Linear<TensorCoreAcc, Bf16Format>),
        ["MmaGateUp"] = M(MmaKernels.GateUp<TensorCoreAcc, Bf16Format>),
        ["MmaDown"] = M(MmaKernels.Down<TensorCoreAcc, Bf16Format>),
        ["Norm"] = typeof(VectorKernels).GetMethod(nameof(VectorKernels.Norm))!,
        ["NormRows"] = typeof(VectorKernels).GetMethod(nameof(VectorKernels.NormRows))!,
        ["Rope"] = typeof(VectorKernels).GetMethod(nameof(VectorKernels.Rope))!,
        ["Embed"] = typeof(VectorKernels).GetMethod(nameof(VectorKernels.Embed))!,
        ["Add"] = typeof(VectorKernels).GetMethod(nameof(VectorKernels.Add))!,
        ["Clamp"] = typeof(VectorKernels).GetMethod(nameof(VectorKernels.Clamp))!,
        ["Scale"] = typeof(VectorKernels).GetMethod(nameof(VectorKernels.Scale))!,
        ["ScaleRows"] = typeof(VectorKernels).GetMethod(nameof(VectorKernels.ScaleRows))!,
        ["HeadMatMul"] = typeof(LatentKernels).GetMethod(nameof(LatentKernels.HeadMatMul))!,
        ["LatentAppend"] = typeof(LatentKernels).GetMethod(nameof(LatentKernels.Append))!,
        ["LatentAttend"] = typeof(LatentKernels).GetMethod(nameof(LatentKernels.Attend))!,
        ["AddSigmoidScaled"] = typeof(VectorKernels).GetMethod(nameof(VectorKernels.AddSigmoidScaled))!,
        ["Combine"] = typeof(VectorKernels).GetMethod(nameof(VectorKernels.Combine))!,
        ["RouteSoftmaxTopK"] = typeof(RoutingKernels).GetMethod(nameof(RoutingKernels.SoftmaxTopK))!,
        ["Attention"] = typeof(AttentionKernel).GetMethod(nameof(AttentionKernel.Causal))!,
        ["GatherRows"] = typeof(BiasedExpertKernels).GetMethod(nameof(BiasedExpertKernels.Gather))!,
        ["ClampedSwiGlu"] = typeof(BiasedExpertKernels).GetMethod(nameof(BiasedExpertKernels.ClampedSwiGlu))!,
        ["ScatterAddRows"] = typeof(BiasedExpertKernels).GetMethod(nameof(BiasedExpertKernels.ScatterAdd))!,
        ["Gemv1.Q8_0"] = M(GemvKernels.Gemv1<Q8_0Format, Unroll4>),
        ["Gemv1.Q4_0"] = M(GemvKernels.Gemv1<Q4_0Format, Unroll4>),
        ["Gemv1.MXFP4"] = M(GemvKernels.Gemv1<Mxfp4Format, Unroll4>),
        ["Gemv.Q8_0"] = M(RowKernels.Gemv<Q8_0Format>),
        ["Gemv.Q4_0"] = M(RowKernels.Gemv<Q4_0Format>),
        ["Gemv.MXFP4"] = M(RowKernels.Gemv<Mxfp4Format>),
        ["GateUp.Q8_0"] = M(RowKernels.GateUp<Q8_0Format, Q8_0Format>),
        ["GateUp.Q4_0"] = M(RowKernels.GateUp<Q4_0Format, Q4_0Format>),
        ["GateUp.MXFP4"] = M(RowKernels.GateUp<Mxfp4Format, Mxfp4Format>),
        ["Down.Q4_0"] = M(RowKernels.Down<Q4_0Format>),
        ["DownCombine.Q8_0"] = M(RowKernels.DownCombine<Q8_0Format>),
        ["DownCombine.Q4_0"] = M(RowKernels.DownCombine<Q4_0Format>),
        ["DownCombine.MXFP4"] = M(RowKernels.DownCombine<Mxfp4Format>),
        ["TileLinear.Q4_0"] = M(TileKernels.Linear<Q4_0Format>),
        ["TileGateUp.Q8_0"] = M(TileKernels.GateUp<Q8_0Format, Q8_0Format>),
        ["TileGateUp.MXFP4"] = M(TileKernels.GateUp<Mxfp4Format, Mxfp4Format>),
        ["TileDown.Q4_0"] = M(TileKernels.Down<Q4_0Format>),
        ["MmaSplit.Q8_0"] = M(MmaKernels.SplitBlocks<Q8_0Format>),
        ["MmaSplit.Q4_0"] = M(MmaKernels.SplitBlocks<Q4_0Format>),
        ["MmaLinear.Q4_0"] = M(MmaKernels.Linear<TensorCoreAcc, Q4_0Format>),
        ["MmaGateUp.Q8_0"] = M(MmaKernels.GateUp<TensorCoreAcc, Q8_0Format>),
        ["MmaGateUp.Q4_0"] = M(MmaKernels.GateUp<TensorCoreAcc, Q4_0Format>),
        ["MmaGateUp.MXFP4"] = M(MmaKernels.GateUp<TensorCoreAcc, Mxfp4Format>),
        ["MmaDown.Q8_0"] = M(MmaKernels.Down<TensorCoreAcc, Q8_0Format>),
        ["MmaDown.Q4_0"] = M(MmaKernels.Down<TensorCoreAcc, Q4_0Format>),
        ["Gemv1.Q4_K"] = M(GemvKernels.Gemv1<Q4_KFormat, Unroll4>),
        ["GateUp.Q4_K"] = M(RowKernels.GateUp<Q4_KFormat, Q4_KFormat>),
        ["DownCombine.Q4_K"] = M(RowKernels.DownCombine<Q4_KFormat>),
        ["TileLinear.Q4_K"] = M(TileKernels.Linear<Q4_KFormat>),
        ["MmaGateUp.Q4_K"] = M(MmaKernels.GateUp<TensorCoreAcc, Q4_KFormat>),
    };

    static MethodInfo M(Delegate kernel) => kernel.Method;

    /// <summary>
    /// PTX of every kernel for <paramref name="architecture"/> / <paramref name="instructionSet"/>, generated without a GPU
    /// (ILGPU's PTX backend alone): for inspecting the code and checking in CI that the CUDA path compiles.
    /// </summary>
    public static Dictionary<string, string> CompilePtx(CudaArchitecture architecture, CudaInstructionSet instructionSet)
    {
        using var ctx = Context.Create(b => b.Optimize(OptimizationLevel.O1));
        using var backend = new PTXBackend(ctx, architecture, instructionSet, null!);
        var ptx = new Dictionary<string, string>();
        foreach (var (name, method) in KernelMethods)
        {
            var entry = EntryPointDescription.FromExplicitlyGroupedKernel(method);
            ptx[name] = ((PTXCompiledKernel)backend.Compile(entry, new KernelSpecialization())).PTXAssembly;
        }
        return ptx;
    }
}
