using System.Reflection;
using System.Text.RegularExpressions;
using Daop.Engine.Device.Gpu;
using Daop.Engine.Device.Gpu.Cuda;
using Daop.Kernels.Gpu;
using ILGPU;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using CudaArchitecture = ILGPU.Runtime.Cuda.CudaArchitecture;
using CudaInstructionSet = ILGPU.Runtime.Cuda.CudaInstructionSet;

namespace Daop.Tests.Gpu;

/// <summary>A test that needs a CUDA GPU: skipped where the driver sees none (CI), run on a GPU machine.</summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class CudaFactAttribute : FactAttribute
{
    /// <summary>Skips the test unless the CUDA driver sees a GPU.</summary>
    public CudaFactAttribute()
    {
        if (CudaGpu.DeviceCount() == 0) Skip = "no CUDA GPU here";
    }
}

/// <summary>A test of how the engine behaves without the CUDA driver: skipped where the driver library exists.</summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class NoCudaDriverFactAttribute : FactAttribute
{
    /// <summary>Skips the test where libcuda loads.</summary>
    public NoCudaDriverFactAttribute()
    {
        if (CudaApi.LibraryLoaded) Skip = "the CUDA driver is installed here";
    }
}

/// <summary>
/// The CUDA driver layer (<see cref="CudaApi"/>, <see cref="CudaGpu"/>): its messages and argument checks everywhere,
/// its behaviour without a driver where there is none, and memory, streams, kernels and graphs on a real GPU.
/// </summary>
public class CudaDriverTests
{
    [NoCudaDriverFact]
    public void WithoutTheDriverThereAreNoDevicesAndCreateSaysWhy()
    {
        Assert.Equal(0, CudaGpu.DeviceCount());
        Assert.False(CudaDriver.Available);
        var e = Assert.Throws<InvalidOperationException>(() => CudaGpu.Create(0, _ => null));
        Assert.StartsWith($"the CUDA driver ({CudaApi.LibraryName}) was not found: ", e.Message);
        // The loader's own reason, naming what it looked for, on one line (not the runtime's advice on LD_DEBUG).
        if (OperatingSystem.IsLinux()) Assert.Contains("libcuda.so.1: cannot open shared object file", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        // Asking twice gives the same answer (the load is attempted once).
        Assert.Equal(e.Message, Assert.Throws<InvalidOperationException>(() => CudaGpu.Create(0, _ => null)).Message);
        var ev = Assert.Throws<PlatformNotSupportedException>(() => CudaDriver.EventCreate(CudaDriver.EventDisableTiming));
        Assert.Contains(CudaApi.LibraryName, ev.Message);
    }

    [Fact]
    public void TheLoadersReasonIsItsLastLine()
    {
        Assert.Equal("libcuda.so.1: cannot open shared object file: No such file or directory", CudaApi.LoaderReason(
            "Unable to load shared library 'libcuda.so.1' or one of its dependencies. In order to help diagnose loading problems, " +
            "consider using a tool like strace. If you're using glibc, consider setting the LD_DEBUG environment variable: \n" +
            "libcuda.so.1: cannot open shared object file: No such file or directory\n"));
        Assert.Equal("nvcuda.dll was not found", CudaApi.LoaderReason(" nvcuda.dll was not found "));
    }

    [Theory]
    [InlineData("cuMemAlloc_v2", 2, "CUDA_ERROR_OUT_OF_MEMORY", "out of memory", "cuMemAlloc_v2 failed: CUDA_ERROR_OUT_OF_MEMORY (out of memory)")]
    [InlineData("cuInit", 100, "CUDA_ERROR_NO_DEVICE", null, "cuInit failed: CUDA_ERROR_NO_DEVICE")]
    [InlineData("cuLaunchKernel", 12345, null, null, "cuLaunchKernel failed: CUDA error 12345")]
    [InlineData("cuLaunchKernel", 12345, "", "", "cuLaunchKernel failed: CUDA error 12345")]
    public void ErrorMessagesNameTheCallAndTheError(string call, int code, string? name, string? description, string expected) =>
        Assert.Equal(expected, CudaException.Format(call, code, name, description));

    [Fact]
    public void ExceptionKeepsTheCallTheCodeAndWhatItWasDoing()
    {
        var e = new CudaException("cuMemAlloc_v2", 2, "allocating 64 bytes on GPU 0");
        Assert.Equal("cuMemAlloc_v2", e.Call);
        Assert.Equal(2, e.Error);
        Assert.True(e.IsOutOfMemory);
        Assert.False(new CudaException("cuMemAlloc_v2", 1).IsOutOfMemory);
        // The driver names the error where it is installed; without it the number stands in.
        Assert.Equal(CudaApi.LibraryLoaded
            ? "cuMemAlloc_v2 failed: CUDA_ERROR_OUT_OF_MEMORY (out of memory), allocating 64 bytes on GPU 0"
            : "cuMemAlloc_v2 failed: CUDA error 2, allocating 64 bytes on GPU 0", e.Message);
    }

    [Fact]
    public void ParameterSizesMustMatchInCountAndEachSize()
    {
        Assert.Null(CudaGpu.CompareParameterSizes("k", [16, 4, 8], [16, 4, 8]));
        Assert.Null(CudaGpu.CompareParameterSizes("k", [], []));
        Assert.Equal("kernel Gemv: the launcher passes 2 arguments, the PTX entry takes 3",
            CudaGpu.CompareParameterSizes("Gemv", [16, 4], [16, 4, 4]));
        Assert.Equal("kernel Gemv: the launcher passes 4 arguments, the PTX entry takes 3",
            CudaGpu.CompareParameterSizes("Gemv", [16, 4, 4, 4], [16, 4, 4]));
        // The first parameter that differs is named, by index.
        Assert.Equal("kernel Gemv: parameter 1 is 8 bytes in the launcher, 4 in the PTX entry",
            CudaGpu.CompareParameterSizes("Gemv", [16, 8, 16], [16, 4, 8]));
    }

    [Fact]
    public void TheTestKernelsPtxDeclaresAViewAndAnInt()
    {
        // What the GPU tests below feed the driver: ILGPU's PTX of AddDelta, its view as 16 bytes (pointer, length).
        var image = TestKernels.AddDeltaImage;
        Assert.Equal([16, 4], image.ParameterSizes);
        Assert.Contains($".entry {image.EntryName}(", image.Ptx);
    }

    [CudaFact]
    public void DeviceReportsItsShape()
    {
        using var gpu = CudaGpu.Create(0, _ => null);
        Assert.False(gpu.IsCpu);
        Assert.False(string.IsNullOrWhiteSpace(gpu.Name));
        Assert.Equal(32, gpu.WarpSize);
        Assert.True(gpu.MaxThreadsPerGroup >= 1024, $"{gpu.MaxThreadsPerGroup} threads per group");
        Assert.True(gpu.Multiprocessors > 0);
        var (free, total) = gpu.MemoryInfo();
        Assert.Equal(gpu.MemorySize, total);
        Assert.InRange(free, 1, total);
        Assert.NotEqual(0, gpu.DefaultStream.Handle); // our own stream, not the legacy one (which cannot be captured)
        var e = Assert.Throws<InvalidOperationException>(() => CudaGpu.Create(CudaGpu.DeviceCount(), _ => null));
        Assert.Contains($"CUDA device {CudaGpu.DeviceCount()} does not exist", e.Message);
    }

    [CudaFact]
    public void ADisposedGpuRefusesWorkButLetsItsMemoryGo()
    {
        var gpu = CudaGpu.Create(0, _ => null);
        var array = gpu.Allocate1D<float>(100);
        var pinned = gpu.AllocatePinned(100);
        var stream = gpu.CreateStream();
        gpu.Dispose();
        Assert.Throws<ObjectDisposedException>(() => gpu.Allocate1D<float>(1));
        Assert.Throws<ObjectDisposedException>(() => gpu.MemoryInfo());
        Assert.Throws<ObjectDisposedException>(() => stream.Synchronize());
        // Released with the context: disposing them afterwards does nothing, rather than call into a context that is gone.
        array.Dispose();
        pinned.Dispose();
        stream.Dispose();
        gpu.Dispose();
    }

    [CudaFact]
    public void CopiesAndZeroingRoundTripOnAnyStreamFromAnyThread()
    {
        using var gpu = CudaGpu.Create(0, _ => null);
        var data = Enumerable.Range(1, 1000).ToArray();
        using var a = gpu.Allocate1D<int>(data.Length);
        using var b = gpu.Allocate1D<int>(data.Length);
        Assert.Equal(0, a.View.Ptr % 256);
        a.View.CopyFromCPU(gpu.DefaultStream, data);
        a.View.CopyTo(gpu.DefaultStream, b.View);
        b.View.SubView(10, 20).MemSetToZero(gpu.DefaultStream);
        var expected = data.ToArray();
        Array.Clear(expected, 10, 20);
        Assert.Equal(expected, b.GetAsArray1D());

        // A thread that never bound the context: every call binds it by itself.
        int[]? seen = null;
        var t = new Thread(() =>
        {
            using var s = gpu.CreateStream();
            using var c = gpu.Allocate1D<int>(data.Length);
            b.View.CopyTo(s, c.View);
            seen = new int[data.Length];
            c.View.CopyToCPU(s, seen);
        });
        t.Start();
        t.Join();
        Assert.Equal(expected, seen);
    }

    [CudaFact]
    public void PinnedMemoryCopiesAsynchronously()
    {
        using var gpu = CudaGpu.Create(0, _ => null);
        using var pinned = gpu.AllocatePinned(4096 * sizeof(float));
        Assert.Equal(0, pinned.Pointer % 64);
        var span = pinned.AsSpan<float>();
        for (int i = 0; i < span.Length; i++) span[i] = i * 0.5f;
        using var d = gpu.Allocate1D<float>(span.Length);
        using var copy = gpu.CreateStream();
        d.View.CopyFromCPUUnsafeAsync(copy, ref span[0], span.Length);
        copy.Synchronize();
        Assert.Equal(span.ToArray(), d.GetAsArray1D());
    }

    [CudaFact]
    public void KernelsLaunchFromTheirPtxAndAreCheckedAgainstIt()
    {
        var image = TestKernels.AddDeltaImage;
        using var gpu = CudaGpu.Create(0, key => key == image.Key ? image : null);
        var source = new KernelSource(gpu, image.Key);
        var add = source.Bind<GpuView<int>, int>(TestKernels.AddDeltaMethod);
        Assert.Same(gpu.LoadKernel(image.Key, TestKernels.AddDeltaMethod), gpu.LoadKernel(image.Key, TestKernels.AddDeltaMethod));

        const int N = 1000;
        using var d = gpu.Allocate1D<int>(N);
        d.View.CopyFromCPU(gpu.DefaultStream, Enumerable.Range(0, N).ToArray());
        add(gpu.DefaultStream, new KernelConfig((N + 127) / 128, 128), d.View, 7);
        Assert.Equal(Enumerable.Range(7, N).ToArray(), d.GetAsArray1D());

        var wrong = Assert.Throws<InvalidOperationException>(() => source.Bind<GpuView<int>, long>(TestKernels.AddDeltaMethod));
        Assert.Equal($"kernel {image.Key}: parameter 1 is 8 bytes in the launcher, 4 in the PTX entry", wrong.Message);
        var missing = Assert.Throws<InvalidOperationException>(() => gpu.LoadKernel("NoSuchKernel", TestKernels.AddDeltaMethod));
        Assert.Equal("kernel NoSuchKernel was not compiled into this build", missing.Message);
    }

    [CudaFact]
    public void PtxTheDriverRejectsIsReportedWithTheKernelsKey()
    {
        var bad = TestKernels.AddDeltaImage with { Key = "Broken", Ptx = TestKernels.AddDeltaImage.Ptx.Replace("ret;", "no_such_instruction;") };
        using var gpu = CudaGpu.Create(0, key => key == bad.Key ? bad : null);
        var e = Assert.Throws<CudaException>(() => gpu.LoadKernel(bad.Key, TestKernels.AddDeltaMethod));
        Assert.Equal("cuModuleLoadDataEx", e.Call);
        Assert.Contains("loading kernel Broken", e.Message);
        Assert.Contains("no_such_instruction", e.Message); // from the JIT's error log
    }

    [CudaFact]
    public void AGraphReplaysWhatWasCaptured()
    {
        var image = TestKernels.AddDeltaImage;
        using var gpu = CudaGpu.Create(0, key => key == image.Key ? image : null);
        var add = new KernelSource(gpu, image.Key).Bind<GpuView<int>, int>(TestKernels.AddDeltaMethod);
        const int N = 300;
        using var d = gpu.Allocate1D<int>(N);
        d.MemSetToZero();
        var config = new KernelConfig((N + 127) / 128, 128);
        using var stream = gpu.CreateStream();
        using var graph = gpu.Capture(stream, () =>
        {
            add(stream, config, d.View, 1);
            add(stream, config, d.View, 2);
        });
        Assert.Equal(new int[N], d.GetAsArray1D()); // captured, not run
        for (int i = 0; i < 3; i++) graph.Launch(stream);
        stream.Synchronize();
        Assert.Equal(Enumerable.Repeat(9, N).ToArray(), d.GetAsArray1D());

        // A body that waits breaks the capture: the error comes out and the stream works afterwards.
        Assert.ThrowsAny<Exception>(() => gpu.Capture(stream, () => { add(stream, config, d.View, 1); stream.Synchronize(); }));
        add(stream, config, d.View, 1);
        stream.Synchronize();
        Assert.Equal(Enumerable.Repeat(10, N).ToArray(), d.GetAsArray1D());
    }
}

/// <summary>A kernel of the tests' own, compiled to PTX by ILGPU's backend as the build compiles the engine's.</summary>
static class TestKernels
{
    static void AddDelta(ArrayView<int> data, int delta)
    {
        int i = Grid.GlobalIndex.X;
        if (i < data.Length) data[i] += delta;
    }

    public static readonly Action<ArrayView<int>, int> AddDeltaMethod = AddDelta;

    public static PtxImage AddDeltaImage { get; } = Compile("Test.AddDelta", AddDeltaMethod.Method);

    static PtxImage Compile(string key, MethodInfo method)
    {
        using var ctx = Context.Create(b => b.Optimize(OptimizationLevel.O1));
        using var backend = new PTXBackend(ctx, CudaArchitecture.SM_80, CudaInstructionSet.ISA_80, null!);
        var entry = EntryPointDescription.FromExplicitlyGroupedKernel(method);
        var ptx = ((PTXCompiledKernel)backend.Compile(entry, new KernelSpecialization())).PTXAssembly;
        var m = Regex.Match(ptx, @"\.entry\s+(\S+)\s*\(([^)]*)\)");
        Assert.True(m.Success, "no .entry in ILGPU's PTX");
        var sizes = m.Groups[2].Value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(p => Regex.Match(p, @"\.b8\s+\S+\[(\d+)\]") is { Success: true } a ? int.Parse(a.Groups[1].Value)
                : int.Parse(Regex.Match(p, @"\.[usbf](\d+)\s").Groups[1].Value) / 8)
            .ToArray();
        return new PtxImage(key, m.Groups[1].Value, sizes, ptx);
    }
}
