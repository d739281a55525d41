using System.Text.RegularExpressions;
using Daop.Kernels;
using Daop.Kernels.Cpu;
using Daop.Kernels.Generated;
using Daop.Tests.Gpu;
using Daop.Tests.Kernels;
using ILGPU;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace Daop.Tests.Generators;

/// <summary>
/// The generated ILGPU expert kernels: on the ILGPU CPU accelerator against <see cref="ExpertFfn.Scalar"/>, and
/// compiled to PTX (no GPU needed) with 16-byte loads, warp shuffles and no local memory.
/// </summary>
/// <remarks>
/// Tolerance as in <see cref="ShapedKernelTests"/>: 2e-5 · Σ|W_down·h| · 5·max(1, √hidden / 4) per output. The GPU
/// SiLU uses its own exp (≈ 2 ulp), well inside that.
/// </remarks>
[Collection(GpuCollection.Name)]
public class GeneratedGpuKernelTests(GpuFixture gpu)
{
    public static TheoryData<int, int, DType, int> Cases()
    {
        var data = new TheoryData<int, int, DType, int>();
        foreach (int lanes in new[] { 1, 4 })
        {
            data.Add(256, 256, DType.BF16, lanes); // built into Daop.Kernels from models/tiny-mixtral-code
            data.Add(80, 136, DType.BF16, lanes);  // the rest compiled from generator output at test time
            data.Add(33, 17, DType.F16, lanes);
            data.Add(36, 20, DType.F32, lanes);
            data.Add(64, 128, DType.F32, lanes);
        }
        return data;
    }

    static GeneratedGpuExpert Kernel(int hidden, int inter, DType type) =>
        GeneratedIlgpuKernels.Find(hidden, inter, type) ??
        OddShapeAssembly.Gpu(hidden, inter, type switch { DType.BF16 => "Bf16", DType.F16 => "F16", _ => "F32" });

    [Theory]
    [MemberData(nameof(Cases))]
    public void MatchesScalarOnTheCpuAccelerator(int hidden, int inter, DType type, int lanes)
    {
        var kernel = Kernel(hidden, inter, type);
        using var gate = new NativeWeights(type, inter, hidden, 1);
        using var up = new NativeWeights(type, inter, hidden, 2);
        using var down = new NativeWeights(type, hidden, inter, 3);
        var x = NativeWeights.Floats(hidden, 11);
        var want = new float[hidden];
        var scratch = new float[2 * inter];
        ExpertFfn.Scalar(gate.W, up.W, down.W, x, want, 1, scratch);
        var mag = MatMulTests.Magnitude(down, scratch.AsSpan(0, inter).ToArray(), 1);
        for (int i = 0; i < mag.Length; i++) mag[i] *= 5 * MathF.Max(1, MathF.Sqrt(hidden) / 4);

        var (gb, gm) = gpu.Upload(gate.W);
        var (ub, um) = gpu.Upload(up.W);
        var (db, dm) = gpu.Upload(down.W);
        using var _g = gb;
        using var _u = ub;
        using var _d = db;
        using var xb = gpu.Upload(x);
        using var hb = gpu.Zeros(inter);
        using var yb = gpu.Zeros(hidden);
        kernel.Forward(gpu.Stream, gm, um, dm, xb.View, hb.View, yb.View, lanes);
        gpu.Stream.Synchronize();
        MatMulTests.AssertClose(want, gpu.Read(yb, hidden), mag, $"{kernel.Name} lanes={lanes}");
    }

    [Fact]
    public void PicksTheExpertOfAStack()
    {
        var kernel = Kernel(80, 136, DType.BF16);
        var experts = Enumerable.Range(0, 3).Select(e => (
            Gate: new NativeWeights(DType.BF16, 136, 80, 10 * e + 1),
            Up: new NativeWeights(DType.BF16, 136, 80, 10 * e + 2),
            Down: new NativeWeights(DType.BF16, 80, 136, 10 * e + 3))).ToArray();
        try
        {
            var (gb, gm) = gpu.Upload(experts.Select(e => e.Gate.W).ToArray());
            var (ub, um) = gpu.Upload(experts.Select(e => e.Up.W).ToArray());
            var (db, dm) = gpu.Upload(experts.Select(e => e.Down.W).ToArray());
            using var _g = gb;
            using var _u = ub;
            using var _d = db;
            var x = NativeWeights.Floats(80, 4);
            using var xb = gpu.Upload(x);
            using var hb = gpu.Zeros(136);
            using var yb = gpu.Zeros(80);
            kernel.Forward(gpu.Stream, gm, um, dm, xb.View, hb.View, yb.View, expert: 2);
            gpu.Stream.Synchronize();
            var want = new float[80];
            ExpertFfn.Scalar(experts[2].Gate.W, experts[2].Up.W, experts[2].Down.W, x, want, 1, new float[272]);
            var got = gpu.Read(yb, 80);
            for (int i = 0; i < 80; i++) Assert.Equal(want[i], got[i], 1e-3f);
        }
        finally
        {
            foreach (var e in experts) { e.Gate.Dispose(); e.Up.Dispose(); e.Down.Dispose(); }
        }
    }

    [Fact]
    public void WrongShapeIsRejected()
    {
        var kernel = Kernel(80, 136, DType.BF16);
        using var w = new NativeWeights(DType.BF16, 136, 81, 1);
        var (b, m) = gpu.Upload(w.W);
        using var _ = b;
        using var v = gpu.Zeros(200);
        Assert.Throws<ArgumentException>(() => kernel.Forward(gpu.Stream, m, m, m, v.View, v.View, v.View));
    }

    /// <summary>The routed kernels the expert launchers run: every built-in shape and the odd ones with whole-Float4 rows.</summary>
    [Fact]
    public void EveryRoutedKernelCompilesToPtx()
    {
        var kernels = GeneratedIlgpuKernels.All
            .Concat(OddShapeAssembly.Shapes.Select(s => Kernel(s.Hidden, s.Inter, s.DType switch
            {
                "bfloat16" => DType.BF16, "float16" => DType.F16, _ => DType.F32,
            }))).ToList();
        Assert.All(GeneratedIlgpuKernels.All, k => Assert.True(k.HasRoutedKernels, k.Name));
        Assert.Equal(3, kernels.Count(k => k.HasRoutedKernels) - GeneratedIlgpuKernels.All.Count); // 80x136, 36x20, 64x128
        using var ctx = Context.Create(b => b.Optimize(OptimizationLevel.O1));
        using var backend = new PTXBackend(ctx, CudaArchitecture.SM_90, CudaInstructionSet.ISA_80, null!);
        foreach (var k in kernels)
            foreach (var method in k.RoutedMethods)
            {
                var entry = EntryPointDescription.FromExplicitlyGroupedKernel(method);
                string ptx = ((PTXCompiledKernel)backend.Compile(entry, new KernelSpecialization())).PTXAssembly;
                string what = $"{k.Name} {method.Name}";
                Assert.False(ptx.Contains(".local", StringComparison.Ordinal), what + ": spills to local memory");
                Assert.True(Regex.IsMatch(ptx, @"ld(\.global)?\.v4\.b32"), what + ": no 16-byte weight loads");
                Assert.True(Regex.IsMatch(ptx, @"ld(\.global)?\.v4\.f32"), what + ": no 16-byte activation loads");
                Assert.True(ptx.Contains("shfl.sync.bfly", StringComparison.Ordinal), what + ": no warp shuffle");
            }
    }

    [Fact]
    public void EveryGeneratedKernelCompilesToPtx()
    {
        var kernels = GeneratedIlgpuKernels.All
            .Concat(OddShapeAssembly.Shapes.Select(s => Kernel(s.Hidden, s.Inter, s.DType switch
            {
                "bfloat16" => DType.BF16, "float16" => DType.F16, _ => DType.F32,
            }))).ToList();
        using var ctx = Context.Create(b => b.Optimize(OptimizationLevel.O1));
        using var backend = new PTXBackend(ctx, CudaArchitecture.SM_90, CudaInstructionSet.ISA_80, null!);
        foreach (var k in kernels)
            foreach (var method in new[] { k.GateUpMethod, k.DownMethod })
            {
                var entry = EntryPointDescription.FromExplicitlyGroupedKernel(method);
                string ptx = ((PTXCompiledKernel)backend.Compile(entry, new KernelSpecialization())).PTXAssembly;
                string what = $"{k.Name} {method.Name}";
                Assert.True(ptx.Contains(".entry", StringComparison.Ordinal), what);
                Assert.False(ptx.Contains(".local", StringComparison.Ordinal), what + ": spills to local memory");
                Assert.True(Regex.IsMatch(ptx, @"ld(\.global)?\.v4\.b32"), what + ": no 16-byte weight loads");
                Assert.True(Regex.IsMatch(ptx, @"ld(\.global)?\.v4\.f32"), what + ": no 16-byte activation loads");
                Assert.True(ptx.Contains("shfl.sync.bfly", StringComparison.Ordinal), what + ": no warp shuffle");
            }
    }
}
